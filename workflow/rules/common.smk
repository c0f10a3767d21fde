# Shared helpers: the config is validated once here, then every rule asks these helpers for
# paths and params (never literals scattered in rules).
import json
import os
import shutil
import sys
from pathlib import Path

sys.path.insert(0, workflow.basedir)  # import this checkout's mfcbench even when not installed
from mfcbench.core import catalogue
from mfcbench.core.cell import CONFIG_FILE, METRICS_FILE, RELPATH
from mfcbench.pipeline.cells import index as cell_index, profile_text, write_cell_configs, write_if_changed
from mfcbench.pipeline.checks import check_cells
from mfcbench.pipeline.schema import ConfigError, apply_defaults, validate_config
from mfcbench.pipeline.summary import format_summary

# Parsing this workflow imports no torch: the schema is shipped generated (mfcbench/pipeline/
# config.schema.yaml, package data; `python -m mfcbench grid --write-schema`), and the start-up checks of every
# cell (which need the model builders) run only when a cell's resolved config is new or changed.
# Defaults are filled by apply_defaults (mfcbench/pipeline/schema.py): overrides stay sparse.
try:
    validate_config(config)
except ConfigError as concise:  # "key: what is allowed", before any job runs
    raise ValueError(str(concise)) from None
apply_defaults(config)
from mfcbench.pipeline import profile_checks  # the profile's text: duplicated keys, paths, NaN, batch sizes

_TEXT_PROBLEMS = profile_checks.file_problems(workflow.configfiles) + profile_checks.check_profile(config)
if _TEXT_PROBLEMS:
    raise ValueError(f"{len(_TEXT_PROBLEMS)} problem(s) in the profile, no job started:\n  " + "\n  ".join(_TEXT_PROBLEMS))
SNAKEMAKE_PID = os.getpid()  # training jobs stop when this process is gone (train --watch-pid)
from mfcbench.pipeline import runlock  # held until this process exits: `dvc repro` refuses meanwhile

# one run per checkout, refused here (naming the other run's PID and profile) before Snakemake's own lock and any
# write; a dry run takes none; jobs (and their nested dvc) inherit MFCBENCH_RUN_LOCK_HOLDER
runlock.hold(workflow.basedir, config["profile"], sys.argv)

PROFILE = config["profile"]
RESULTS = f"{config['results_dir']}/{PROFILE}"
REPORTS = config["reports_dir"]
LOGS = f"{config['logs_dir']}/{PROFILE}"
DATA = config["data_root"]
CELLS = cell_index(config)  # relpath -> Cell (mfcbench/core/cell.py)
# with a table's seed_plan, the seeds its plan_seeds checkpoint may add (seeds.smk): rules look cells up here
POOL = cell_index(config, pool=True)
from mfcbench.pipeline import seeds as _seeds

_SEED_PLAN_PROBLEMS = _seeds.check_plans(config)
if _SEED_PLAN_PROBLEMS:
    raise ValueError(f"{len(_SEED_PLAN_PROBLEMS)} problem(s) in the profile, no job started:\n  " + "\n  ".join(_SEED_PLAN_PROBLEMS))
TABLES = list(config["tables"])  # trained tables: cells, gathered
PY = "python -m mfcbench"

# Every cell's cell.yaml (its resolved training options, the train rule's input) is written here, at
# parse time, and only when its text changes: a changed cell retrains, an unchanged one keeps its
# mtime. Before any file is written, a new or changed profile is checked cell by cell (one line per
# problem, no job started). The profile as this run sees it is written the same way (config.yaml for
# the reports, visualise/profile.yaml for the figures: without `extras`, which changes no figure).
try:
    # the cells earlier seed plans added are kept current too (a changed profile retrains them as well)
    _CHANGED = write_cell_configs(config, RESULTS, {**CELLS, **_seeds.planned_cells(config, RESULTS)}, check=check_cells)
    write_if_changed(f"{RESULTS}/config.yaml", profile_text(config))
    write_if_changed(f"{RESULTS}/visualise/profile.yaml", profile_text(config, drop=("extras",), sort_keys=True))
except ConfigError as problems:  # one line per problem, or the folder that cannot be written
    raise ValueError(str(problems)) from None
