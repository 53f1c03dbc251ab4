# The default learner the package ships: the tier's Figure 3 MNIST run with the lowest final
# training loss, as a small checkpoint with its model card (gpicl/model_card.py). `make
# ship-model` copies both into gpicl/checkpoints/.
rule export:
    input:
        unpack(export_inputs),
    output:
        model="results/{tier}/export/default.pt",
        card="results/{tier}/export/MODEL_CARD.md",
    log:
        "logs/{tier}/export.log",
    conda:
        "../envs/gpicl.yaml"
    params:
        files=export_files_option,
    shell:
        "gpicl export {params.files} --out {output.model} "
        "--card {output.card} --shipped-as gpicl/checkpoints/default.pt > {log} 2>&1"


rule export_all:
    input:
        targets.export_files(config["tier"]),
