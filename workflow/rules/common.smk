# Target lists, per-run configuration and the gpicl sources each phase runs.
import json
import shlex
import sys


from gpicl.cache import (
    RANDOM_DATASET,
)  # synthetic: made in the cache phase, never downloaded
from gpicl.config import run_config, run_name
from gpicl.data.status import discard_damaged
from gpicl.fingerprint import PHASE_SOURCES
from gpicl.io import read_json
from gpicl.models import MODEL_SOURCES, SIZE_FIELD

# Each rule depends on the code it runs, so editing that code reruns the rule (the run's own
# model file is added per run: train_inputs, evaluate_inputs).
SRC = {phase: list(files) for phase, files in PHASE_SOURCES.items()}
SRC["bench"] = ["gpicl/bench.py", *SRC["train"], MODEL_SOURCES["transformer"]]


def gpicl_command():
    """The CLI of the interpreter that runs Snakemake, so no virtual environment needs to be
    activated; under --use-conda or a container, the environment's own `gpicl`."""
    if workflow.deployment_settings.deployment_method:
        return "gpicl"
    return f"{shlex.quote(sys.executable)} -m gpicl.cli"


GPICL = gpicl_command()


def is_dry_run(argv):
    """Whether Snakemake was called with -n/--dry-run (also inside short flags such as -np)."""
    for arg in argv[1:]:
        if arg in ("--dry-run", "--dryrun"):
            return True
        if arg.startswith("-") and not arg.startswith("--") and arg[1:].isalpha():
            if "n" in arg[1:]:
                return True
    return workflow.dryrun


def tier_cfg(tier):
    return config["tiers"][tier]


def spec_tag(tier):
    p = tier_cfg(tier)["preprocess"]
    return f"r{p['resize']}c{p['channels']}"


def fig3_runs(tier):
    exp = config["experiments"]["fig3"]
    return expand(
        "{dataset}-s{seed}", dataset=exp["train_datasets"], seed=tier_cfg(tier)["seeds"]
    )


def transitions_runs(tier):
    """Figures 2 and 4: one run per (capacity, log2 tasks, seed) of the tier's grid."""
    exp = config["experiments"]["transitions"]
    grid = exp["grids"][tier]
    sizes = [("transformer", w) for w in grid["transformer_widths"]]
    sizes += [("mlp", h) for h in grid["mlp_hidden_sizes"]]
    return [
        run_name(exp["train_dataset"], seed, model, size, k)
        for model, size in sizes
        for k in grid["log2_tasks"]
        for seed in grid["seeds"]
    ]


def table1_runs(tier):
    """Table 1's rows besides the Transformer: one MNIST run per (method, tier seed)."""
    methods = tier_cfg(tier)["methods"]
    return [
        run_name("mnist", seed, method, methods[method]["model"][SIZE_FIELD[method]])
        for method in config["experiments"]["table1"]["methods"][tier]
        for seed in tier_cfg(tier)["seeds"]
    ]


def state_size_runs(tier):
    """The state-size figure's own runs: one MNIST run per (model spec, seed) of the grid."""
    grid = config["experiments"]["state_size"]["grids"][tier]
    return [
        run_name("mnist", seed, spec=spec)
        for spec in grid["models"]
        for seed in grid["seeds"]
    ]


def metaopt_runs(tier, part):
    """Meta-optimisation runs (params.yaml, experiments.metaopt) that one figure reads."""
    grid = config["experiments"]["metaopt"]["grids"][tier]
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
    raise ValueError(f"unknown metaopt part {part!r}")


def all_metaopt_runs(tier):
    parts = ("plateau", "batch", "phase", "interventions")
    return sorted({run for part in parts for run in metaopt_runs(tier, part)})


def datasets_needed():
    fig3 = config["experiments"]["fig3"]
    transitions = config["experiments"]["transitions"]
    used = fig3["train_datasets"] + fig3["test_datasets"] + transitions["test_datasets"]
    used.append(transitions["train_dataset"])
    return sorted({d for d in used if d != RANDOM_DATASET})


def dataset_status(dataset):
    """Availability record of one dataset (waits for the dataset_status checkpoint)."""
    return read_json(checkpoints.dataset_status.get(dataset=dataset).output[0])


def test_datasets_available(tier):
    """Meta-test datasets that have data (the synthetic random set always has)."""
    return [
        d
        for d in config["experiments"]["fig3"]["test_datasets"]
        if d == RANDOM_DATASET or dataset_status(d)["available"]
    ]


# ----------------------------------------------------------------------------- phase targets
def data_targets():
    return expand("resources/datasets/{dataset}.status.json", dataset=datasets_needed())


def cache_targets(wildcards):
    tier = config["tier"]
    available = test_datasets_available(tier)
    train = config["experiments"]["fig3"]["train_datasets"]
    images = sorted({d for d in train + available if d != RANDOM_DATASET})
    return expand(
        "results/cache/{dataset}-{spec}.pt", dataset=images, spec=spec_tag(tier)
    ) + expand("results/{tier}/evalsets/{test}.pt", tier=tier, test=available)


