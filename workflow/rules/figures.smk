# One rule per entry of the figure registry (gpicl/figures/registry.py): what it reads, its
# options from params.yaml, its outputs and its report caption all come from there.
for _figure in REGISTRY.values():

    rule:
        name:
            f"figure_{_figure.name}"
        input:
            unpack(figure_inputs(_figure)),
        output:
            [
                (
                    report(
                        path,
                        caption=figure_caption(_figure),
                        category="Figures and tables",
                        labels={"figure": _figure.name},
                    )
                    if path == _figure.prefix("{tier}") + _figure.report
                    else path
                )
                for path in _figure.output_files("{tier}")
            ],
        log:
            f"logs/{{tier}}/figures/{_figure.name}.log",
        conda:
            "../envs/gpicl.yaml"
        params:
            name=_figure.name,
            prefix=_figure.prefix("{tier}"),
            files=figure_files,
            options=figure_options_json(_figure),
        shell:
            "gpicl figure {params.name} --out {params.prefix} {params.files} "
            "--options {params.options:q} > {log} 2>&1"


rule figures:
    input:
        figure_targets(config["tier"]),
