# Target lists, per-run configuration and the gpicl sources each phase runs.
import json

from gpicl.config import run_config

IMAGE_DATASETS = ["mnist", "fashion_mnist"]
RANDOM_DATASET = "random"

# Each rule depends on the code it runs, so editing that code reruns the rule.
SRC = {
    "data": ["gpicl/io.py", *sorted(str(p) for p in Path("gpicl/data").glob("*.py"))],
    "cache": ["gpicl/cache.py", "gpicl/augment.py", "gpicl/io.py"],
    "train": [
        "gpicl/train.py",
        "gpicl/augment.py",
        "gpicl/optim.py",
        "gpicl/repro.py",
        *sorted(str(p) for p in Path("gpicl/models").glob("*.py")),
    ],
    "evaluate": [
        "gpicl/evaluate.py",
        "gpicl/augment.py",
        "gpicl/cache.py",
        *sorted(str(p) for p in Path("gpicl/models").glob("*.py")),
    ],
    "figures": [
        "gpicl/plotting.py",
        "gpicl/matplotlibrc",
        *sorted(str(p) for p in Path("gpicl/figures").glob("*.py")),
    ],
}


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


def datasets_needed():
    exp = config["experiments"]["fig3"]
    used = set(exp["train_datasets"]) | set(exp["test_datasets"])
    return [d for d in IMAGE_DATASETS if d in used]


# ----------------------------------------------------------------------------- phase targets
def data_targets():
    return expand("resources/datasets/{dataset}.npz", dataset=datasets_needed())


def cache_targets(tier):
    return expand(
        "results/cache/{dataset}-{spec}.pt",
        dataset=datasets_needed(),
        spec=spec_tag(tier),
    ) + expand(
        "results/{tier}/evalsets/{test}.pt",
        tier=tier,
        test=config["experiments"]["fig3"]["test_datasets"],
    )


def train_targets(tier):
    return expand(
        "results/{tier}/runs/fig3/{run}/done.json", tier=tier, run=fig3_runs(tier)
    )


def fig3_eval_files(tier):
    return expand(
        "results/{tier}/eval/fig3/{run}/{test}.json",
        tier=tier,
        run=fig3_runs(tier),
        test=config["experiments"]["fig3"]["test_datasets"],
    )


def figure_targets(tier):
    return expand(
        "results/{tier}/figures/fig3_learning_curves.{ext}",
        tier=tier,
        ext=["png", "svg", "csv"],
    ) + expand("results/{tier}/tables/table1.{ext}", tier=tier, ext=["md", "csv"])


# ----------------------------------------------------------------------------- input functions
def data_cache_of(dataset, tier):
    return f"results/cache/{dataset}-{spec_tag(tier)}.pt"


def evalset_inputs(wildcards):
    if wildcards.test == RANDOM_DATASET:
        return {"src": SRC["cache"]}
    return {"npz": f"resources/datasets/{wildcards.test}.npz", "src": SRC["cache"]}


def evalset_options(wildcards, input):
    t = tier_cfg(wildcards.tier)
    npz = f"--npz {input.npz} " if "npz" in input.keys() else ""
    return (
        f"{npz}--resize {t['preprocess']['resize']} --channels {t['preprocess']['channels']} "
        f"--tasks {t['eval']['tasks']} --seqs-per-task {t['eval']['seqs_per_task']} "
        f"--seq-len {t['train']['seq_len']} --seed {config['eval_seed']}"
    )


def train_cache(wildcards):
    return data_cache_of(wildcards.dataset, wildcards.tier)


def run_config_json(wildcards):
    cfg = run_config(
        config,
        wildcards.tier,
        wildcards.experiment,
        wildcards.dataset,
        int(wildcards.seed),
    )
    return json.dumps(cfg, sort_keys=True)


def run_dir(wildcards):
    return f"results/{wildcards.tier}/runs/{wildcards.experiment}/{wildcards.dataset}-s{wildcards.seed}"


def tier_threads(wildcards):
    return tier_cfg(wildcards.tier)["threads"]


def tier_device(wildcards):
    return tier_cfg(wildcards.tier)["device"]


def evaluate_inputs(wildcards):
    run = f"results/{wildcards.tier}/runs/{wildcards.experiment}/{wildcards.dataset}-s{wildcards.seed}"
    inputs = {
        "model": f"{run}/model.pt",
        "done": f"{run}/done.json",
        "evalset": f"results/{wildcards.tier}/evalsets/{wildcards.test}.pt",
        "src": SRC["evaluate"],
    }
    if wildcards.test != RANDOM_DATASET:
        inputs["cache"] = data_cache_of(wildcards.test, wildcards.tier)
    return inputs


def cache_option(wildcards, input):
    return f"--cache {input.cache}" if "cache" in input.keys() else ""


def table1_eval_files(tier):
    return expand(
        "results/{tier}/eval/fig3/mnist-s{seed}/{test}.json",
        tier=tier,
        seed=tier_cfg(tier)["seeds"],
        test=config["experiments"]["fig3"]["test_datasets"],
    )


def fig3_inputs(wildcards):
    return {"evals": fig3_eval_files(wildcards.tier), "src": SRC["figures"]}


def table1_inputs(wildcards):
    return {"evals": table1_eval_files(wildcards.tier), "src": SRC["figures"]}
