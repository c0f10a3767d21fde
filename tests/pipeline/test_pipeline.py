"""End to end on the tiny profile: Snakemake and DVC in a throw-away copy of the repo.

These are the proof that the README's main command works: `pytest` (and CI's .ci/run) runs them;
about a minute on 2 cores. `pytest -m "not slow"` leaves them out for a quick loop.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from _cluster import commit_all, copy_pipeline

pytestmark = pytest.mark.slow

TINY = "workflow/config/tiny.yaml"


def _require_tools() -> None:
    for tool in ("snakemake", "git"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed")


def _env() -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DVC_")}
    # the copy's own mfcbench comes first (snakemake also puts it on sys.path via common.smk)
    return {**env, "OMP_NUM_THREADS": "1", "MFCBENCH_OFFLINE": "1", "PYTHONPATH": "."}


def _run(args, cwd, timeout=240):
    proc = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=_env())
    if proc.returncode != 0:
        logs = "\n".join(f"--- {p}\n{p.read_text()[-1500:]}" for p in Path(cwd, "logs").rglob("*.log")
                         if "rror" in p.read_text())
        pytest.fail(f"{' '.join(args)} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}\n{logs}")
    return proc


@pytest.fixture()
def repo(tmp_path):
    """The repo's pipeline files copied into a fresh git repo (DVC needs one) with one commit."""
    return commit_all(copy_pipeline(tmp_path))


def _frame(path: Path):
    import pandas as pd

    assert path.is_file(), f"{path} was not written"
    return pd.read_csv(path)


def test_snakemake_table4_on_tiny_then_rerun_does_nothing(repo):
    _require_tools()
    # the committed snapshot (reports/published/<profile>/) is never what a fresh clone serves
    (repo / "reports/published/tiny").mkdir(parents=True)
    (repo / "reports/published/tiny/table4.csv").write_text("stale committed copy\n")
    commit_all(repo, "committed reports")
    _run([sys.executable, "-m", "snakemake", "reports/table4.csv", "--cores", "2", "--configfile", TINY], repo)

    cells = _frame(repo / "results/tiny/table4.csv")
    assert sorted(cells["strategy"]) == ["msgd", "sgd"] and set(cells["status"]) == {"ok"}
    assert cells["val_mse"].notna().all() and (cells["wu_executed"] > 0).all()
    assert set(cells["profile"]) == {"tiny"} and cells["git_commit"].notna().all()
    # WU: the multiscale step is cheaper than the matched single-scale step (same iteration count)
    wu = cells.set_index("strategy")["wu_closed_form"]
    assert wu["msgd"] < wu["sgd"]
    assert (repo / "reports/table4.csv").stat().st_size > 0
    assert "stale committed copy" not in (repo / "reports/table4.csv").read_text()  # built from scratch
    assert (repo / "results/tiny/table4/denoise/skimage/resnet/msgd/seed0/cell.yaml").is_file()
    assert (repo / "logs/tiny/table4/denoise/skimage/resnet/msgd/seed0/train.log").is_file()

    before = (repo / "results/tiny/table4.csv").stat().st_mtime_ns
    again = _run([sys.executable, "-m", "snakemake", "reports/table4.csv", "--cores", "2", "--configfile", TINY], repo)
    assert "Nothing to be done" in again.stdout + again.stderr
    assert (repo / "results/tiny/table4.csv").stat().st_mtime_ns == before
    # a change to the report code rebuilds the report from the same results, and trains nothing
    code = repo / "mfcbench/report/layout.py"
    code.write_text(code.read_text() + "\n# edited\n")  # Snakemake >= 9.18 compares checksums, not mtimes
    plan = _run([sys.executable, "-m", "snakemake", "-n", "reports/table4.csv", "--configfile", TINY], repo)
    planned = plan.stdout + plan.stderr
    assert "rule report_table:" in planned and not re.search(r"^train +\d+$", planned, re.M), planned[-2000:]
    # a changed resolved config rewrites that cell's cell.yaml, and only its: exactly that cell retrains
    sgd_config = repo / "results/tiny/table4/denoise/skimage/resnet/sgd/seed0/cell.yaml"
    mtime = sgd_config.stat().st_mtime_ns
    plan = _run([sys.executable, "-m", "snakemake", "-n", "reports/table4.csv", "--configfile", TINY,
                 "--config", 'strategy_overrides={"msgd": {"lr_schedule": "cosine"}}'], repo)
    planned = plan.stdout + plan.stderr
    assert re.search(r"^train +1$", planned, re.M) and "resnet msgd seed 0" in planned, planned[-2000:]
    assert sgd_config.stat().st_mtime_ns == mtime


def test_dvc_repro_on_tiny_then_rerun_is_a_fast_no_op(repo):
    _require_tools()
    if shutil.which("dvc") is None:
        pytest.skip("dvc is not installed")
    dvc_yaml = repo / "dvc.yaml"
    dvc_yaml.write_text(dvc_yaml.read_text().replace("workflow/config/default.yaml", TINY))
    commit_all(repo, "tiny profile")

    _run(["dvc", "repro"], repo, timeout=300)
    assert (repo / "data/prepared/skimage/16/checksum.txt").is_file()
    assert (repo / "data/raw/skimage/SOURCE.txt").is_file()
    t1 = _frame(repo / "results/tiny/table1.csv")
    assert {"conv", "input", "resolution", "discrepancy"} <= set(t1.columns) and set(t1["conv"]) == {"standard"}
    assert len(_frame(repo / "results/tiny/table4.csv")) == 2
    assert len(_frame(repo / "results/tiny/table13.csv")) > 0
    claims = _frame(repo / "reports/claims.csv")
    assert {"verdict"} <= set(claims.columns) and len(claims) > 0
    assert (repo / "reports/REPORT.md").read_text().strip()
    # an ordinary run writes no tracked file: the committed snapshot is written only by `publish`
    assert not (repo / "reports/published/tiny").exists()
    assert (repo / "dvc.lock").is_file()

    again = _run(["dvc", "repro"], repo)  # a no-op: nothing runs (its speed is measured in the README, not here)
    assert "didn't change, skipping" in again.stdout or "Data and pipelines are up to date" in again.stdout, again.stdout
    assert "Running stage" not in again.stdout
