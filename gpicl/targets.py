"""What the pipeline builds: pure functions of (params, tier, available datasets).

Which runs each experiment trains, which evaluations exist, and which files each figure reads
are decided here, once, and tested for all tiers; the Snakemake rules only wrap these functions
(and ask the dataset_status checkpoint which meta-test datasets have data).

Paths are relative to the repository root, as the workflow uses them.
"""

from __future__ import annotations

from collections.abc import Collection

from gpicl.cache import RANDOM_DATASET, evalset_name
from gpicl.config import (
    LR_SWEEP,
    lr_sweep_grid,
    lr_sweep_specs,
    lr_sweep_variants,
    method_spec,
    run_name,
    sgd_lr_variants,
    table1_methods,
)
from gpicl.models import SIZE_FIELD

# Figure 3's panels (gpicl.figures.fig3_learning_curves.TEST_DATASETS): their baselines are drawn.
FIG3_PANELS = ("mnist", "fashion_mnist")
EXPERIMENTS = ("fig3", "transitions", "table1", "state_size", "metaopt", "compute")
METAOPT_PARTS = ("plateau", "batch", "phase", "interventions")


def spec_tag(params: dict, tier: str) -> str:
    """The preprocessing tag of a tier's caches (gpicl.augment.PreprocessSpec.tag)."""
    from gpicl.augment import PreprocessSpec

    return PreprocessSpec(**params["tiers"][tier]["preprocess"]).tag


# ----------------------------------------------------------------------------- runs
def fig3_runs(params: dict, tier: str) -> list[str]:
    """Figure 3 and the Transformer row of Table 1: one run per (training dataset, seed)."""
    seeds = params["tiers"][tier]["seeds"]
    return [
        run_name(dataset, seed)
        for dataset in params["experiments"]["fig3"]["train_datasets"]
        for seed in seeds
    ]


def fig3_mnist_runs(params: dict, tier: str) -> list[str]:
    """Figure 3's MNIST-trained Transformers: Table 1's GPICL row, read by several figures."""
    return [r for r in fig3_runs(params, tier) if r.startswith("mnist-")]


def transitions_runs(params: dict, tier: str) -> list[str]:
    """Figures 2 and 4: one run per (capacity, log2 tasks, seed) of the tier's grid."""
    exp = params["experiments"]["transitions"]
    grid = exp["grids"][tier]
    sizes = [("transformer", w) for w in grid["transformer_widths"]]
    sizes += [("mlp", h) for h in grid["mlp_hidden_sizes"]]
    return [
        run_name(exp["train_dataset"], seed, model, size, k)
        for model, size in sizes
        for k in grid["log2_tasks"]
        for seed in grid["seeds"]
    ]


def table1_runs(params: dict, tier: str, trained_only: bool = False) -> list[str]:
    """Table 1's rows besides the Transformer: one MNIST run per (method, tier seed);
    `trained_only`: leave out methods with nothing to meta-train (SGD: 0 steps)."""
    return [
        run_name("mnist", seed, spec=method_spec(params, tier, method))
        for method in table1_methods(params, tier, trained_only)
        for seed in params["tiers"][tier]["seeds"]
    ]


def sgd_sweep_runs(params: dict, tier: str) -> list[str]:
    """Table 1's "SGD, tuned lr": one MNIST SGD run per (learning rate of the sweep, tier seed),
    when the tier's Table 1 has an SGD row."""
    if "sgd" not in params["experiments"]["table1"]["methods"][tier]:
        return []
    t = params["tiers"][tier]
    size = t["methods"]["sgd"]["model"][SIZE_FIELD["sgd"]]
    return [
        run_name("mnist", seed, "sgd", size, variant=variant)
        for variant in sgd_lr_variants(params, tier)
        for seed in t["seeds"]
    ]


# The validation set the learning-rate sweeps choose on: MNIST's training split (gpicl.cache).
SGD_VALIDATION = evalset_name("mnist", "train")


def lr_sweep_runs(params: dict, tier: str) -> list[str]:
    """The meta-trained Table 1 rows' learning-rate sweep: one MNIST run per (row, lr, seed of
    the sweep); the GPICL Transformer's runs name no model (the tier's model)."""
    grid = lr_sweep_grid(params, tier)
    if not grid:
        return []
    return [
        run_name("mnist", seed, spec=spec, variant=variant)
        for spec in lr_sweep_specs(params, tier)
        for variant in lr_sweep_variants(params, tier)
        for seed in grid["seeds"]
    ]


