"""Scalar summaries of evaluation and training curves that figures compare across runs, and the
constants they are measured against; pure numpy, so figures and training share one definition.

- `within_sequence_gain`, `classify_regimes`: how much a model learns in context and the paper's
  three regimes (Fig. 4).
- `plateau_length`, `trailing_mean`, `final_loss`, `censored_mean`: how long meta-training sits
  on the initial loss plateau (meta-optimisation figures, and `done.json` at the end of training).
- `classify_phase`, `majority_phase`: where a run ended up (the phase diagram).
- `fit_power_law`: plateau length against batch size.
- `equal_parameter_pairs`: configurations with equal parameters and different state (state size).
- `SequenceBootstrap`, `bootstrap_interval`, `difference_interval`: Table 1's intervals over seeds,
  tasks and sequences, and of paired differences of rows.
"""

from __future__ import annotations

import itertools
import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence

import numpy as np

# gpicl.augment.NUM_CLASSES is the same number; it is defined here too so figures need no torch.
NUM_CLASSES = 10
CHANCE = 1.0 / NUM_CLASSES  # accuracy of a uniform guess
CHANCE_LOSS = math.log(NUM_CLASSES)  # cross-entropy of the uniform prediction: the plateau level

# The plateau rule's defaults (params.yaml's experiments.metaopt.plateau sets the figures' values).
PLATEAU_WINDOW = 25  # steps in the trailing mean
PLATEAU_MARGIN = 0.05  # nats below CHANCE_LOSS that end the plateau

INSTANCE_MEMORISATION = "instance memorisation"
TASK_IDENTIFICATION = "task identification"
GENERAL_LEARNING = "general learning"
TRANSITION = "transition"  # fits none of the three: e.g. unseen tasks learned, but well below seen
REGIMES = (INSTANCE_MEMORISATION, TASK_IDENTIFICATION, GENERAL_LEARNING, TRANSITION)

GAIN_THRESHOLD = 0.05
GAP_THRESHOLD = 0.10

STUCK = "stuck"
GENERALISING = "generalising"
MEMORISING = "memorising"
UNCLASSIFIED = "unclassified"
# Classification order; also the tie-break order of a majority vote.
PHASES = (STUCK, GENERALISING, MEMORISING, UNCLASSIFIED)
SEEN_THRESHOLD = 0.3
UNSEEN_THRESHOLD = 0.2

BOOTSTRAP_RESAMPLES = 10_000
BOOTSTRAP_SEED = 0
CONFIDENCE = 0.95


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
    window: int = PLATEAU_WINDOW,
    margin: float = PLATEAU_MARGIN,
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
    smoothed = trailing_mean(values, window)  # index i - window + 1
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


def trailing_mean(values: Sequence[float], window: int) -> np.ndarray:
    """mean(values[i - window + 1 : i + 1]) for each i >= window - 1: the curve the plateau rule
    tests (empty when there are fewer than `window` values)."""
    values = np.asarray(values, dtype=np.float64)
    if len(values) < window:
        return values[:0]
    return np.convolve(values, np.full(window, 1.0 / window), mode="valid")


def final_loss(losses: Sequence[float], window: int) -> float:
    """Mean of the last `window` losses (all of them if fewer): the loss where training ended,
    without the step-to-step noise of the last batch."""
    if not len(losses):
        raise ValueError("no losses")
    return float(np.mean(np.asarray(losses[-window:], dtype=np.float64)))


def censored_mean(values: Sequence[float], censored: Sequence[bool]) -> tuple[float, bool]:
    """Mean with censored runs counted at their budget: a lower bound when any is censored."""
    if not len(values):
        return math.nan, False
    return float(np.mean(values)), bool(any(censored))


def classify_phase(
    final_loss_smoothed: float,
    seen_acc: float,
    unseen_acc: float,
    seen_threshold: float = SEEN_THRESHOLD,
    unseen_threshold: float = UNSEEN_THRESHOLD,
    margin: float = PLATEAU_MARGIN,
) -> str:
    """Where one run ended up: "stuck", "generalising", "memorising" or "unclassified".

    In this order: stuck if final_loss_smoothed > ln(10) - margin (meta-training never left the
    plateau, so the accuracies say nothing about what it would learn); generalising if
    unseen_acc >= unseen_threshold (it learns tasks it never saw); memorising if
    seen_acc >= seen_threshold (it only knows its training tasks). "unclassified": the loss left
    the plateau but neither accuracy reached its threshold, e.g. a run caught mid-transition or
    one that fits its training batches without solving seen tasks at the last position; the
    figure shows such runs rather than forcing them into a class.
    """
    values = (final_loss_smoothed, seen_acc, unseen_acc)
    if not all(math.isfinite(float(v)) for v in values):
        raise ValueError(f"classify_phase: non-finite input {values}")
    if final_loss_smoothed > CHANCE_LOSS - margin:
        return STUCK
    if unseen_acc >= unseen_threshold:
        return GENERALISING
    if seen_acc >= seen_threshold:
        return MEMORISING
    return UNCLASSIFIED


