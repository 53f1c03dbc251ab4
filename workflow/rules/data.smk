rule dataset:
    input:
        SRC["data"],
    output:
        "resources/datasets/{dataset}.npz",
    log:
        "logs/data/{dataset}.log",
    conda:
        "../envs/gpicl.yaml"
    params:
        source=config["data"]["source"],
        timeout=config["data"]["timeout_s"],
    shell:
        "gpicl data {wildcards.dataset} --out {output} --source {params.source} "
        "--timeout {params.timeout} --download-dir resources/downloads > {log} 2>&1"


rule data:
    default_target: False
    input:
        data_targets(),