def state_size_runs(params: dict, tier: str) -> list[str]:
    """The state-size figure's own runs: one MNIST run per (model spec, seed) of the grid."""
    grid = params["experiments"]["state_size"]["grids"][tier]
    return [run_name("mnist", seed, spec=spec) for spec in grid["models"] for seed in grid["seeds"]]


def metaopt_runs(params: dict, tier: str, part: str) -> list[str]:
    """Meta-optimisation runs that one part of the experiment (one figure) reads."""
    grid = params["experiments"]["metaopt"]["grids"][tier]
    k, seeds = grid["log2_tasks"], grid["seeds"]

    def names(variants, log2_tasks, seeds):
        return [
            run_name("mnist", seed, variant=v, log2_tasks=t)
            for v in variants
            for t in log2_tasks
            for seed in seeds
        ]

    if part == "plateau":
        return names(["ref"], [k], seeds)
    if part == "batch":
        return names(grid["batch_variants"], [k], seeds)
    if part == "phase":
        return names(grid["batch_variants"], [k], seeds) + names(
            grid["batch_variants"], grid["phase_log2_tasks"], seeds[:1]
        )
    if part == "interventions":
        return names(["ref", *grid["interventions"]], [k], seeds)
    raise ValueError(f"unknown metaopt part {part!r} (known: {', '.join(METAOPT_PARTS)})")


def compute_runs(params: dict, tier: str) -> list[str]:
    """The compute study's runs: one MNIST run per (point, seed); a point names a model spec
    and a variant of training settings ("transformer64-vs8k")."""
    grid = params["experiments"]["compute"]["grids"][tier]
    return [f"mnist-{point}-s{seed}" for point in grid["points"] for seed in grid["seeds"]]


def experiment_runs(params: dict, tier: str) -> dict[str, list[str]]:
    """Every training run of a tier, by experiment (no duplicates within an experiment)."""
    return {
        "fig3": fig3_runs(params, tier),
        "transitions": transitions_runs(params, tier),
        "table1": table1_runs(params, tier) + sgd_sweep_runs(params, tier),
        "state_size": state_size_runs(params, tier),
        "metaopt": sorted({r for part in METAOPT_PARTS for r in metaopt_runs(params, tier, part)}),
        "compute": compute_runs(params, tier),
        LR_SWEEP: lr_sweep_runs(params, tier),
    }


def run_dir(tier: str, experiment: str, run: str) -> str:
    return f"results/{tier}/runs/{experiment}/{run}"


def done_files(tier: str, experiment: str, runs: list[str]) -> list[str]:
    return [f"{run_dir(tier, experiment, run)}/done.json" for run in runs]


def train_targets(params: dict, tier: str) -> list[str]:
    return [
        path
        for experiment, runs in experiment_runs(params, tier).items()
        for path in done_files(tier, experiment, runs)
    ]


# ----------------------------------------------------------------------------- data
def datasets_needed(params: dict) -> list[str]:
    """Datasets to download or verify (the synthetic random set is made, not fetched)."""
    fig3 = params["experiments"]["fig3"]
    transitions = params["experiments"]["transitions"]
    used = [*fig3["train_datasets"], *fig3["test_datasets"], *transitions["test_datasets"]]
    used.append(transitions["train_dataset"])
    return sorted({d for d in used if d != RANDOM_DATASET})


def test_datasets(params: dict, available: Collection[str]) -> list[str]:
    """Meta-test datasets of Figure 3 and Table 1 that have data (random always has)."""
    return [
        d
        for d in params["experiments"]["fig3"]["test_datasets"]
        if d == RANDOM_DATASET or d in available
    ]


