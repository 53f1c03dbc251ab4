"""Scalar summaries of evaluation and training curves that figures compare across runs.

- `within_sequence_gain`: how much a model learns in context (Fig. 4's y axis).
- `classify_regimes`: the paper's three regimes, read off the data rather than hard-coded.
- `plateau_length`: how long meta-training sits on the initial loss plateau (meta-optimisation
  figures).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np

NUM_CLASSES = 10
CHANCE_LOSS = math.log(NUM_CLASSES)  # cross-entropy of the uniform prediction: the plateau level

INSTANCE_MEMORISATION = "instance memorisation"
TASK_IDENTIFICATION = "task identification"
GENERAL_LEARNING = "general learning"
TRANSITION = "transition"  # fits none of the three: e.g. unseen tasks learned, but well below seen
REGIMES = (INSTANCE_MEMORISATION, TASK_IDENTIFICATION, GENERAL_LEARNING, TRANSITION)

GAIN_THRESHOLD = 0.05
GAP_THRESHOLD = 0.10


def within_sequence_gain(accuracy: Sequence[float]) -> float:
    """Accuracy of the last prediction minus that of the first (position L-1 minus position 0).

    The first prediction comes before any example of the task, so the difference is what the
    model learned from the sequence itself; a model that memorised its tasks scores ~0.
    """
    if len(accuracy) < 2:
        raise ValueError(f"within-sequence gain needs at least 2 positions, got {len(accuracy)}")
    return float(accuracy[-1]) - float(accuracy[0])


def classify_regime(
    seen_gain: float,
    unseen_gain: float,
    gain_threshold: float = GAIN_THRESHOLD,
    gap_threshold: float = GAP_THRESHOLD,
) -> str:
    """The regime of one (seen, unseen) pair of within-sequence gains; see `classify_regimes`."""
    if seen_gain <= gain_threshold and unseen_gain <= gain_threshold:
        return INSTANCE_MEMORISATION
    if unseen_gain > gain_threshold and seen_gain - unseen_gain <= gap_threshold:
        return GENERAL_LEARNING
    if unseen_gain <= gain_threshold and seen_gain - unseen_gain > gap_threshold:
        return TASK_IDENTIFICATION
    return TRANSITION


def classify_regimes(
    points: Iterable[tuple[float, float, float]],
    gain_threshold: float = GAIN_THRESHOLD,
    gap_threshold: float = GAP_THRESHOLD,
) -> list[tuple[float, str]]:
    """Label each task count with the paper's regime, from within-sequence gains (Fig. 4).

    `points` holds `(log2_tasks, seen_gain, unseen_gain)`: the gains on seen and on unseen tasks
    of the meta-training dataset (MNIST in the paper). Returns `(log2_tasks, regime)` sorted by
    log2_tasks. Rules, in this order (`g` = gain_threshold, default 0.05; `d` = gap_threshold,
    default 0.10, both in accuracy units):

    - "instance memorisation": seen <= g and unseen <= g (no learning within the sequence);
    - "general learning": unseen > g and seen - unseen <= d (unseen tasks learned about as well
      as seen ones);
    - "task identification": unseen <= g and seen - unseen > d (the sequence only identifies a
      memorised task);
    - "transition": anything else, e.g. unseen tasks learned but more than d below seen tasks,
      as happens near the task-identification / general-learning boundary where seeds disagree.
    """
    if gain_threshold < 0 or gap_threshold < 0:
        raise ValueError("thresholds must be non-negative")
    labelled = []
    for log2_tasks, seen_gain, unseen_gain in points:
        regime = classify_regime(seen_gain, unseen_gain, gain_threshold, gap_threshold)
        labelled.append((log2_tasks, regime))
    keys = [k for k, _ in labelled]
    if len(set(keys)) != len(keys):
        raise ValueError(f"classify_regimes: repeated task counts in {sorted(keys)}")
    return sorted(labelled, key=lambda item: item[0])


def plateau_length(
    losses: Sequence[float],
    steps: Sequence[int] | None = None,
    window: int = 25,
    margin: float = 0.05,
    reference: float | str = CHANCE_LOSS,
) -> int | None:
    """The first step at which the smoothed training loss is `margin` below the plateau level.

    smoothed[i] = mean(losses[i - window + 1 : i + 1]), a trailing moving average, defined from
    the first full window on (i >= window - 1). The plateau ends at the first such i with
    smoothed[i] <= level - margin (margin in loss units, nats); returns `steps[i]`, or `i + 1`
    (1-based step count) without `steps`; None if the loss never gets there, or there are fewer
    than `window` losses.

    level = `reference`: by default ln(10) = 2.3026, the loss of the uniform prediction over 10
    classes, where meta-training sits on the plateau. The loss at initialisation is higher
    (~2.6) and falls to ln(10) within the first few dozen steps; measured from there, that
    initial drop would end the "plateau" at once. reference="start" gives that literal
    definition anyway: level = smoothed[window - 1], the first full window.

    The smoothing delays the answer: a sharp drop is found at its step (one step of a big drop
    moves the mean), a gradual one up to window - 1 steps after the loss starts to fall.
    """
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    if margin < 0:
        raise ValueError(f"margin must be >= 0, got {margin}")
    if steps is not None and len(steps) != len(losses):
        raise ValueError(f"{len(steps)} steps for {len(losses)} losses")
    values = np.asarray(losses, dtype=np.float64)
    if values.ndim != 1:
        raise ValueError("losses must be one-dimensional")
    if len(values) < window:
        return None
    smoothed = np.convolve(values, np.full(window, 1.0 / window), mode="valid")  # index i-window+1
    if reference == "start":
        level = float(smoothed[0])
    elif isinstance(reference, str):
        raise ValueError(f"reference must be a number or 'start', got {reference!r}")
    else:
        level = float(reference)
    below = np.flatnonzero(smoothed <= level - margin)
    if len(below) == 0:
        return None
    i = int(below[0]) + window - 1
    return int(steps[i]) if steps is not None else i + 1
