# Training-step benchmark of one tier's shape against the plain-PyTorch reference. Not part of
# `rule all`: timings are machine-dependent, never byte-reproducible.
rule bench:
    input:
        cfg="params.yaml",
        src=SRC["bench"],
    output:
        "results/{tier}/bench/bench.csv",
    log:
        "logs/{tier}/bench.log",
    conda:
        "../envs/gpicl.yaml"
    threads: tier_threads
    params:
        device=tier_device,
    shell:
        "gpicl bench --shapes tiny,{wildcards.tier} --device {params.device} "
        "--threads {threads} --params {input.cfg} --out {output} > {log} 2>&1"