def cache_targets(params: dict, tier: str, available: Collection[str]) -> list[str]:
    """Augmentation caches of the image datasets the tier trains or tests on, and the fixed
    evaluation sets of its meta-test datasets."""
    tests = test_datasets(params, available)
    transitions = [
        *params["experiments"]["transitions"]["test_datasets"],
        *params["experiments"]["compute"]["test_datasets"],
    ]
    train = params["experiments"]["fig3"]["train_datasets"]
    external = external_image_datasets(params, available)
    images = sorted({d for d in [*train, *tests, *transitions, *external] if d != RANDOM_DATASET})
    spec = spec_tag(params, tier)
    evalsets = {*tests, *transitions}
    if (sgd_sweep_runs(params, tier) or lr_sweep_runs(params, tier)) and "mnist" in available:
        evalsets.add(SGD_VALIDATION)  # the learning-rate sweeps' validation set
    evalsets = sorted(evalsets)
    return [f"results/cache/{d}-{spec}.pt" for d in images] + [
        f"results/{tier}/evalsets/{d}.pt" for d in evalsets
    ]


# ----------------------------------------------------------------------------- evaluations
def eval_files(tier: str, experiment: str, runs: list[str], tests: list[str]) -> list[str]:
    return [f"results/{tier}/eval/{experiment}/{run}/{test}.json" for run in runs for test in tests]


def fig3_eval_files(params: dict, tier: str, available: Collection[str]) -> list[str]:
    return eval_files(tier, "fig3", fig3_runs(params, tier), test_datasets(params, available))


def transitions_eval_files(params: dict, tier: str) -> list[str]:
    tests = params["experiments"]["transitions"]["test_datasets"]
    return eval_files(tier, "transitions", transitions_runs(params, tier), tests)


def table1_eval_files(params: dict, tier: str, available: Collection[str]) -> list[str]:
    """Table 1: fig3's MNIST Transformers and the other methods' runs, on every test dataset;
    the SGD sweep's runs on every test dataset and on the validation set (the table reports the
    learning rate best on validation, on the test datasets)."""
    tests = test_datasets(params, available)
    transformers = fig3_mnist_runs(params, tier)
    # The sweep chooses on MNIST's training split: without MNIST data, no tuned row.
    sweep = sgd_sweep_runs(params, tier) if "mnist" in available else []
    return (
        eval_files(tier, "fig3", transformers, tests)
        + eval_files(tier, "table1", table1_runs(params, tier), tests)
        + eval_files(tier, "table1", sweep, [*tests, SGD_VALIDATION])
    )


def lr_sweep_eval_files(params: dict, tier: str, available: Collection[str]) -> list[str]:
    """The learning-rate sweep's runs on the validation set (none without MNIST data)."""
    if "mnist" not in available:
        return []
    return eval_files(tier, LR_SWEEP, lr_sweep_runs(params, tier), [SGD_VALIDATION])


def baseline_files(tier: str, tests: Collection[str]) -> list[str]:
    """The reference learners' results (gpicl.baselines), one file per meta-test dataset."""
    return [f"results/{tier}/baselines/{test}.json" for test in tests]


def baseline_targets(params: dict, tier: str, available: Collection[str]) -> list[str]:
    """Every reference learners' file of the tier: one per meta-test dataset with data."""
    return baseline_files(tier, test_datasets(params, available))


def state_size_eval_files(params: dict, tier: str, available: Collection[str]) -> list[str]:
    """The state-size figure's own runs, fig3's MNIST Transformers and Table 1's runs, each on
    MNIST (the figure keeps Transformers, LSTMs and outer-product LSTMs)."""
    own = eval_files(tier, "state_size", state_size_runs(params, tier), ["mnist"])
    reused = [f for f in table1_eval_files(params, tier, available) if f.endswith("/mnist.json")]
    return own + reused


def metaopt_eval_files(params: dict, tier: str) -> list[str]:
    """The phase diagram's evaluations (seen and unseen tasks of the test dataset)."""
    test = params["experiments"]["metaopt"]["test_dataset"]
    return eval_files(tier, "metaopt", metaopt_runs(params, tier, "phase"), [test])


def compute_eval_files(params: dict, tier: str) -> list[str]:
    """The compute study's runs and fig3's MNIST runs (the tier's own configuration), on the
    study's meta-test datasets."""
    tests = params["experiments"]["compute"]["test_datasets"]
    transformers = fig3_mnist_runs(params, tier)
    return eval_files(tier, "compute", compute_runs(params, tier), tests) + eval_files(
        tier, "fig3", transformers, tests
    )


def evaluate_targets(params: dict, tier: str, available: Collection[str]) -> list[str]:
    files = (
        compute_eval_files(params, tier)
        + fig3_eval_files(params, tier, available)
        + transitions_eval_files(params, tier)
        + table1_eval_files(params, tier, available)
        + state_size_eval_files(params, tier, available)
        + metaopt_eval_files(params, tier)
        + lr_sweep_eval_files(params, tier, available)
    )
    return list(dict.fromkeys(files))  # each once, in order


