# Each dataset is fetched and verified once. Whether any source could deliver it is itself an
# output (a checkpoint): a meta-test dataset without a source becomes "data not available" in
# Table 1 instead of a failed workflow. The .npz is written atomically beside its status.
checkpoint dataset_status:
    input:
        SRC["data"],
    output:
        "resources/datasets/{dataset}.status.json",
    log:
        "logs/data/{dataset}.log",
    conda:
        "../envs/gpicl.yaml"
    params:
        npz="resources/datasets/{dataset}.npz",
        source=config["data"]["source"],
        timeout=config["data"]["timeout_s"],
    shell:
        "gpicl data {wildcards.dataset} --out {params.npz} --status-json {output} "
        "--source {params.source:q} --timeout {params.timeout} "
        "--download-dir resources/downloads > {log} 2>&1"


rule data:
    default_target: False
    input:
        data_targets(),
