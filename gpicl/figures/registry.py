"""Every figure and table the pipeline draws, declared once.

An entry says which module draws it, which result files it reads (a `gpicl.targets` input
set), which params keys become its options, what it writes and its caption. One generic
workflow rule per entry, the report's captions, the CLI's figure names and the DVC plots all
come from here: adding a figure means an entry here and its module, nothing else.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Figure:
    """One figure or table.

    reads: the input set of `gpicl.targets.figure_inputs`; its `positional` kind of files is
    make()'s first argument, other kinds go to the keywords named in `keyword_inputs`.
    options: make() keyword -> dotted params key; a keyword "**" spreads a mapping of params.
    constants: fixed keyword arguments. derived: options computed from (params, tier).
    outputs: suffixes after the stem, under results/<tier>/<folder>/.
    report: the output shown in the Snakemake report. plot: DVC plot of one CSV output
    (suffix, x column, y column), or None. sources: code outside gpicl/figures that make() runs
    (inputs of its rule, so an edit there redraws it).
    """

    name: str
    module: str
    stem: str
    reads: str
    caption: str
    outputs: tuple[str, ...] = (".png", ".svg", ".csv")
    folder: str = "figures"
    positional: str = "evals"
    keyword_inputs: dict[str, str] = field(default_factory=dict)
    options: tuple[tuple[str, str], ...] = ()
    constants: dict = field(default_factory=dict)
    derived: Callable[[dict, str], dict] | None = None
    report: str = ".png"
    plot: tuple[str, str, str] | None = None
    sources: tuple[str, ...] = ()

    def prefix(self, tier: str) -> str:
        return f"results/{tier}/{self.folder}/{self.stem}"

    def output_files(self, tier: str) -> list[str]:
        return [self.prefix(tier) + suffix for suffix in self.outputs]

    def make(self) -> Callable[..., None]:
        return importlib.import_module(f"gpicl.figures.{self.module}").make


# The kinds of files an entry may read (`gpicl figure --<kind> ...`; gpicl.targets.figure_inputs).
INPUT_KINDS = ("evals", "runs", "status", "baselines", "model", "caches")


def _lookup(params: dict, dotted: str):
    value = params
    for part in dotted.split("."):
        value = value[part]
    return value


def figure_options(figure: Figure, params: dict, tier: str) -> dict:
    """make()'s keyword arguments from params (JSON-serialisable)."""
    options = dict(figure.constants)
    for keyword, dotted in figure.options:
        if keyword == "**":
            options.update(_lookup(params, dotted))
        else:
            options[keyword] = _lookup(params, dotted)
    if figure.derived is not None:
        options.update(figure.derived(params, tier))
    return options


def draw(name: str, files: dict[str, list[str]], out_prefix: str | Path, options: dict) -> None:
    """Draw figure `name` from its input files (by kind) with its options."""
    figure = REGISTRY[name]
    unexpected = sorted(set(files) - {figure.positional, *figure.keyword_inputs})
    if unexpected:
        raise ValueError(f"figure {name} reads no {', '.join(unexpected)} files")
    keywords = {
        kw: sorted(Path(p) for p in files.get(kind, []))
        for kind, kw in figure.keyword_inputs.items()
    }
    positional = sorted(Path(p) for p in files.get(figure.positional, []))
    figure.make()(positional, Path(out_prefix), **keywords, **options)


def _expected_table1_columns(params: dict, tier: str) -> dict:
    """The paper tier must have every Table 1 column (or an explicit unavailability record)."""
    if tier != "paper":
        return {}
    return {"expected_datasets": list(params["experiments"]["fig3"]["test_datasets"])}


def _external_options(params: dict, tier: str) -> dict:
    """The tier's context sizes and resamplings, its threads and the evaluation seed."""
    grid = params["experiments"]["external"]["grids"][tier]
    return {
        "context_sizes": list(grid["context_sizes"]),
        "resamples": grid["resamples"],
        "seed": params["eval_seed"],
        "threads": params["tiers"][tier]["threads"],
    }


def _budget_note(experiment: str, also: str = ""):
    """A figure over a grid that trains on its own, smaller budget says so in its title
    (`also`: what the figure reads besides the grid's runs)."""

    def derived(params: dict, tier: str) -> dict:
        grid = params["experiments"][experiment]["grids"][tier]
        parts = [f"{k} {v}" for k, v in sorted(grid.get("model", {}).items())]
        train = grid.get("train", {})
        if "steps" in train:
            parts.insert(0, f"{train['steps']:,} steps")
        parts += [f"{k} {v}" for k, v in sorted(train.items()) if k not in ("steps", "curriculum")]
        if not parts:
            return {}
        note = f"budget of this sweep, below Figure 3's: {', '.join(parts)}"
        return {"budget_note": note + (f"; {also}" if also else "")}

    return derived