def majority_phase(phases: Sequence[str]) -> tuple[str, int]:
    """The most frequent phase and its count; a tie goes to the phase first in `PHASES`, so the
    verdict does not depend on file order (the count, e.g. "1/2", shows the split)."""
    if not phases:
        raise ValueError("majority of no classes")
    counts = Counter(phases)
    best = max(counts.values())
    return next(p for p in PHASES if counts.get(p, 0) == best), best


def fit_power_law(batch: Sequence[float], length: Sequence[float]) -> dict | None:
    """Least squares of log(length) on log(batch): exponent, its stderr, prefactor; None with
    fewer than 2 distinct batch sizes. stderr is NaN below 3 distinct batch sizes, where the line
    runs through two group means and its residuals say nothing about the power law."""
    x = np.log(np.asarray(batch, dtype=np.float64))
    y = np.log(np.asarray(length, dtype=np.float64))
    n_batch = len(set(np.asarray(batch).tolist()))
    if n_batch < 2:
        return None
    slope, intercept = np.polyfit(x, y, 1)
    stderr = math.nan
    if n_batch >= 3:
        residuals = y - (slope * x + intercept)
        sxx = float(np.sum((x - x.mean()) ** 2))
        stderr = math.sqrt(float(np.sum(residuals**2)) / (len(x) - 2) / sxx)
    return {
        "exponent": float(slope),
        "stderr": stderr,
        "prefactor": float(math.exp(intercept)),
        "n_runs": len(x),
        "n_batch_sizes": n_batch,
    }


def equal_parameter_pairs(
    configs: Sequence[Mapping], param_tolerance: float, min_state_ratio: float
) -> list[tuple[Mapping, Mapping, float, float]]:
    """(small, large, param_rel_diff, state_ratio) for every two configurations (mappings with
    `num_params` and `state_size`) whose parameter counts are within `param_tolerance` of each
    other, |p1 - p2| / min(p1, p2), and whose state sizes are at least `min_state_ratio`x apart;
    "small" is the one with the smaller state. Such a pair isolates the effect of state size."""
    pairs = []
    for a, b in itertools.combinations(configs, 2):
        small, large = sorted((a, b), key=lambda c: (c["state_size"], c["num_params"]))
        p_low, p_high = sorted((a["num_params"], b["num_params"]))
        param_rel_diff = (p_high - p_low) / p_low
        state_ratio = large["state_size"] / small["state_size"]
        if param_rel_diff <= param_tolerance and state_ratio >= min_state_ratio:
            pairs.append((small, large, param_rel_diff, state_ratio))
    return pairs


def sequence_outcomes(
    correct_last: int, num_sequences: int, last_outcomes: Sequence[str] | None = None
) -> np.ndarray:
    """(tasks, sequences) 0/1 outcomes of the last prediction of one evaluation: from
    `last_outcomes` (one string of '0'/'1' per task, as `gpicl.evaluate` writes them), or, for a
    record without them, one "task" of `num_sequences` sequences, `correct_last` of them right
    (task resampling is then a no-op and the bootstrap reduces to seeds, then sequences)."""
    if last_outcomes is None:
        if not 0 <= correct_last <= num_sequences or num_sequences <= 0:
            raise ValueError(f"need 0 <= correct ({correct_last}) <= count ({num_sequences})")
        out = np.zeros((1, num_sequences), dtype=np.uint8)
        out[0, :correct_last] = 1
        return out
    rows = [np.frombuffer(s.encode("ascii"), dtype=np.uint8) - ord("0") for s in last_outcomes]
    if not rows or len({len(r) for r in rows}) != 1 or not len(rows[0]):
        raise ValueError("last_outcomes: need one non-empty string per task, all of one length")
    out = np.stack(rows)
    if out.max() > 1:
        raise ValueError("last_outcomes: strings of '0' and '1' only")
    if int(out.sum()) != correct_last or out.size != num_sequences:
        raise ValueError(
            f"last_outcomes hold {int(out.sum())} of {out.size} correct, the record says "
            f"{correct_last} of {num_sequences}"
        )
    return out


