rule fig3:
    input:
        unpack(fig3_inputs),
    output:
        multiext("results/{tier}/figures/fig3_learning_curves", ".png", ".svg", ".csv"),
    log:
        "logs/{tier}/figures/fig3.log",
    conda:
        "../envs/gpicl.yaml"
    params:
        evals=named_inputs("evals"),
    shell:
        "{GPICL} figure fig3 --out results/{wildcards.tier}/figures/fig3_learning_curves "
        "--evals {params.evals} > {log} 2>&1"


rule table1:
    input:
        unpack(table1_inputs),
    output:
        multiext("results/{tier}/tables/table1", ".md", ".csv"),
    log:
        "logs/{tier}/figures/table1.log",
    conda:
        "../envs/gpicl.yaml"
    params:
        evals=named_inputs("evals"),
        status=named_inputs("status"),
        expect=table1_expected,
    shell:
        "{GPICL} figure table1 --out results/{wildcards.tier}/tables/table1 "
        "--status {params.status} {params.expect} --evals {params.evals} > {log} 2>&1"


rule fig2:
    input:
        unpack(transitions_inputs),
    output:
        multiext("results/{tier}/figures/fig2_heatmaps", ".png", ".svg", ".csv"),
    log:
        "logs/{tier}/figures/fig2.log",
    conda:
        "../envs/gpicl.yaml"
    params:
        evals=named_inputs("evals"),
    shell:
        "{GPICL} figure fig2 --out results/{wildcards.tier}/figures/fig2_heatmaps "
        "--evals {params.evals} > {log} 2>&1"


rule fig4:
    input:
        unpack(transitions_inputs),
    output:
        multiext("results/{tier}/figures/fig4_transitions", ".png", ".svg", ".csv"),
    log:
        "logs/{tier}/figures/fig4.log",
    conda:
        "../envs/gpicl.yaml"
    params:
        evals=named_inputs("evals"),
        options=json.dumps(config["experiments"]["transitions"]["regimes"]),
    shell:
        "{GPICL} figure fig4 --out results/{wildcards.tier}/figures/fig4_transitions "
        "--options {params.options:q} --evals {params.evals} > {log} 2>&1"


rule state_size_figure:
    input:
        unpack(state_size_inputs),
    output:
        multiext(
            "results/{tier}/figures/state_size", ".png", ".svg", ".csv", "_pairs.csv"
        ),
    log:
        "logs/{tier}/figures/state_size.log",
    conda:
        "../envs/gpicl.yaml"
    params:
        evals=named_inputs("evals"),
        options=state_size_options,
    shell:
        "{GPICL} figure state_size --out results/{wildcards.tier}/figures/state_size "
        "--options {params.options:q} --evals {params.evals} > {log} 2>&1"


# Meta-optimisation figures read training runs (done.json, with log.csv and probe.csv beside it).
rule metaopt_figure:
    input:
        unpack(metaopt_inputs),
    output:
        multiext("results/{tier}/figures/metaopt_{name}", ".png", ".svg", ".csv"),
    log:
        "logs/{tier}/figures/metaopt_{name}.log",
    wildcard_constraints:
        name="plateau|interventions|bias",
    conda:
        "../envs/gpicl.yaml"
    params:
        runs=named_inputs("runs"),
        options=metaopt_options,
    shell:
        "{GPICL} figure metaopt_{wildcards.name} --out results/{wildcards.tier}/figures/metaopt_{wildcards.name} "
        "--options {params.options:q} --evals {params.runs} > {log} 2>&1"


rule metaopt_batch:
    input:
        unpack(metaopt_inputs),
    output:
        multiext(
            "results/{tier}/figures/metaopt_{name}", ".png", ".svg", ".csv", "_fit.csv"
        ),
    log:
        "logs/{tier}/figures/metaopt_{name}.log",
    wildcard_constraints:
        name="batch",
    conda:
        "../envs/gpicl.yaml"
    params:
        runs=named_inputs("runs"),
        options=metaopt_options,
    shell:
        "{GPICL} figure metaopt_batch --out results/{wildcards.tier}/figures/metaopt_batch "
        "--options {params.options:q} --evals {params.runs} > {log} 2>&1"


rule metaopt_phase:
    input:
        unpack(metaopt_inputs),
    output:
        multiext("results/{tier}/figures/metaopt_{name}", ".png", ".svg", ".csv"),
    log:
        "logs/{tier}/figures/metaopt_{name}.log",
    wildcard_constraints:
        name="phase",
    conda:
        "../envs/gpicl.yaml"
    params:
        evals=named_inputs("evals"),
        options=metaopt_options,
    shell:
        "{GPICL} figure metaopt_phase --out results/{wildcards.tier}/figures/metaopt_phase "
        "--options {params.options:q} --evals {params.evals} > {log} 2>&1"


rule figures:
    input:
        figure_targets(config["tier"]),