def train_targets(tier):
    runs = {
        "fig3": fig3_runs(tier),
        "transitions": transitions_runs(tier),
        "table1": table1_runs(tier),
        "state_size": state_size_runs(tier),
        "metaopt": all_metaopt_runs(tier),
    }
    return [
        f"results/{tier}/runs/{experiment}/{run}/done.json"
        for experiment, names in runs.items()
        for run in names
    ]


def fig3_eval_files(tier):
    return expand(
        "results/{tier}/eval/fig3/{run}/{test}.json",
        tier=tier,
        run=fig3_runs(tier),
        test=test_datasets_available(tier),
    )


def transitions_eval_files(tier):
    return expand(
        "results/{tier}/eval/transitions/{run}/{test}.json",
        tier=tier,
        run=transitions_runs(tier),
        test=config["experiments"]["transitions"]["test_datasets"],
    )


def state_size_eval_files(tier):
    """Everything the state-size figure reads: its own runs, fig3's MNIST Transformers and
    Table 1's runs, each on MNIST (the figure keeps Transformers, LSTMs, outer-product LSTMs).
    """
    return expand(
        "results/{tier}/eval/state_size/{run}/mnist.json",
        tier=tier,
        run=state_size_runs(tier),
    ) + [f for f in table1_eval_files(tier) if Path(f).name == "mnist.json"]


def metaopt_eval_files(tier):
    """The phase diagram's evaluations (seen and unseen tasks of the test dataset)."""
    return expand(
        "results/{tier}/eval/metaopt/{run}/{test}.json",
        tier=tier,
        run=metaopt_runs(tier, "phase"),
        test=config["experiments"]["metaopt"]["test_dataset"],
    )


def metaopt_done_files(tier, part):
    return expand(
        "results/{tier}/runs/metaopt/{run}/done.json",
        tier=tier,
        run=metaopt_runs(tier, part),
    )


def evaluate_targets(wildcards):
    tier = config["tier"]
    return (
        fig3_eval_files(tier)
        + transitions_eval_files(tier)
        + table1_eval_files(tier)
        + state_size_eval_files(tier)
        + metaopt_eval_files(tier)
    )


def figure_targets(tier):
    return (
        expand(
            "results/{tier}/figures/fig3_learning_curves.{ext}",
            tier=tier,
            ext=["png", "svg", "csv"],
        )
        + expand("results/{tier}/tables/table1.{ext}", tier=tier, ext=["md", "csv"])
        + expand(
            "results/{tier}/figures/{name}.{ext}",
            tier=tier,
            name=["fig2_heatmaps", "fig4_transitions", "state_size"],
            ext=["png", "svg", "csv"],
        )
        + [f"results/{tier}/figures/state_size_pairs.csv"]
        + expand(
            "results/{tier}/figures/metaopt_{name}.{ext}",
            tier=tier,
            name=["plateau", "batch", "phase", "interventions", "bias"],
            ext=["png", "svg", "csv"],
        )
        + [f"results/{tier}/figures/metaopt_batch_fit.csv"]
    )


# ----------------------------------------------------------------------------- input functions
def data_cache_of(dataset, tier):
    return f"results/cache/{dataset}-{spec_tag(tier)}.pt"


def dataset_files(dataset):
    """A prepared dataset's availability record (an input, so a rebuilt dataset reruns its
    readers) and its .npz. The path does not wait for the dataset_status checkpoint: only
    the availability does, and the job reading the record reports an unavailable dataset.
    """
    return {
        "status": f"resources/datasets/{dataset}.status.json",
        "npz": f"resources/datasets/{dataset}.npz",
    }


def evalset_inputs(wildcards):
    if wildcards.test == RANDOM_DATASET:
        return {"src": SRC["cache"]}
    return {"status": dataset_files(wildcards.test)["status"], "src": SRC["cache"]}


def evalset_options(wildcards, input):
    t = tier_cfg(wildcards.tier)
    npz = (
        f"--npz {dataset_files(wildcards.test)['npz']} "
        if wildcards.test != RANDOM_DATASET
        else ""
    )
    return (
        f"{npz}--resize {t['preprocess']['resize']} --channels {t['preprocess']['channels']} "
        f"--tasks {t['eval']['tasks']} --seqs-per-task {t['eval']['seqs_per_task']} "
        f"--seq-len {t['train']['seq_len']} --seed {config['eval_seed']}"
    )


def model_type(wildcards):
    cfg = run_config(config, wildcards.tier, wildcards.experiment, wildcards.run)
    return cfg["model"]["type"]


def train_inputs(wildcards):
    cfg = run_config(config, wildcards.tier, wildcards.experiment, wildcards.run)
    return {
        "cache": data_cache_of(cfg["train_dataset"], wildcards.tier),
        "src": SRC["train"] + [MODEL_SOURCES[model_type(wildcards)]],
    }


