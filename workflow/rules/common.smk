# Shared helpers: the config is validated once here, then every rule asks these helpers for
# paths and params (never literals scattered in rules).
import json
import os
import shutil
import sys
from pathlib import Path

sys.path.insert(0, workflow.basedir)  # import this checkout's mfcbench even when not installed
from mfcbench.pipeline import grid

# The schema file plus its generated parts (training options, task and strategy names: one source
# each, see grid.load_schema). Defaults are filled by grid.apply_defaults: overrides stay sparse.
try:
    grid.validate_config(config)
except grid.ConfigError as concise:  # "key: what is allowed", before any job runs
    raise ValueError(str(concise)) from None
grid.apply_defaults(config)
if not os.environ.get("MFCBENCH_CELLS_CHECKED"):  # every cell's start-up checks, before any job runs
    _problems = grid.check_cells(config)  # (once: `run:` jobs re-parse the Snakefile in a child process)
    if _problems:
        raise ValueError(f"{len(_problems)} problem(s) in the profile, no job started:\n  " + "\n  ".join(_problems))
    os.environ["MFCBENCH_CELLS_CHECKED"] = "1"
SNAKEMAKE_PID = os.getpid()  # training jobs stop when this process is gone (train --watch-pid)

PROFILE = config["profile"]
RESULTS = f"{config['results_dir']}/{PROFILE}"
REPORTS = config["reports_dir"]
LOGS = f"{config['logs_dir']}/{PROFILE}"
DATA = config["data_root"]
CELLS = grid.index(config)  # relpath -> Cell
TABLES = list(config["tables"])  # trained tables: cells, gathered
MEASURED = ["table11", "table13", "table15"]  # tables produced by measurement commands, not cells
DISCREPANCY = {"table1": "standard", "table2": "mfc"}  # Tables 1-2: `mfcbench experiment discrepancy`
EXPERIMENT_TABLES = ["table9"]  # results/<profile>/table9.csv from `mfcbench experiment sam` (experiments.smk)
# reports/<fig>.png (+ its data) built by experiments.smk (fig8) and figures.smk (fig1, fig2, fig9-fig15)
EXTRA_FIGURES = ["fig1", "fig2", "fig8", "fig9", "fig10", "fig11", "fig12", "fig13", "fig14", "fig15"]
PY = "python -m mfcbench"

if not os.environ.get("MFCBENCH_SUMMARY_SHOWN"):  # `snakemake -n` shows cells and closed-form #WU,
    print(grid.format_summary(config), file=sys.stderr)  # once: jobs re-parse the Snakefile
    os.environ["MFCBENCH_SUMMARY_SHOWN"] = "1"


wildcard_constraints:
    table="|".join(TABLES),
    strategy_dir=r"[^/]+",
    seed=r"\d+",


def param(*keys, default=None):
    """The one lookup helper for config values used by rules: param("measure", "quick")."""
    node = config
    for key in keys:
        if not isinstance(node, dict) or key not in node:
            return default
        node = node[key]
    return node


def cell_of(wildcards):
    """The grid cell a training rule's wildcards name (KeyError = not in this profile's grid)."""
    rel = "/".join((wildcards.table, wildcards.task, wildcards.dataset, wildcards.arch,
                    wildcards.strategy_dir, f"seed{wildcards.seed}"))
    try:
        return CELLS[rel]
    except KeyError:
        raise ValueError(f"{rel} is not a cell of profile {PROFILE!r}") from None


def extra_tables():
    """Experiment/measurement tables this profile builds (extras), besides the trained TABLES."""
    return [t for t in (*DISCREPANCY, *EXPERIMENT_TABLES, *MEASURED) if t in extras()]


def failure_stamp(cell_dir):
    """'' for a cell without a failure record, else the record's time (see the train rule's params)."""
    path = Path(cell_dir) / "metrics.json"
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
    return (param("use_dvc") == "auto" and shutil.which("dvc") is not None and Path(".dvc").is_dir()
            and Path(".git").exists()  # DVC repos live in git repos
            and not os.environ.get("DVC_STAGE") and dvc_profile() == PROFILE)


def extras():
    return param("extras", default=[])


def all_reports():
    targets = [f"{REPORTS}/{t}.csv" for t in TABLES + extra_tables()]
    targets += [f"{REPORTS}/{f}.png" for f in ("fig3", "fig7") if f in extras()]
    targets += [f"{REPORTS}/{f}.png" for f in EXTRA_FIGURES if f in extras()]
    if "fig6" in extras() and param("sam", "checkpoint"):  # drawn only from a real SAM checkpoint
        targets.append(f"{REPORTS}/fig6.png")
    if "fig4" in extras() and "table3" in TABLES:
        targets.append(f"{REPORTS}/fig4.png")
    if "fig5" in extras() and "table4" in TABLES:
        targets.append(f"{REPORTS}/fig5.png")
    targets += [f"{REPORTS}/claims.csv", f"{REPORTS}/REPORT.md"]
    return targets


PUBLISHED = f"reports/published/{PROFILE}"  # the committed snapshot a reviewer reads (rule publish)


def published_files():
    """What `rule publish` copies into PUBLISHED: every report, and the data behind each figure."""
    files = [Path(t).name for t in all_reports()]
    return files + [f[:-4] + ".csv" for f in files if f.startswith("fig") and f.endswith(".png")]
