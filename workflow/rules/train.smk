# Cells: results/<profile>/<table>/<task>/<dataset>/<arch>/<strategy>[+variant]/seed<k>/
# Each cell's resolved training options are written to cell.yaml when the Snakefile is read (common.smk;
# rewritten only when they change, which then retrains the cell); the runner writes metrics.json,
# curve.csv and checkpoint.pt.
CELL = RELPATH  # mfcbench/core/cell.py: Cell.relpath's pattern, one wildcard per coordinate
from mfcbench.pipeline.cells import table_size
from mfcbench.pipeline.gather import trained_on_other_data


def data_checksum_file(table):
    """The checksum.txt of a table's dataset at the table's size (`table_size`: a ladder's rung may prepare its
    dataset at another size), through the prepare checkpoint: jobs that read it are evaluated again after
    prepare reruns (a changed prepare_options), against the new data."""
    dataset, size = config["tables"][table]["dataset"], table_size(config, table)
    return checkpoints.prepare.get(dataset=dataset, size=size).output.checksum


def data_input(wildcards):
    """The prepared dataset a cell reads; ancient(): DVC restores files without their mtimes. A cell
    whose metrics.json records other data than checksum.txt holds takes it as a plain input: the
    newer, changed checksum.txt then retrains it (gather refuses it otherwise)."""
    checksum = data_checksum_file(wildcards.table)
    cell = f"{RESULTS}/{cell_of(wildcards).relpath()}"
    return [checksum if trained_on_other_data(cell, checksum) else ancient(checksum)]


def retry_marker(wildcards):
    """A failed cell records its error in metrics.json (so reports name it) and is retried on the next
    run: the failure's time is written to logs/<profile>/<cell>/retry, a newer input of the train job
    (a params value would not do: one computed from `output` is never compared, and one that changes
    back after the retry would retrain the cell once more). Rewritten only for a new failure."""
    rel = cell_of(wildcards).relpath()
    stamp, marker = failure_stamp(f"{RESULTS}/{rel}"), Path(f"{LOGS}/{rel}/retry")
    if stamp and (not marker.is_file() or marker.read_text() != stamp):
        from mfcbench.core.atomic import write_text

        write_text(marker, stamp)
    return [str(marker)] if marker.is_file() else []


rule train:
    input:
        config=f"{RESULTS}/{CELL}/{CONFIG_FILE}",  # written at parse time (common.smk), only when it changes
        data=data_input,
        retry=lambda wc: retry_marker(wc),
    output:
        metrics=f"{RESULTS}/{CELL}/{METRICS_FILE}",
    log:
        f"{LOGS}/{CELL}/train.log",
    message:
        "train {wildcards.table}: {wildcards.arch} {wildcards.strategy_dir} seed {wildcards.seed}"
    threads: lookup(dpath="threads_per_cell", within=config, default=1)
    resources:
        gpu=1 if lookup(dpath="gpu", within=config) else 0,
    params:
        strategy=lambda wc: cell_of(wc).strategy,
        out=lambda wc, output: os.path.dirname(output.metrics),
        device=lookup(dpath="device", within=config),
    shell:
        "{PY} train --task {wildcards.task:q} --dataset {wildcards.dataset:q} --arch {wildcards.arch:q} "
        "--strategy {params.strategy:q} --seed {wildcards.seed:q} --config {input.config:q} "
        "--out {params.out:q} --device {params.device:q} --on-stale restart --watch-pid {SNAKEMAKE_PID} --require-prepared "
        "--record-failure "
        "> {log:q} 2>&1"


def missing_cells_marker(table):
    """A gathered table whose cells' metrics.json are gone (rm -rf of a cell folder): Snakemake 9 does
    not rerun a job because an intermediate input was deleted (snakemake/snakemake#1978), so the
    missing cells are written to logs/<profile>/gather/<table>.missing, a newer input of the gather,
    which then retrains them first. Rewritten only when the missing cells or the table change."""
    table_csv, marker = Path(f"{RESULTS}/{table}.csv"), Path(f"{LOGS}/gather/{table}.missing")
    missing = [d for d in gathered_dirs(table) if not os.path.exists(f"{d}/{METRICS_FILE}")]
    if table_csv.is_file() and missing:
        text = f"{table_csv} (mtime {table_csv.stat().st_mtime_ns}) lists cells now missing:\n" + "\n".join(missing) + "\n"
        if not marker.is_file() or marker.read_text() != text:
            from mfcbench.core.atomic import write_text

            write_text(marker, text)
            print(f"{len(missing)} cell(s) of {table_csv} are missing ({', '.join(missing)}): "
                  "retraining them and gathering again", file=sys.stderr)
    return [str(marker)] if marker.is_file() else []


rule gather:
    input:
        cells=lambda wc: [f"{d}/{METRICS_FILE}" for d in gathered_dirs(wc.table)],  # with a seed plan's cells (seeds.smk)
        data=lambda wc: ancient(data_checksum_file(wc.table)),
        missing=lambda wc: missing_cells_marker(wc.table),
    output:
        table=f"{RESULTS}/{{table}}.csv",
        curves=f"{RESULTS}/curves_{{table}}.csv",
    log:
        f"{LOGS}/gather/{{table}}.log",
    params:
        cells=lambda wc: gathered_dirs(wc.table),
    shell:
        "{PY} gather --profile {PROFILE:q} --table {wildcards.table:q} --out {output.table:q} "
        "--curves-out {output.curves:q} --data-checksum {input.data:q} {params.cells:q} > {log:q} 2>&1"



onstart:
    # SIGTERM to Snakemake (a batch system's or systemd's stop, `kill PID`) ends the run within seconds:
    # Snakemake alone stops scheduling and waits for every running job to finish; this also ends the
    # running job shells (a `train` then gets SIGTERM from its parent's death and stops as on Ctrl-C,
    # checkpointed). Set here: the scheduler sets its handler after the Snakefile is read, before onstart.
    import signal
    from snakemake.shell import shell as _job_shells

    _graceful = signal.getsignal(signal.SIGTERM)

    def _stop_jobs(signum, frame):
        if callable(_graceful):
            _graceful(signum, frame)
        for proc in list(getattr(_job_shells, "_processes", {}).values()):
            proc.terminate()

    signal.signal(signal.SIGTERM, _stop_jobs)