def run_config_json(wildcards):
    cfg = run_config(config, wildcards.tier, wildcards.experiment, wildcards.run)
    return json.dumps(cfg, sort_keys=True)


def tier_threads(wildcards):
    return tier_cfg(wildcards.tier)["threads"]


def train_launcher(wildcards):
    """`gpicl train`, or torchrun with one process per device for data parallelism."""
    n = tier_cfg(wildcards.tier)["processes"]
    if n == 1:
        return f"{GPICL} train"
    python = GPICL.removesuffix(" -m gpicl.cli") if GPICL != "gpicl" else "python"
    return f"{python} -m torch.distributed.run --standalone --nproc-per-node={n} -m gpicl.cli train"


def gpus_for_training(wildcards):
    """GPU resource of a training job (used by cluster executors; 0 on CPU tiers)."""
    t = tier_cfg(wildcards.tier)
    return 0 if t["device"] == "cpu" else t["processes"]


def gpus_for_evaluation(wildcards):
    return 0 if tier_cfg(wildcards.tier)["device"] == "cpu" else 1


def tier_device(wildcards):
    return tier_cfg(wildcards.tier)["device"]


def evaluate_inputs(wildcards):
    run = f"results/{wildcards.tier}/runs/{wildcards.experiment}/{wildcards.run}"
    inputs = {
        "model": f"{run}/model.pt",
        "done": f"{run}/done.json",
        "evalset": f"results/{wildcards.tier}/evalsets/{wildcards.test}.pt",
        "src": SRC["evaluate"] + [MODEL_SOURCES[model_type(wildcards)]],
    }
    if wildcards.test != RANDOM_DATASET:
        inputs["cache"] = data_cache_of(wildcards.test, wildcards.tier)
    return inputs


def cache_option(wildcards, input):
    return f"--cache {input.cache}" if "cache" in input.keys() else ""


def table1_eval_files(tier):
    """Table 1: fig3's MNIST Transformers and the other methods' runs, on every test dataset."""
    tests = test_datasets_available(tier)
    return expand(
        "results/{tier}/eval/fig3/mnist-s{seed}/{test}.json",
        tier=tier,
        seed=tier_cfg(tier)["seeds"],
        test=tests,
    ) + expand(
        "results/{tier}/eval/table1/{run}/{test}.json",
        tier=tier,
        run=table1_runs(tier),
        test=tests,
    )


def fig3_inputs(wildcards):
    return {"evals": fig3_eval_files(wildcards.tier), "src": SRC["figures"]}


def transitions_inputs(wildcards):
    return {"evals": transitions_eval_files(wildcards.tier), "src": SRC["figures"]}


def state_size_inputs(wildcards):
    return {"evals": state_size_eval_files(wildcards.tier), "src": SRC["figures"]}


def state_size_options(wildcards):
    exp = config["experiments"]["state_size"]
    keys = ("pair_param_tolerance", "pair_min_state_ratio")
    return json.dumps({key: exp[key] for key in keys}, sort_keys=True)


# The runs each meta-optimisation figure reads (the bias figure picks the bias variants).
METAOPT_FIGURE_RUNS = {
    "plateau": "plateau",
    "batch": "batch",
    "phase": "phase",
    "interventions": "interventions",
    "bias": "interventions",
}


def metaopt_inputs(wildcards):
    """done.json files of the figure's runs (log.csv and probe.csv sit beside them); the phase
    diagram also reads the runs' evaluations."""
    name = wildcards.name
    part = METAOPT_FIGURE_RUNS[name]
    inputs = {"runs": metaopt_done_files(wildcards.tier, part), "src": SRC["figures"]}
    if name == "phase":
        inputs["evals"] = metaopt_eval_files(wildcards.tier)
    return inputs


def metaopt_options(wildcards, input):
    """Figure options: plateau rule, reference variant, phase thresholds (phase diagram)."""
    exp = config["experiments"]["metaopt"]
    options = dict(exp["plateau"])
    if wildcards.name in ("interventions", "bias"):
        options["reference_variant"] = "ref"
    if wildcards.name == "phase":
        options.update(exp["phases"], run_files=list(input.runs))
    return json.dumps(options, sort_keys=True)


def table1_inputs(wildcards):
    tests = config["experiments"]["fig3"]["test_datasets"]
    return {
        "evals": table1_eval_files(wildcards.tier),
        "status": expand(
            "resources/datasets/{dataset}.status.json",
            dataset=[d for d in tests if d != RANDOM_DATASET],
        ),
        "src": SRC["figures"],
    }


def table1_expected(wildcards):
    """The paper tier must have every Table 1 column (or an explicit unavailability record)."""
    if wildcards.tier != "paper":
        return ""
    return "--expect " + " ".join(config["experiments"]["fig3"]["test_datasets"])


def named_inputs(key):
    """Params function giving the input files named `key`, or nothing while a checkpoint they
    depend on is still pending (Snakemake formats shell commands before re-evaluating).
    """

    def files(wildcards, input):
        return " ".join(input[key]) if key in input.keys() else ""

    return files