class SequenceBootstrap:
    """Hierarchical bootstrap of the pooled last-position accuracy over seeds, tasks and
    sequences within task, for every row (method) of one meta-test dataset at once.

    Every seed of every row is scored on the same fixed evaluation sequences (tasks x sequences,
    `gpicl.cache.build_eval_set`), so tasks and sequences are crossed with seeds and rows, not
    nested in them. Resample r draws `tasks` task indices with replacement, then, within each
    drawn task, `seqs_per_task` sequence indices with replacement (numpy default_rng(seed)); the
    draw is shared by every seed and every row, so the difference of two rows is paired (same
    sequences, same resamples). A row's seeds are drawn with replacement too, from
    default_rng([seed, number of seeds]): rows with as many seeds draw the same seed positions
    (SGD rows share initial weights by seed). Statistic: the mean over drawn seeds of the
    accuracy over drawn sequences (each seed scores as many sequences, so this is the pooled
    accuracy). Vectorised: one (resamples, tasks, sequences) index array, reused for every row.
    """

    def __init__(
        self,
        tasks: int,
        seqs_per_task: int,
        resamples: int = BOOTSTRAP_RESAMPLES,
        seed: int = BOOTSTRAP_SEED,
    ):
        self.shape = (tasks, seqs_per_task)
        self.resamples, self.seed = resamples, seed
        rng = np.random.default_rng(seed)
        task_draw = rng.integers(0, tasks, size=(resamples, tasks))
        seq_draw = rng.integers(0, seqs_per_task, size=(resamples, tasks, seqs_per_task))
        self._flat = (task_draw[:, :, None] * seqs_per_task + seq_draw).astype(np.int32)

    def statistics(self, outcomes: np.ndarray) -> np.ndarray:
        """(resamples,) pooled accuracies of one row; outcomes (seeds, tasks, sequences) 0/1."""
        o = np.asarray(outcomes, dtype=np.uint8)
        if o.ndim != 3 or o.shape[1:] != self.shape or not len(o):
            raise ValueError(f"outcomes of shape {o.shape}, need (seeds, {self.shape})")
        n_seeds = len(o)
        picks = np.random.default_rng([self.seed, n_seeds]).integers(
            0, n_seeds, size=(self.resamples, n_seeds)
        )
        weight = (picks[:, :, None] == np.arange(n_seeds)).sum(axis=1)  # (R, seeds)
        per_seed = np.stack(
            [o[j].ravel()[self._flat].sum(axis=(1, 2), dtype=np.int64) for j in range(n_seeds)],
            axis=1,
        ) / float(o[0].size)
        return (weight * per_seed).sum(axis=1) / n_seeds


def percentile_interval(
    statistics: np.ndarray, confidence: float = CONFIDENCE
) -> tuple[float, float]:
    """The (1 - confidence) / 2 and (1 + confidence) / 2 quantiles (numpy's linear rule)."""
    tail = 100.0 * (1.0 - confidence) / 2.0
    low, high = np.percentile(statistics, [tail, 100.0 - tail])
    return float(low), float(high)


def bootstrap_interval(
    outcomes: np.ndarray,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
    confidence: float = CONFIDENCE,
) -> tuple[float, float]:
    """Percentile interval of the pooled accuracy of one row (outcomes: seeds x tasks x
    sequences, 0/1) under `SequenceBootstrap`. Deterministic: fresh generators from `seed`."""
    o = np.asarray(outcomes)
    if o.ndim != 3 or not o.size:
        raise ValueError(f"bootstrap_interval: need (seeds, tasks, sequences) outcomes: {o.shape}")
    boot = SequenceBootstrap(o.shape[1], o.shape[2], resamples, seed)
    return percentile_interval(boot.statistics(o), confidence)


def difference_interval(
    a: np.ndarray,
    b: np.ndarray,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
    confidence: float = CONFIDENCE,
) -> tuple[float, float, float]:
    """(accuracy of a - accuracy of b, interval low, high) of the paired difference of two rows
    scored on the same sequences (`SequenceBootstrap`); resolved when the interval excludes 0."""
    a, b = np.asarray(a), np.asarray(b)
    if a.shape[1:] != b.shape[1:]:
        raise ValueError(f"difference_interval: rows on different sequences {a.shape} {b.shape}")
    boot = SequenceBootstrap(a.shape[1], a.shape[2], resamples, seed)
    diff = boot.statistics(a) - boot.statistics(b)
    return (float(a.mean() - b.mean()), *percentile_interval(diff, confidence))


def resolved(low: float, high: float) -> bool:
    """Whether an interval of a difference excludes zero."""
    return low > 0.0 or high < 0.0
