rule evaluate:
    input:
        unpack(evaluate_inputs),
    output:
        "results/{tier}/eval/{experiment}/{run}/{test}.json",
    log:
        "logs/{tier}/eval/{experiment}/{run}/{test}.log",
    conda:
        "../envs/gpicl.yaml"
    threads: tier_threads
    resources:
        gpu=gpus_for_evaluation,
    params:
        cache=cache_option,
        device=tier_device,
    shell:
        "gpicl evaluate --model {input.model} --evalset {input.evalset} {params.cache} "
        "--out {output} --tier {wildcards.tier} --device {params.device} "
        "--threads {threads} > {log} 2>&1"


rule evaluate_all:
    input:
        evaluate_targets,


# The reference learners (not meta-learned) on one meta-test dataset's evaluation set.
rule baselines:
    input:
        unpack(baselines_inputs),
    output:
        "results/{tier}/baselines/{test}.json",
    log:
        "logs/{tier}/baselines/{test}.log",
    conda:
        "../envs/gpicl.yaml"
    threads: tier_threads
    params:
        cache=cache_option,
        task_seed=config["task_seed"],
    shell:
        "gpicl baselines --evalset {input.evalset} {params.cache} --task-seed "
        "{params.task_seed} --out {output} --tier {wildcards.tier} --threads {threads} "
        "> {log} 2>&1"
