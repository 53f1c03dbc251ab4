rule data_cache:
    input:
        status=lambda wc: dataset_files(wc.dataset)["status"],
        src=SRC["cache"],
    output:
        "results/cache/{dataset}-r{resize}c{channels}.pt",
    log:
        "logs/cache/{dataset}-r{resize}c{channels}.log",
    conda:
        "../envs/gpicl.yaml"
    params:
        npz=lambda wc: dataset_files(wc.dataset)["npz"],
    shell:
        "gpicl cache {wildcards.dataset} --npz {params.npz} --resize {wildcards.resize} "
        "--channels {wildcards.channels} --out {output} > {log} 2>&1"


rule evalset:
    input:
        unpack(evalset_inputs),
    output:
        "results/{tier}/evalsets/{test}.pt",
    log:
        "logs/{tier}/evalsets/{test}.log",
    conda:
        "../envs/gpicl.yaml"
    params:
        options=evalset_options,
    shell:
        "gpicl evalset {wildcards.test} {params.options} --out {output} > {log} 2>&1"


rule cache:
    input:
        cache_targets,
