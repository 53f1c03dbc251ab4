"""The shipped default learner: which run is exported, and its model card.

The export is one of the tier's Figure 3 MNIST runs, the one with the lowest final training
loss (ties: the lower seed). It is chosen on training numbers only, so the evaluation sets stay
untouched by the choice. The card says what the model was trained on, its configuration and
hashes, its accuracy on unseen tasks of every meta-test dataset it was evaluated on, and its
limits.
"""

from __future__ import annotations

from pathlib import Path

from gpicl.config import curriculum_end
from gpicl.io import read_json
from gpicl.results import check_correct_last, read_eval_results

TASK_SET = "unseen"


def choose_run(done_files: list[str | Path]) -> Path:
    """The done.json of the run to export: lowest final training loss, then lowest seed."""
    if not done_files:
        raise ValueError("no finished run to export")
    done = [(read_json(p), Path(p)) for p in done_files]
    for record, path in done:
        if not record.get("finished") or record.get("final_loss") is None:
            raise ValueError(f"{path}: not a finished training run")
    return min(done, key=lambda d: (d[0]["final_loss"], d[0]["seed"], str(d[1])))[1]


def model_card(info: dict, done_path: Path, eval_files: list[str | Path], shipped: str) -> str:
    """Markdown model card of an export (`info`: gpicl.classifier.export_model's metadata)."""
    done = read_json(done_path)
    config = read_json(done_path.with_name("config.json"))
    rows = []
    for path, record in read_eval_results(eval_files, TASK_SET, keys=("run",)):
        if record["run"] != done["name"]:
            continue
        check_correct_last(path, record, TASK_SET)
        stats = record["task_sets"][TASK_SET]
        rows.append(
            f"| {record['dataset']} | {stats['accuracy'][0]:.3f} | {stats['accuracy'][-1]:.3f} "
            f"| {stats['num_tasks']} x {stats['num_sequences'] // stats['num_tasks']} |"
        )
    train, model, pre = config["train"], config["model"], config["preprocess"]
    curriculum = train.get("curriculum")
    lines = [
        "# Model card: gpicl default in-context learner",
        "",
        f"File: `{shipped}` ({info['bytes']:,} bytes, {info['dtype']} weights, "
        f"sha256 `{info['sha256']}`).",
        "",
        "## What it is",
        f"- A {model['type']} (width {model.get('width')}, {model.get('layers')} layers, "
        f"{model.get('heads')} heads x {model.get('key_size')}; {info['num_params']:,} "
        "parameters) meta-trained to classify in context: given labelled examples in its "
        "sequence it predicts the label of the next one, with no gradient step.",
        f"- Run `{done['name']}` of tier `{config['tier']}`, chosen among the tier's Figure 3 "
        "MNIST runs by the lowest final training loss (never by evaluation accuracy).",
        f"- Meta-trained on {config['train_dataset']} (training split only), "
        f"{pre['resize']}x{pre['resize']}x{pre['channels']} inputs, under random linear "
        f"projections and label permutations drawn from {train['num_tasks']:,} task ids; "
        f"{train['steps']:,} steps of {train['tasks_per_step']} tasks x "
        f"{train['seqs_per_task']} sequences of {train['seq_len']}, Adam lr {train['lr']:g}"
        + (f", learning-rate schedule {train['lr_schedule']}" if train.get("lr_schedule") else "")
        + (
            f", exemplar-repetition curriculum until step "
            f"{curriculum_end(train)} then i.i.d. sequences"
            if curriculum
            else ", i.i.d. sequences"
        )
        + (", bf16 autocast" if train.get("amp_cpu") else ", fp32")
        + f"; final training loss {done['final_loss']:.4f}.",
        f"- Configuration hash (sha256 of the run config): `{info['config_sha256']}`.",
        "",
        "## Accuracy on unseen tasks (the run's own evaluation, test splits)",
        "",
        "| meta-test dataset | first prediction | last prediction | tasks x sequences |",
        "|---|---|---|---|",
        *(rows or ["| (no evaluation found) | | | |"]),
        "",
        "Table 1 pools every seed of the tier; these are this one run's numbers.",
        "",
        "## Limits",
        f"- Inputs: the model reads {info['input_size']} features; "
        "`gpicl.InContextClassifier` z-normalises any feature count and maps it there with a "
        "fixed random projection.",
        f"- At most {info['num_classes']} classes; context of at most {info['seq_len'] - 1} "
        "examples per forward pass (longer contexts: an ensemble over random subsets).",
        "- Small and CPU-trained: expect it to trail simple learners (nearest neighbours, "
        "logistic regression) on many datasets; it is a research artefact, not a product.",
        "",
    ]
    return "\n".join(lines)
