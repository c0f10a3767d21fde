# Reports read result files only: paper-layout tables, figures, claims, REPORT.md.
# `snakemake --report report.html` after a run: the landing page shows the verdict table.

report: "../report/workflow.rst"


def results_inputs():
    """Every results file of this profile: the claims and REPORT.md read them all."""
    files = [f"{RESULTS}/{t}.csv" for t in TABLES + extra_tables()] + [f"{RESULTS}/workunits.csv"]
    files += [f"{RESULTS}/curves_{t}.csv" for t in TABLES]
    files += [f"{RESULTS}/{x}.csv" for x in ("flops_models", "fig3", "fig7", "lemma4", "fig8") if x in extras()]
    return files


# The report code and its data files: a report rule reruns when they change (reports are cheap, and a
# verdict or layout fixed in the code must not leave an old claims.csv or REPORT.md behind).
REPORT_CODE = sorted(str(p) for p in Path(grid.__file__).parent.parent.glob("report/**/*")
                     if p.suffix in (".py", ".yaml")) + [str(Path(grid.__file__).parent.parent / "figures" / "paper.py")]

FIGURE_INPUTS = {
    "fig3": [f"{RESULTS}/fig3.csv"],
    "fig4": [f"{RESULTS}/curves_table3.csv"],  # blur: gradient norm and validation metric, conv vs MFC
    "fig5": [f"{RESULTS}/curves_table4.csv"],  # denoise: validation metric against #WU, a panel per network
    "fig7": [f"{RESULTS}/fig7.csv"],
}


def table_inputs(name):
    """The result CSVs a paper table reads (published.yaml's `results`, e.g. Table 10 reads Table 7's SGD cells too)."""
    from mfcbench.report.published import load_published

    files = load_published()["tables"].get(name, {}).get("results") or [f"{name}.csv"]
    return [f"{RESULTS}/{f}" for f in files]


rule report_table:
    input:
        data=lambda wc: table_inputs(wc.name),
        code=REPORT_CODE,
    output:
        f"{REPORTS}/{{name}}.csv",
    log:
        f"{LOGS}/report/{{name}}.log",
    wildcard_constraints:
        name="|".join(TABLES + list(DISCREPANCY) + EXPERIMENT_TABLES + MEASURED),
    params:
        inputs=lambda wc, input: " ".join(f"--input {f}" for f in input.data),
    shell:
        "{PY} report table --name {wildcards.name} {params.inputs} --out {output} > {log} 2>&1"


rule report_figure:
    input:
        data=lambda wc: FIGURE_INPUTS[wc.fig],
        code=REPORT_CODE,
    output:
        png=report(f"{REPORTS}/{{fig}}.png", caption="../report/figure.rst", category="Figures",
                   labels={"figure": "{fig}"}),
        data=f"{REPORTS}/{{fig}}.csv",
    log:
        f"{LOGS}/report/{{fig}}.log",
    wildcard_constraints:
        fig="|".join(FIGURE_INPUTS),
    shell:
        "{PY} report figure --name {wildcards.fig} --input {input.data} --out {output.png} > {log} 2>&1"


rule claims:
    input:
        results_inputs(),
        code=REPORT_CODE,
    output:
        report(f"{REPORTS}/claims.csv", caption="../report/claims.rst", category="Verdicts"),
    log:
        f"{LOGS}/report/claims.log",
    shell:
        "{PY} report claims --results-dir {RESULTS} --out {output} > {log} 2>&1"


rule run_manifest:
    """What produced this profile's reports: the resolved config, commit, versions, the scale (each
    cell's own commit is in its metrics.json and the gathered tables' git_commit column)."""
    input:
        results_inputs(),
        code=REPORT_CODE,
    output:
        manifest=f"{RESULTS}/manifest.json",
        config=f"{RESULTS}/config.yaml",
    log:
        f"{LOGS}/report/manifest.log",
    run:
        import yaml
        from mfcbench.core.atomic import write_json, write_text
        from mfcbench.train.manifest import git_state, now, versions

        commit, dirty = git_state()
        d = config["defaults"]
        write_text(output.config, yaml.safe_dump(dict(config), sort_keys=False))
        write_json(output.manifest, {
            "profile": PROFILE, "generated_at": now(), "git_commit": commit, "git_dirty": dirty,
            "versions": versions(), "device_setting": config["device"],
            "datasets": {name: spec["image_size"] for name, spec in config["datasets"].items()},
            "scale": f"{d['levels']} levels, N0 {d['batch_size']}, val_size {d['val_size']}; iterations per level "
                     f"{grid.schedule_summary(config)}",
            "seeds": {table: spec["seeds"] for table, spec in config["tables"].items()},
        })
        Path(log[0]).write_text(f"wrote {output.manifest} and {output.config}\n")


rule report_markdown:
    input:
        results_inputs(),
        [t for t in all_reports() if not t.endswith("REPORT.md")],
        code=REPORT_CODE,
        manifest=rules.run_manifest.output.manifest,
        config=rules.run_manifest.output.config,
    output:
        report(f"{REPORTS}/REPORT.md", caption="../report/markdown.rst", category="Verdicts"),
    log:
        f"{LOGS}/report/markdown.log",
    shell:
        "{PY} report markdown --results-dir {RESULTS} --reports-dir {REPORTS} --profile {PROFILE} "
        "--config {input.config} --out {output} > {log} 2>&1"


rule publish:
    """Copy this profile's reports into reports/published/<profile>/, the snapshot committed to git for
    reviewers. The pipeline itself never reads it: a fresh clone rebuilds reports/ from scratch."""
    input:
        [f"{REPORTS}/{name}" for name in published_files()],
    output:
        [f"{PUBLISHED}/{name}" for name in published_files()],
    log:
        f"{LOGS}/report/publish.log",
    run:
        for src, dst in zip(input, output):
            Path(dst).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dst)
        Path(log[0]).write_text(f"published {len(output)} files to {PUBLISHED}\n")