def _lr_sweep_options(params: dict, tier: str) -> dict:
    """The lr each meta-trained Table 1 row trains with, and the sweep's share of its steps."""
    from gpicl.config import lr_sweep_grid, method_spec, run_config, run_name, table1_methods

    runs = {"transformer": ("fig3", run_name("mnist", 0))}
    for method in table1_methods(params, tier, trained_only=True):
        runs[method] = ("table1", run_name("mnist", 0, spec=method_spec(params, tier, method)))
    return {
        "row_lrs": {m: run_config(params, tier, *r)["train"]["lr"] for m, r in runs.items()},
        "fraction": (lr_sweep_grid(params, tier) or {}).get("fraction"),
    }


_PLATEAU = (("**", "experiments.metaopt.plateau"),)
_REFERENCE = {"reference_variant": "ref"}

REGISTRY: dict[str, Figure] = {
    f.name: f
    for f in (
        Figure(
            name="fig3",
            module="fig3_learning_curves",
            stem="fig3_learning_curves",
            reads="fig3",
            keyword_inputs={"baselines": "baseline_files"},
            caption="Figure 3: accuracy at each position of the context on unseen tasks, per "
            "meta-training dataset (rows) and meta-test dataset (columns); band: min-max over "
            "seeds; dashed: learners that are not meta-learned (1-NN, class means, ridge) on "
            "the same context. From the `fig3` runs' evaluations and `gpicl baselines`.",
            plot=(".csv", "position", "mean"),
        ),
        Figure(
            name="table1",
            module="table1",
            stem="table1",
            folder="tables",
            reads="table1",
            outputs=(".md", ".csv", "_pairs.csv"),
            keyword_inputs={"status": "status_files", "baselines": "baseline_files"},
            derived=_expected_table1_columns,
            report=".csv",
            caption="Table 1: last-position accuracy on unseen tasks, meta-trained on MNIST, "
            "for every method and meta-test dataset (and reference learners that are not "
            "meta-learned), with a 95% bootstrap interval over seeds, tasks and sequences, the "
            "paper's value and which rows differ (paired intervals, _pairs.csv); datasets no "
            "source delivered read 'data not available'.",
        ),
        Figure(
            name="table1_training",
            module="table1_training",
            stem="table1_training",
            reads="table1_training",
            positional="runs",
            caption="Table 1's meta-training: training loss and accuracy of each meta-trained "
            "method (mean over seeds) over the fraction of its run, with chance and where each "
            "curriculum ends; each method's steps and batch in the legend.",
        ),
        Figure(
            name="lr_sweep",
            module="lr_sweep",
            stem="lr_sweep",
            folder="tables",
            reads="lr_sweep",
            outputs=(".md", ".csv", "_time.csv"),
            keyword_inputs={"runs": "run_files"},
            derived=_lr_sweep_options,
            report=".csv",
            caption="Learning rates of Table 1's meta-trained rows: each row trained at each "
            "learning rate of the sweep on a shortened budget, scored on the validation set "
            "(never the test sequences); the best per row, beside the lr Table 1 trains it with; "
            "each run's training CPU-minutes in _time.csv (the one part that differs between "
            "reruns).",
        ),
        Figure(
            name="metrics",
            module="metrics",
            stem="metrics",
            folder="metrics",
            reads="metrics",
            outputs=(".json",),
            keyword_inputs={"runs": "run_files", "status": "status_files"},
            report=".json",
            caption="Headline numbers for `dvc metrics`: Table 1's last-position accuracy on "
            "unseen tasks per method and dataset, and the final training loss and accuracy of "
            "the Figure 3 and Table 1 runs.",
        ),
        Figure(
            name="compute_study",
            module="compute_study",
            stem="compute_study",
            reads="compute",
            keyword_inputs={"runs": "run_files"},
            options=(
                ("test_datasets", "experiments.compute.test_datasets"),
                ("budget_cpu_minutes", "experiments.compute.budget_cpu_minutes"),
            ),
            caption="Accuracy on unseen tasks against training CPU-minutes per run, for the "
            "compute study's configurations and Figure 3's own runs; the title names the best "
            "configuration within the budget and the one Figure 3 uses. Its x positions are "
            "measured times, so it is the one figure that differs slightly between reruns.",
        ),
        Figure(
            name="fig2",
            derived=_budget_note("transitions"),
            module="fig2_heatmaps",
            stem="fig2_heatmaps",
            reads="transitions",
            caption="Figure 2: seen- and unseen-task accuracy over model size and number of "
            "tasks (the `transitions` sweep).",
        ),
        Figure(
            name="fig4",
            derived=_budget_note("transitions"),
            module="fig4_transitions",
            stem="fig4_transitions",
            reads="transitions",
            options=(("**", "experiments.transitions.regimes"),),
            caption="Figure 4: the transition from memorisation to generalisation over the "
            "number of tasks, with the regime of each point (thresholds from params.yaml).",
        ),
        Figure(
            name="state_size",
            derived=_budget_note(
                "state_size",
                "Figure 3's Transformers and every LSTM (Table 1's recipe, methods.lstm): their "
                "own budgets",
            ),
            module="state_size",
            stem="state_size",
            reads="state_size",
            outputs=(".png", ".svg", ".csv", "_pairs.csv"),
            options=(
                ("pair_param_tolerance", "experiments.state_size.pair_param_tolerance"),
                ("pair_min_state_ratio", "experiments.state_size.pair_min_state_ratio"),
            ),
            caption="Accuracy on unseen MNIST tasks against state size and against parameter "
            "count, for Transformers, LSTMs and outer-product LSTMs; equal-parameter pairs.",
        ),
        Figure(
            name="metaopt_plateau",
            module="metaopt_plateau",
            stem="metaopt_plateau",
            reads="metaopt_plateau",
            positional="runs",
            options=_PLATEAU,
            caption="Meta-optimisation: training loss and gradient norm on the plateau, with "
            "the plateau's end marked (i.i.d. sequences).",
        ),
        Figure(
            name="metaopt_batch",
            module="metaopt_batch",
            stem="metaopt_batch",
            reads="metaopt_batch",
            positional="runs",
            outputs=(".png", ".svg", ".csv", "_fit.csv"),
            options=_PLATEAU,
            caption="Meta-optimisation: plateau length against batch size, in steps and in "
            "sequences, with a fitted power law.",
        ),
        Figure(
            name="metaopt_phase",
            module="metaopt_phase",
            stem="metaopt_phase",
            reads="metaopt_phase",
            keyword_inputs={"runs": "run_files"},
            options=(*_PLATEAU, ("**", "experiments.metaopt.phases")),
            caption="Meta-optimisation: phase diagram over number of tasks and batch size "
            "(stuck, memorising, generalising).",
        ),
        Figure(
            name="metaopt_interventions",
            module="metaopt_interventions",
            stem="metaopt_interventions",
            reads="metaopt_interventions",
            positional="runs",
            options=_PLATEAU,
            constants=_REFERENCE,
            caption="Meta-optimisation: interventions on the plateau (Adam epsilon, biased "
            "tasks, curriculum) against the reference run.",
        ),
        Figure(
            name="metaopt_bias",
            module="metaopt_bias",
            stem="metaopt_bias",
            reads="metaopt_interventions",
            positional="runs",
            options=_PLATEAU,
            constants=_REFERENCE,
            caption="Meta-optimisation: biased tasks; in-context accuracy on unseen tasks and "
            "on task 0 during training.",
        ),
        Figure(
            name="external",
            module="external",
            stem="external",
            folder="tables",
            reads="external",
            positional="model",
            keyword_inputs={"caches": "cache_files"},
            outputs=(".md", ".csv", "_speed.csv"),
            options=(
                ("datasets", "experiments.external.datasets"),
                ("query_size", "experiments.external.query_size"),
                ("n_estimators", "experiments.external.n_estimators"),
            ),
            derived=_external_options,
            report=".csv",
            sources=(
                "gpicl/external.py",
                "gpicl/classifier.py",
                "gpicl/models/__init__.py",
                "gpicl/models/transformer.py",
            ),
            caption="Beyond the training datasets: accuracy of the exported in-context learner "
            "(gpicl.InContextClassifier, no gradient step) against 1-NN, 5-NN and logistic "
            "regression fitted on the same stratified context, on scikit-learn's wine, breast "
            "cancer and iris and on unseen tasks of the MNIST and Fashion-MNIST test splits, per "
            "context size; mean over resamplings of context and queries with a 95% bootstrap "
            "interval, and where the in-context learner loses (paired interval). Predictions "
            "per second: external_speed.csv, the one output that varies between runs. "
            "scikit-learn's 8x8 digits are kept aside for an independent check.",
        ),
    )
}
