"""Accuracy against training compute: which configuration buys the most accuracy per CPU-minute.

One panel per meta-test dataset: accuracy of the last prediction on unseen tasks against the
run's training CPU-minutes (process CPU time summed over every call that trained it, from the
`timing.json` beside its done.json). Points are the compute study's runs (experiment
`compute`) and Figure 3's own MNIST runs (the tier's configuration, drawn as stars); the mean
over seeds of a configuration is labelled with its settings. A dashed line marks the budget
per run; the title names the best configuration within it (highest accuracy averaged over the
meta-test datasets) and the one the tier's Figure 3 uses.

The x positions are measured times, so unlike every other figure this one changes (slightly)
from one run of the pipeline to the next; its accuracies do not. Writes `<prefix>.png`,
`<prefix>.svg` and `<prefix>.csv` (one row per configuration, `CSV_COLUMNS`).
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np

from gpicl.config import iid_from_step
from gpicl.io import read_json
from gpicl.metrics import CHANCE
from gpicl.plotting import (
    DATASET_LABELS,
    figure_style,
    new_figure,
    reject_duplicates,
    save_figure,
    write_csv,
)
from gpicl.results import check_correct_last, compute_minutes, read_eval_results, read_run

TASK_SET = "unseen"
CSV_COLUMNS = (
    "configuration",
    "experiment",
    "runs",
    "seeds",
    "num_params",
    "steps",
    "sequences_per_step",
    "lr",
    "lr_schedule",
    "precision",
    "iid_from_step",
    "iid_fraction",
    "cpu_minutes",
    "wall_minutes",
    "final_loss",
    "mean_accuracy",
    "within_budget",
    "best_within_budget",
)


def configuration_label(model: dict, train: dict) -> str:
    """Short name of a configuration: model shape, steps, schedule, precision."""
    shape = f"w{model['width']} L{model['layers']} k{model['key_size']}"
    steps = train["steps"]
    steps_text = f"{steps // 1000}k" if steps % 1000 == 0 else str(steps)
    schedule = (train.get("lr_schedule") or {}).get("decay", "constant")
    precision = "bf16" if train.get("amp_cpu") else "fp32"
    return f"{shape}, {steps_text} steps, lr {train['lr']:g} {schedule}, {precision}"


def make(
    eval_files: list[Path],
    out_prefix: Path,
    run_files: list[Path] = (),
    test_datasets: list[str] = ("mnist", "fashion_mnist"),
    budget_cpu_minutes: float = 30.0,
) -> None:
    results = read_eval_results(eval_files, TASK_SET, keys=("run",))
    reject_duplicates(results, ("run", "dataset"), "compute study")
    accuracy: dict[tuple[str, str], float] = {}
    for path, record in results:
        check_correct_last(path, record, TASK_SET)
        if record["dataset"] in test_datasets:
            accuracy[(record["run"], record["dataset"])] = record["task_sets"][TASK_SET][
                "accuracy"
            ][-1]

    groups: dict[str, list] = defaultdict(list)  # configuration -> runs
    for done_path in map(Path, run_files):
        run = read_run(done_path)
        config = read_json(done_path.with_name("config.json"))
        missing = [d for d in test_datasets if (run.name, d) not in accuracy]
        if missing:
            raise ValueError(f"{done_path}: no evaluation of {run.name} on {missing}")
        cpu, wall = compute_minutes(done_path)
        label = configuration_label(config["model"], run.train)
        experiment = run.name.split("/", 1)[0]
        groups[(experiment, label)].append((run, config, cpu, wall))
    if not groups:
        raise ValueError("compute study: no runs to draw")

    rows = []
    for (experiment, label), members in sorted(groups.items()):
        run, config, _, _ = members[0]
        train = run.train
        accs = [float(np.mean([accuracy[(m[0].name, d)] for m in members])) for d in test_datasets]
        rows.append(
            {
                "configuration": label,
                "experiment": experiment,
                "runs": ";".join(m[0].name for m in members),
                "seeds": ";".join(str(m[0].seed) for m in members),
                "num_params": run.done["num_params"],
                "steps": train["steps"],
                "sequences_per_step": run.batch_size,
                "lr": train["lr"],
                "lr_schedule": (train.get("lr_schedule") or {}).get("decay", "constant"),
                "precision": "bf16" if train.get("amp_cpu") else "fp32",
                "iid_from_step": iid_from_step(train),
                "iid_fraction": 1 - iid_from_step(train) / train["steps"],
                "cpu_minutes": float(np.mean([m[2] for m in members])),
                "wall_minutes": float(np.mean([m[3] for m in members])),
                "final_loss": float(np.mean([m[0].done["final_loss"] for m in members])),
                "mean_accuracy": float(np.mean(accs)),
                **{f"accuracy_{d}": a for d, a in zip(test_datasets, accs, strict=True)},
                "within_budget": float(np.mean([m[2] for m in members])) <= budget_cpu_minutes,
            }
        )
    affordable = [r for r in rows if r["within_budget"]]
    best = max(affordable, key=lambda r: r["mean_accuracy"]) if affordable else None
    for row in rows:
        row["best_within_budget"] = row is best
    columns = [*CSV_COLUMNS[:-3], *(f"accuracy_{d}" for d in test_datasets), *CSV_COLUMNS[-3:]]
    write_csv(rows, out_prefix.with_name(out_prefix.name + ".csv"), columns)

    with figure_style():
        fig = new_figure(figsize=(6.0 * len(test_datasets), 5.0), layout="constrained")
        axes = fig.subplots(1, len(test_datasets), sharey=True, squeeze=False)[0]
        for ax, dataset in zip(axes, test_datasets, strict=True):
            for i, row in enumerate(rows):
                members = groups[(row["experiment"], row["configuration"])]
                xs = [m[2] for m in members]
                ys = [accuracy[(m[0].name, dataset)] for m in members]
                marker = "*" if row["experiment"] == "fig3" else "o"
                color = f"C{i % 10}"
                ax.scatter(xs, ys, color=color, marker=marker, s=25, alpha=0.5)
                label = row["configuration"] + (" [Figure 3]" if marker == "*" else "")
                if row is best:
                    label += " [best within budget]"
                ax.scatter(
                    [np.mean(xs)], [np.mean(ys)], color=color, marker=marker, s=110, label=label
                )
            ax.axvline(budget_cpu_minutes, color="0.4", linestyle="--", linewidth=1)
            ax.axhline(CHANCE, color="0.6", linestyle=":", linewidth=1)
            ax.set_xlabel("training CPU-minutes per run (process CPU time)")
            ax.set_title(f"unseen {DATASET_LABELS.get(dataset, dataset)} tasks")
        axes[0].set_ylabel("accuracy of the last prediction")
        axes[0].set_ylim(0, 1)
        axes[-1].legend(fontsize="x-small", loc="lower right")
        tier = [r for r in rows if r["experiment"] == "fig3"]
        fig.suptitle(
            f"best within {budget_cpu_minutes:g} CPU-min: "
            + (best["configuration"] if best else "none")
            + "\nFigure 3 uses: "
            + ("; ".join(r["configuration"] for r in tier) or "(not in these runs)"),
            fontsize="small",
        )
        save_figure(fig, out_prefix)
