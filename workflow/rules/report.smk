# Reports read result files only: paper-layout tables, figures, claims, REPORT.md.
# `snakemake --report report.html` after a run: the landing page shows the verdict table.

report: "../report/workflow.rst"


def results_inputs():
    """Every results file of this profile (the catalogue's outputs it builds): the claims and REPORT.md read them all."""
    files = [f"{RESULTS}/{o.result}" for o in catalogue.OUTPUTS if o.result and builds(o.id)]
    files += [f"{RESULTS}/{t}.csv" for t in TABLES if t not in catalogue.CATALOGUE]  # a ladder's rungs (tableN_<rung>)
    files += [f"{RESULTS}/workunits.csv"] + [f"{RESULTS}/curves_{t}.csv" for t in TABLES]
    return files + [plan_file(t) for t in PLANNED_TABLES]  # pairs.csv says the seeds each pair received


# The report code and its data files: a report rule reruns when they change (reports are cheap, and a
# verdict or layout fixed in the code must not leave an old claims.csv or REPORT.md behind).
REPORT_CODE = sorted(str(p) for p in Path(catalogue.__file__).parent.parent.glob("report/**/*")
                     if p.suffix in (".py", ".yaml")) + [str(Path(catalogue.__file__).parent.parent / f)
                                                         for f in ("figures/paper.py", "figures/ladder.py",
                                                                   "figures/save.py", "core/labels.py")]
# The shipped profiles: REPORT.md names, for each NOT_RUN claim, the profile that decides it (report/deciders.py)
SHIPPED_PROFILES = sorted(str(p) for p in Path(workflow.basedir, "workflow", "config").glob("*.yaml"))
# The training modules (manifest.training_code): an edit retrains nothing, but the run manifest (the
# current digest) and REPORT.md are rebuilt, which flag the cells trained by other training code.
from mfcbench.train.manifest import training_code_files

TRAINING_CODE = [str(p) for p in training_code_files()]

# the result files each report table and figure reads: the catalogue's `inputs` (checked against
# published.yaml's `results` by tests/test_catalogue.py)
def result_files(names):
    """A catalogue entry's result files; `tableN*.csv` stands for table N and every rung of it (a table key
    tableN_<rung>) this profile trains."""
    import fnmatch

    return [f"{RESULTS}/{f}" for name in names
            for f in ([f"{t}.csv" for t in fnmatch.filter(TABLES, name[:-4])] if "*" in name else [name])]


FIGURE_INPUTS = {fig: result_files(o.inputs) for fig, o in REPORT_FIGURES.items()}


def table_inputs(name):
    """The result CSVs a paper table reads (e.g. Table 10 reads Table 7's SGD cells too)."""
    return [f"{RESULTS}/{f}" for f in catalogue.get(name).inputs]


rule report_table:
    input:
        data=lambda wc: table_inputs(wc.name),
        code=REPORT_CODE,
    output:
        f"{REPORTS}/{{name}}.csv",
    log:
        f"{LOGS}/report/{{name}}.log",
    wildcard_constraints:
        name="|".join(catalogue.by_report("report table")),
    params:
        inputs=lambda wc, input: [arg for f in input.data for arg in ("--input", f)],  # quoted in shell (:q)
    shell:
        "{PY} report table --name {wildcards.name:q} {params.inputs:q} --out {output:q} > {log:q} 2>&1"


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
    params:
        inputs=lambda wc, input: [arg for f in input.data for arg in ("--input", f)],  # quoted in shell (:q)
    shell:
        "{PY} report figure --name {wildcards.fig:q} {params.inputs:q} --out {output.png:q} > {log:q} 2>&1"


rule claims:
    input:
        results=results_inputs(),
        code=REPORT_CODE,
    output:
        claims=report(f"{REPORTS}/claims.csv", caption="../report/claims.rst", category="Verdicts"),
        pairs=f"{REPORTS}/pairs.csv",  # every compared pair of every claim (n, ratio, interval, p, verdict)
        cells=f"{REPORTS}/cells.csv",  # every cell behind them: any interval can be recomputed from the two
    log:
        f"{LOGS}/report/claims.log",
    shell:
        "{PY} report claims --results-dir {RESULTS:q} --out {output.claims:q} --pairs {output.pairs:q} "
        "--cells {output.cells:q} --only {input.results:q} > {log:q} 2>&1"


rule run_manifest:
    """What produced this profile's reports: commit, versions, the scale (each cell's own commit is in its
    metrics.json and the gathered tables' git_commit column); config.yaml is written at parse time."""
    input:
        results_inputs(),
        code=REPORT_CODE,
        training=TRAINING_CODE,
        config=f"{RESULTS}/config.yaml",
    output:
        manifest=f"{RESULTS}/manifest.json",
    log:
        f"{LOGS}/report/manifest.log",
    shell:
        "{PY} grid --config {input.config:q} --manifest {output.manifest:q} > {log:q} 2>&1"


rule report_markdown:
    input:
        results=results_inputs(),
        built=[t for t in all_reports() if not t.endswith("REPORT.md")],
        code=REPORT_CODE,
        profiles=SHIPPED_PROFILES,
        manifest=rules.run_manifest.output.manifest,
        config=rules.run_manifest.input.config,
    output:
        report(f"{REPORTS}/REPORT.md", caption="../report/markdown.rst", category="Verdicts"),
    log:
        f"{LOGS}/report/markdown.log",
    shell:
        "{PY} report markdown --results-dir {RESULTS:q} --reports-dir {REPORTS:q} --profile {PROFILE:q} "
        "--config {input.config:q} --only {input.results:q} --out {output:q} > {log:q} 2>&1"


rule publish:
    """`snakemake publish --cores all [--configfile P]`, never part of `all` (an ordinary run writes only untracked files):
    copy what this run built in reports/ into reports/published/<profile>/, the snapshot committed to
    git for reviewers, and verify it byte for byte. No output files: it runs whenever asked, so a
    hand-edited snapshot is overwritten; `python -m mfcbench publish --profile P --check` names one.
    The pipeline itself never reads the snapshot: a fresh clone rebuilds reports/ from scratch."""
    input:
        [f"{REPORTS}/{name}" for name in published_files()],
    log:
        f"{LOGS}/report/publish.log",
    params:
        names=published_files(),
    shell:
        "{PY} publish --profile {PROFILE:q} --reports-dir {REPORTS:q} {params.names:q} > {log:q} 2>&1"
