"""Fault classes where the pipeline could show a result that no longer matches the data or the cells
on disk (issue 20, "Broken" 1-2): a cell trained on other data is refused by gather and retrained by
the pipeline; a deleted cell folder is retrained, not left in the gathered table."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from _cells import CELL, TINY  # noqa: E402,F401
from _cells import trained_cell as _trained_cell
from _cluster import CONFIG, make_repo

from mfcbench.pipeline.gather import GatherError, gather


def test_gather_refuses_a_cell_trained_on_other_data(tmp_path):
    out = _trained_cell(tmp_path)
    recorded = json.loads((out / "metrics.json").read_text())["manifest"]["dataset_checksum"]
    checksum = tmp_path / "checksum.txt"
    checksum.write_text(recorded + "\n")
    assert len(gather([out], data_checksum=checksum)[0]) == 1
    checksum.write_text("6e33586a" + "0" * 56 + "\n")  # prepare_options changed: other data now
    with pytest.raises(GatherError, match=rf"1 cell\(s\) were trained on other data than {checksum} .*{out}.*rerun snakemake"):
        gather([out], data_checksum=checksum)
    checksum.unlink()  # no prepared data to compare with (an embedded dataset built in memory): nothing refused
    assert len(gather([out], data_checksum=checksum)[0]) == 1


def _env() -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DVC_", "MFCBENCH_CELLS", "MFCBENCH_SUMMARY"))}
    return {**env, "OMP_NUM_THREADS": "1", "MFCBENCH_OFFLINE": "1", "PYTHONPATH": "."}


def _snakemake(repo: Path, *args: str) -> str:
    proc = subprocess.run([sys.executable, "-m", "snakemake", *args, "--cores", "2", "--configfile", CONFIG],
                          cwd=repo, env=_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout + proc.stderr


def _sgd_only_repo(tmp_path):
    """A temporary copy of the repository whose minimal profile trains Table 4's SGD cell only."""
    if shutil.which("snakemake") is None:
        pytest.skip("snakemake is not installed")
    repo = make_repo(tmp_path / "repo")
    profile = yaml.safe_load((repo / CONFIG).read_text())
    profile["tables"]["table4"]["strategies"] = ["sgd"]
    (repo / CONFIG).write_text(yaml.safe_dump(profile))
    return repo, profile


@pytest.mark.slow
def test_a_data_change_retrains_and_a_deleted_cell_is_retrained(tmp_path):
    """limit-train 32 -> 16 retrains the cell in the same run (no table of the old data); rm -rf of the
    cell folder plans its training again (Snakemake alone said "Nothing to be done")."""
    repo, profile = _sgd_only_repo(tmp_path)
    target = "results/minimal/table4.csv"
    cell = repo / "results/minimal" / CELL
    _snakemake(repo, target)
    first = json.loads((cell / "metrics.json").read_text())["manifest"]["dataset_checksum"]

    profile["datasets"]["skimage"]["prepare_options"]["limit-train"] = 16
    (repo / CONFIG).write_text(yaml.safe_dump(profile))
    _snakemake(repo, target)
    current = (repo / "data/prepared/skimage/16/checksum.txt").read_text().strip()
    assert current != first
    assert json.loads((cell / "metrics.json").read_text())["manifest"]["dataset_checksum"] == current
    import pandas as pd

    assert list(pd.read_csv(repo / target)["dataset_checksum"]) == [current]

    shutil.rmtree(cell)
    plan = _snakemake(repo, "-n", target)
    assert re.search(r"^train\s+1$", plan, re.M) and re.search(r"^gather\s+1$", plan, re.M), plan[-2000:]
    assert f"1 cell(s) of {target} are missing" in plan


@pytest.mark.slow
def test_a_failed_cell_is_retried_on_the_next_run(tmp_path):
    """A cell whose metrics.json records a failure is planned again (its `retry` params value was computed
    from `output`, which Snakemake never compares: the failure stayed in the reports for good)."""
    repo, profile = _sgd_only_repo(tmp_path)
    subprocess.run([sys.executable, "-m", "mfcbench", "prepare", "--dataset", "skimage", "--image-size", "16",
                    "--root", "data", "--limit-train", "32", "--limit-val", "8"], cwd=repo, env=_env(), check=True,
                   capture_output=True, timeout=120)
    cell = repo / "results/minimal" / CELL
    cell.mkdir(parents=True)
    (cell / "metrics.json").write_text(json.dumps({"status": "failed", "error": "RuntimeError: out of memory",
                                                   "manifest": {"finished_at": "2026-12-04T10:00:00"}}))
    plan = _snakemake(repo, "-n", "results/minimal/table4.csv")
    assert re.search(r"^train\s+1$", plan, re.M), plan[-2000:]
