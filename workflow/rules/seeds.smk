# Seeds where they decide: a table with `seed_plan: {cap, step}` trains its `seeds` first (gather_initial:
# results/<profile>/seedplan/<table>.csv), the plan_seeds checkpoint scores that round by the claims (the
# same pairs, intervals, Holm correction and power calculation as claims.csv) and writes <table>.seeds.json
# and the cell.yaml of every cell it adds: seeds for the undecided pairs, as many as the power calculation
# asks, up to the cap, SGD paired. The table's gather (train.smk) then trains and gathers both rounds.
# mfcbench/pipeline/seeds.py (cells, files), mfcbench/report/seedplan.py (the planning rule).
from mfcbench.pipeline import seeds as seedplans

PLANNED_TABLES = seedplans.planned_tables(config)


def plan_file(table):
    return str(seedplans.plan_path(RESULTS, table))


def gathered_dirs(table):
    """Every cell folder a table's gather reads: the initial seeds, and for a planned table the cells its
    seed plan added (read after the plan_seeds checkpoint ran: Snakemake plans them then)."""
    dirs = cell_dirs(table)
    if table in PLANNED_TABLES:
        plan = seedplans.read_plan(checkpoints.plan_seeds.get(table=table).output.plan)
        dirs += [f"{RESULTS}/{rel}" for rel in seedplans.added_cells(config, table, plan or {})]
    return dirs


rule gather_initial:
    """The first round of a planned table (its `seeds`), the plan's input; the table's own CSV holds both rounds."""
    input:
        cells=lambda wc: [f"{d}/{METRICS_FILE}" for d in cell_dirs(wc.table)],
        data=lambda wc: ancient(data_checksum_file(wc.table)),
    output:
        table=f"{RESULTS}/seedplan/{{table}}.csv",
        curves=f"{RESULTS}/seedplan/curves_{{table}}.csv",
    log:
        f"{LOGS}/gather/{{table}}.initial.log",
    params:
        cells=lambda wc: cell_dirs(wc.table),
    wildcard_constraints:
        table="|".join(PLANNED_TABLES) or "no-planned-table",
    shell:
        "{PY} gather --profile {PROFILE:q} --table {wildcards.table:q} --out {output.table:q} "
        "--curves-out {output.curves:q} --data-checksum {input.data:q} {params.cells:q} > {log:q} 2>&1"


checkpoint plan_seeds:
    input:
        table=rules.gather_initial.output.table,
        config=f"{RESULTS}/config.yaml",  # rewritten at parse time only when the profile changes
    output:
        plan=f"{RESULTS}/{{table}}.seeds.json",
    log:
        f"{LOGS}/gather/{{table}}.plan_seeds.log",
    wildcard_constraints:
        table="|".join(PLANNED_TABLES) or "no-planned-table",
    message:
        "plan seeds of {wildcards.table}: more seeds for the pairs the first round leaves undecided"
    shell:
        "{PY} report plan-seeds --config {input.config:q} --table {wildcards.table:q} --input {input.table:q} "
        "--results {RESULTS:q} --out {output.plan:q} > {log:q} 2>&1"