# ----------------------------------------------------------------------------- export
EXPORT_FILES = ("default.pt", "MODEL_CARD.md")


def export_files(tier: str) -> list[str]:
    """The exported default learner and its model card (`gpicl export`)."""
    return [f"results/{tier}/export/{name}" for name in EXPORT_FILES]


def export_inputs(params: dict, tier: str, available: Collection[str]) -> dict[str, list[str]]:
    """Candidates for the export (fig3's MNIST runs) and their evaluations for the card."""
    transformers = fig3_mnist_runs(params, tier)
    evals = eval_files(tier, "fig3", transformers, test_datasets(params, available))
    return {"runs": done_files(tier, "fig3", transformers), "evals": evals}


# ----------------------------------------------------------------------------- figures
def external_image_datasets(params: dict, available: Collection[str]) -> list[str]:
    """The external table's datasets that come from a data cache (gpicl.external: MNIST and
    Fashion-MNIST test splits) and have data; scikit-learn's bundled ones need no file."""
    from gpicl.external import CACHE_DATASETS

    datasets = params["experiments"]["external"]["datasets"]
    return [d for d in datasets if d in CACHE_DATASETS and d in available]


def status_files(params: dict) -> list[str]:
    """Availability records of Table 1's meta-test datasets."""
    tests = params["experiments"]["fig3"]["test_datasets"]
    return [f"resources/datasets/{d}.status.json" for d in tests if d != RANDOM_DATASET]


def figure_inputs(
    params: dict, tier: str, available: Collection[str], reads: str
) -> dict[str, list[str]]:
    """The files a figure reads, by kind: `evals` (evaluation JSONs), `runs` (training runs'
    done.json, with log.csv and probe.csv beside it), `status` (dataset availability),
    `baselines` (reference learners), `model` (the exported learner), `caches` (data caches)."""
    tests = test_datasets(params, available)
    if reads == "fig3":
        return {
            "evals": fig3_eval_files(params, tier, available),
            "baselines": baseline_files(tier, [t for t in tests if t in FIG3_PANELS]),
        }
    if reads == "table1":
        return {
            "evals": table1_eval_files(params, tier, available),
            "status": status_files(params),
            "baselines": baseline_files(tier, tests),
        }
    if reads == "metrics":
        runs = {"fig3": fig3_runs(params, tier), "table1": table1_runs(params, tier)}
        return {
            "evals": table1_eval_files(params, tier, available),
            "runs": [f for exp, names in runs.items() for f in done_files(tier, exp, names)],
            "status": status_files(params),
        }
    if reads == "table1_training":
        return {
            "runs": done_files(tier, "table1", table1_runs(params, tier, trained_only=True))
            + done_files(tier, "fig3", fig3_mnist_runs(params, tier))
        }
    if reads == LR_SWEEP:
        evals = lr_sweep_eval_files(params, tier, available)
        runs = lr_sweep_runs(params, tier) if evals else []
        return {"evals": evals, "runs": done_files(tier, LR_SWEEP, runs)}
    if reads == "transitions":
        return {"evals": transitions_eval_files(params, tier)}
    if reads == "compute":
        transformers = fig3_mnist_runs(params, tier)
        return {
            "evals": compute_eval_files(params, tier),
            "runs": done_files(tier, "compute", compute_runs(params, tier))
            + done_files(tier, "fig3", transformers),
        }
    if reads == "state_size":
        return {"evals": state_size_eval_files(params, tier, available)}
    if reads == "metaopt_phase":
        return {
            "evals": metaopt_eval_files(params, tier),
            "runs": done_files(tier, "metaopt", metaopt_runs(params, tier, "phase")),
        }
    if reads.startswith("metaopt_"):
        part = reads.removeprefix("metaopt_")
        return {"runs": done_files(tier, "metaopt", metaopt_runs(params, tier, part))}
    if reads == "external":
        spec = spec_tag(params, tier)
        return {
            "model": export_files(tier)[:1],
            "caches": [
                f"results/cache/{d}-{spec}.pt" for d in external_image_datasets(params, available)
            ],
        }
    raise ValueError(f"unknown figure input set {reads!r}")