# `snakemake -n` shows the cells (and their closed-form #WU when the check above already loaded torch)
print(format_summary(config, work_units=bool(_CHANGED)), file=sys.stderr)

# What each output is and which command makes it: mfcbench/core/catalogue.py (one place)
EXTRAS = lookup(dpath="extras", within=config, default=[])
DISCREPANCY = {o.id: o.command.split("--conv ")[1] for o in catalogue.by_command("experiment discrepancy").values()}
REPORT_FIGURES = catalogue.by_report("report figure")  # fig3, 4, 5, 7: `report figure` from result CSVs
VISUAL_FIGURES = catalogue.by_report("visualise")  # fig1, 2, 9-15: `visualise` (figures.smk)


wildcard_constraints:
    table="|".join(TABLES),
    strategy_dir=r"[^/]+",
    seed=r"\d+",


def cell_of(wildcards):
    """The grid cell a training rule's wildcards name (KeyError = not in this profile's grid)."""
    rel = RELPATH.format(**dict(wildcards.items()))
    try:
        return POOL[rel]
    except KeyError:
        raise ValueError(f"{rel} is not a cell of profile {PROFILE!r}") from None


def extra_tables():
    """Experiment/measurement tables this profile builds (extras), besides the trained TABLES."""
    return [t for t in catalogue.by_report("report table") if t not in TABLES and builds(t)]


def failure_stamp(cell_dir):
    """'' for a cell without a failure record, else the record's time (see the train rule's params)."""
    path = Path(cell_dir) / METRICS_FILE
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return ""
    return str((record.get("manifest") or {}).get("finished_at")) if record.get("status") == "failed" else ""


def cell_dirs(table):
    return [f"{RESULTS}/{rel}" for rel, cell in CELLS.items() if cell.table == table]


def prepared(dataset, size=None):
    size = size or config["datasets"][dataset]["image_size"]
    return f"{DATA}/prepared/{dataset}/{size}/checksum.txt"


def dvc_profile():
    """The profile dvc.yaml's stages prepare (its first `vars` file), or None."""
    import yaml

    try:
        dvc = yaml.safe_load(Path("dvc.yaml").read_text())
        source = dvc["vars"][0].split(":")[0]
        return yaml.safe_load(Path(source).read_text()).get("profile", "default")
    except Exception:
        return None


def use_dvc():
    """Fetch data through DVC only when run directly (inside a DVC stage DVC holds our outputs)."""
    return (lookup(dpath="use_dvc", within=config) == "auto" and shutil.which("dvc") is not None and Path(".dvc").is_dir()
            and Path(".git").exists()  # DVC repos live in git repos
            and not os.environ.get("DVC_STAGE") and dvc_profile() == PROFILE)


def builds(output):
    """Whether this profile builds a catalogue output: a trained table of `tables`, or an extra whose
    trained inputs are trained and whose required key (Figure 6: a SAM checkpoint) is set."""
    entry = catalogue.get(output)
    if entry.kind == "table":
        return entry.id in TABLES
    return (entry.id in EXTRAS and catalogue.trained_inputs(entry.id) <= set(TABLES)
            and (not entry.requires or bool(lookup(dpath=entry.requires, within=config, default=None))))


def all_reports():
    """Every reports/ file `rule all` builds, from the catalogue: tables first, then figures, then verdicts."""
    built = [o for o in catalogue.OUTPUTS if o.report and builds(o.id)]
    targets = [f"{REPORTS}/{o.id}.csv" for o in built if not o.is_figure]
    targets += [f"{REPORTS}/{o.id}.png" for o in built if o.is_figure]
    return targets + [f"{REPORTS}/claims.csv", f"{REPORTS}/REPORT.md"]


PUBLISHED = f"reports/published/{PROFILE}"  # the committed snapshot a reviewer reads (rule publish)


def published_files():
    """What `rule publish` copies into PUBLISHED: every report, and the data behind each figure."""
    files = [Path(t).name for t in all_reports()]
    return files + [f[:-4] + ".csv" for f in files if f.endswith(".png")] + ["pairs.csv", "cells.csv"]  # every figure's data
