# Cells: results/<profile>/<table>/<task>/<dataset>/<arch>/<strategy>[+variant]/seed<k>/
# Each cell's resolved training options are written to cell.yaml when the Snakefile is read (common.smk;
# rewritten only when they change, which then retrains the cell); the runner writes metrics.json,
# curve.csv and checkpoint.pt.
CELL = "{table}/{task}/{dataset}/{arch}/{strategy_dir}/seed{seed}"


def data_input(wildcards):
    """The prepared dataset a cell reads; ancient(): DVC restores files without their mtimes."""
    return [ancient(prepared(cell_of(wildcards).dataset))]


rule train:
    input:
        config=f"{RESULTS}/{CELL}/cell.yaml",  # written at parse time (common.smk), only when it changes
        data=data_input,
    output:
        metrics=f"{RESULTS}/{CELL}/metrics.json",
    log:
        f"{LOGS}/{CELL}/train.log",
    message:
        "train {wildcards.table}: {wildcards.arch} {wildcards.strategy_dir} seed {wildcards.seed}"
    threads: lookup(dpath="threads_per_cell", within=config, default=1)
    resources:
        gpu=1 if lookup(dpath="gpu", within=config) else 0,
    params:
        # A failed cell records its error in metrics.json (so reports name it) and is retried on the
        # next run: this value changes when a new failure is recorded, and Snakemake reruns a job whose
        # params changed.
        retry=lambda wc, output: failure_stamp(os.path.dirname(output.metrics)),
        strategy=lambda wc: cell_of(wc).strategy,
        out=lambda wc, output: os.path.dirname(output.metrics),
        device=lookup(dpath="device", within=config),
    shell:
        "{PY} train --task {wildcards.task} --dataset {wildcards.dataset} --arch {wildcards.arch} "
        "--strategy {params.strategy} --seed {wildcards.seed} --config {input.config} "
        "--out {params.out} --device {params.device} --on-stale restart --watch-pid {SNAKEMAKE_PID} --record-failure "
        "> {log} 2>&1"


rule gather:
    input:
        lambda wc: [f"{d}/metrics.json" for d in cell_dirs(wc.table)],
    output:
        table=f"{RESULTS}/{{table}}.csv",
        curves=f"{RESULTS}/curves_{{table}}.csv",
    log:
        f"{LOGS}/gather/{{table}}.log",
    params:
        cells=lambda wc: cell_dirs(wc.table),
    shell:
        "{PY} gather --profile {PROFILE} --table {wildcards.table} --out {output.table} "
        "--curves-out {output.curves} {params.cells} > {log} 2>&1"
