rule data_cache:
    input:
        status=lambda wc: dataset_files(wc.dataset)["status"],
        src=SRC["cache"],
    output:
        "results/cache/{dataset}-{spec}.pt",
    log:
        "logs/cache/{dataset}-{spec}.log",
    wildcard_constraints:
        spec=SPEC_TAG_PATTERN,  # gpicl.augment.PreprocessSpec.tag, e.g. r7c1, r14c3aa0
    conda:
        "../envs/gpicl.yaml"
    params:
        npz=lambda wc: dataset_files(wc.dataset)["npz"],
        spec=lambda wc: PreprocessSpec.from_tag(wc.spec).cli_options(),
    shell:
        "gpicl cache {wildcards.dataset} --npz {params.npz} {params.spec} --out {output} "
        "> {log} 2>&1"


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
