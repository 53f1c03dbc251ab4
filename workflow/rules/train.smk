# One meta-training run per (experiment, dataset, seed). A killed job resumes from
# checkpoint.pt (not a declared output, so Snakemake keeps it).
rule train:
    input:
        cache=train_cache,
        src=SRC["train"],
    output:
        model="results/{tier}/runs/{experiment}/{dataset}-s{seed}/model.pt",
        log_csv="results/{tier}/runs/{experiment}/{dataset}-s{seed}/log.csv",
        done="results/{tier}/runs/{experiment}/{dataset}-s{seed}/done.json",
    log:
        "logs/{tier}/train/{experiment}/{dataset}-s{seed}.log",
    benchmark:
        "benchmarks/{tier}/train/{experiment}/{dataset}-s{seed}.tsv"
    conda:
        "../envs/gpicl.yaml"
    threads: tier_threads
    resources:
        gpu=gpus_for_training,
    params:
        run_config=run_config_json,
        run_dir=run_dir,
        device=tier_device,
        launcher=train_launcher,
    shell:
        "{params.launcher} --run-config {params.run_config:q} --cache {input.cache} "
        "--run-dir {params.run_dir} --device {params.device} --threads {threads} > {log} 2>&1"


rule train_all:
    input:
        train_targets(config["tier"]),
