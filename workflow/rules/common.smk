# Target lists, per-run configuration and the gpicl sources each phase runs.
import json
import shlex
import sys


from gpicl import targets
from gpicl.augment import SPEC_TAG_PATTERN, PreprocessSpec

# RANDOM_DATASET is synthetic: made in the cache phase, never downloaded.
from gpicl.cache import RANDOM_DATASET, parse_evalset_name
from gpicl.config import run_config
from gpicl.figures.registry import INPUT_KINDS, REGISTRY, figure_options
from gpicl.data.status import discard_damaged
from gpicl.fingerprint import PHASE_SOURCES
from gpicl.io import read_json, write_text
from gpicl.models import MODEL_SOURCES

# Each rule depends on the code it runs, so editing that code reruns the rule (the run's own
# model file is added per run: train_inputs, evaluate_inputs).
SRC = {phase: list(files) for phase, files in PHASE_SOURCES.items()}
SRC["baselines"] = ["gpicl/baselines.py", "gpicl/evaluate.py", *SRC["cache"]]
SRC["bench"] = [
    "gpicl/bench.py",
    "gpicl/reference.py",
    *SRC["train"],
    MODEL_SOURCES["transformer"],
]


def gpicl_shell_prefix():
    """Rules call `gpicl` (and `gpicl_distributed`, torchrun): bash functions that run the CLI
    of the interpreter running Snakemake, so no virtual environment needs to be activated.
    Under --use-conda or a container the environment's own `gpicl` is used. Not a rule
    param: the interpreter's path must not rerun finished jobs."""
    # "set -euo pipefail" is Snakemake's own prefix, which a prefix replaces. Braces are
    # doubled: Snakemake formats the prefix like a shell command.
    if workflow.deployment_settings.deployment_method:
        python = "python"
        gpicl = ""
    else:
        python = shlex.quote(sys.executable)
        gpicl = f'gpicl() {{{{ {python} -m gpicl.cli "$@"; }}}}; '
    distributed = (
        f'gpicl_distributed() {{{{ {python} -m torch.distributed.run "$@"; }}}}; '
    )
    return f"set -euo pipefail; {gpicl}{distributed}"


shell.executable("bash")
shell.prefix(gpicl_shell_prefix())


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
    return targets.spec_tag(config, tier)


def dataset_status(dataset):
    """Availability record of one dataset (waits for the dataset_status checkpoint)."""
    return read_json(checkpoints.dataset_status.get(dataset=dataset).output[0])


def available_datasets():
    """Needed datasets that some source delivered (asks the checkpoint for each)."""
    return [
        d for d in targets.datasets_needed(config) if dataset_status(d)["available"]
    ]


# ----------------------------------------------------------------------------- phase targets
# Thin wrappers of gpicl.targets (tested there); what needs the checkpoint is asked here.
def data_targets():
    return expand(
        "resources/datasets/{dataset}.status.json",
        dataset=targets.datasets_needed(config),
    )


def cache_targets(wildcards):
    return targets.cache_targets(config, config["tier"], available_datasets())


def train_targets(tier):
    return targets.train_targets(config, tier)


def evaluate_targets(wildcards):
    return targets.evaluate_targets(config, config["tier"], available_datasets())


def figure_targets(tier):
    return [f for fig in REGISTRY.values() for f in fig.output_files(tier)]


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


def evalset_dataset(wildcards):
    """The dataset of an evaluation set ("mnist_val", a validation set: mnist)."""
    return parse_evalset_name(wildcards.test)[0]


def evalset_inputs(wildcards):
    if evalset_dataset(wildcards) == RANDOM_DATASET:
        return {"src": SRC["cache"]}
    return {
        "status": dataset_files(evalset_dataset(wildcards))["status"],
        "src": SRC["cache"],
    }


def evalset_options(wildcards, input):
    t = tier_cfg(wildcards.tier)
    npz = (
        f"--npz {dataset_files(evalset_dataset(wildcards))['npz']} "
        if evalset_dataset(wildcards) != RANDOM_DATASET
        else ""
    )
    return (
        f"{npz}{PreprocessSpec(**t['preprocess']).cli_options()} "
        f"--tasks {t['eval']['tasks']} --seqs-per-task {t['eval']['seqs_per_task']} "
        f"--seq-len {t['train']['seq_len']} --seed {config['eval_seed']}"
    )


def model_type(wildcards):
    cfg = run_config(config, wildcards.tier, wildcards.experiment, wildcards.run)
    return cfg["model"]["type"]


def export_inputs(wildcards):
    return targets.export_inputs(config, wildcards.tier, available_datasets())


def export_files_option(wildcards, input):
    """`--runs ... --evals ...` for `gpicl export`; empty while the dataset checkpoint is
    pending (Snakemake formats shell commands early, e.g. in a dry run)."""
    return " ".join(
        f"--{kind} " + " ".join(input[kind])
        for kind in ("runs", "evals")
        if kind in input.keys() and len(input[kind])
    )


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
        return "gpicl train"
    return f"gpicl_distributed --standalone --nproc-per-node={n} -m gpicl.cli train"


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
    if evalset_dataset(wildcards) != RANDOM_DATASET:
        inputs["cache"] = data_cache_of(evalset_dataset(wildcards), wildcards.tier)
    return inputs


def baselines_inputs(wildcards):
    inputs = {
        "evalset": f"results/{wildcards.tier}/evalsets/{wildcards.test}.pt",
        "src": SRC["baselines"],
    }
    if evalset_dataset(wildcards) != RANDOM_DATASET:
        inputs["cache"] = data_cache_of(evalset_dataset(wildcards), wildcards.tier)
    return inputs


def cache_option(wildcards, input):
    return f"--cache {input.cache}" if "cache" in input.keys() else ""


def figure_inputs(figure):
    """Input function of one figure's rule: its result files by kind, plus the figure code."""

    def inputs(wildcards):
        available = available_datasets()
        files = targets.figure_inputs(config, wildcards.tier, available, figure.reads)
        return {**files, "src": SRC["figures"] + list(figure.sources)}

    return inputs


def figure_files(wildcards, input):
    """`--evals ... --runs ... --status ...` for the CLI, from the rule's named inputs; empty
    while a checkpoint they depend on is pending (Snakemake formats shell commands early).
    """
    return " ".join(
        f"--{kind} " + " ".join(input[kind])
        for kind in INPUT_KINDS
        if kind in input.keys() and len(input[kind])
    )


def figure_options_json(figure):
    def options(wildcards):
        return json.dumps(
            figure_options(figure, config, wildcards.tier), sort_keys=True
        )

    return options


def figure_caption(figure):
    """The report caption of a figure, written from the registry (Snakemake reads a file)."""
    path = Path(".snakemake/gpicl/captions") / f"{figure.name}.rst"
    if not path.exists() or path.read_text() != figure.caption + "\n":
        write_text(path, figure.caption + "\n")
    return str(path.resolve())
