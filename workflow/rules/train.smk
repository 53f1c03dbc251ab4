# One meta-training run per (experiment, run); the run's name fixes its dataset, seed and any
# grid point (gpicl.config.run_config). A killed job resumes from
# checkpoint.pt (not a declared output, so Snakemake keeps it).
rule train:
    input:
        unpack(train_inputs),
    output:
        model="results/{tier}/runs/{experiment}/{run}/model.pt",
        log_csv="results/{tier}/runs/{experiment}/{run}/log.csv",
        done="results/{tier}/runs/{experiment}/{run}/done.json",
    log:
        "logs/{tier}/train/{experiment}/{run}.log",
    benchmark:
        "benchmarks/{tier}/train/{experiment}/{run}.tsv"
    conda:
        "../envs/gpicl.yaml"
    threads: tier_threads
    resources:
        gpu=gpus_for_training,
    params:
        run_config=run_config_json,
        run_dir="results/{tier}/runs/{experiment}/{run}",
        device=tier_device,
        launcher=train_launcher,
    shell:
        "{params.launcher} --run-config {params.run_config:q} --cache {input.cache} "
        "--run-dir {params.run_dir} --device {params.device} --threads {threads} > {log} 2>&1"


rule train_all:
    input:
        train_targets(config["tier"]),
