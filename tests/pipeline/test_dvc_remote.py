"""Sharing results between machines through a DVC remote (README "DVC"), on a minimal profile.

`dvc repro` + `dvc push` on one clone; a fresh `git clone` + `dvc pull` then trains nothing:
`dvc repro` is a no-op and, after the one-off `snakemake --touch --forceall` the README asks for
(DVC does not keep mtimes, so pulled files look stale to Snakemake in random order), so is
`snakemake --cores all`; deleted reports regenerate from the pulled results, identical.
About a minute on 2 cores: pytest -m slow tests/pipeline/test_dvc_remote.py
"""

from __future__ import annotations

import filecmp
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from _cluster import CONFIG, GIT, PROFILE, job_counts, make_repo, require_ok, run_bounded

pytestmark = pytest.mark.slow

SNAKEMAKE = [sys.executable, "-m", "snakemake", "--configfile", CONFIG]


def _run(args, cwd, timeout=300):
    return require_ok(run_bounded(list(args), cwd, timeout), cwd)


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture()
def origin(tmp_path):
    for tool in ("git", "dvc"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed")
    repo = make_repo(tmp_path / "origin", dvc_profile=True)
    _run(["dvc", "remote", "add", "-d", "shared", str(tmp_path / "remote")], repo)
    subprocess.run(GIT + ["commit", "-q", "-am", "a local-directory remote"], cwd=repo, check=True)
    return repo


def test_push_then_fresh_clone_pulls_and_trains_nothing(origin, tmp_path):
    first = _run(["dvc", "repro"], origin, timeout=600)
    assert "Running stage 'pipeline'" in first.stdout
    cells = sorted(p.parent for p in (origin / "results" / PROFILE).rglob("metrics.json"))
    assert len(cells) == 2 and (origin / "reports/REPORT.md").is_file()
    _run(["dvc", "push"], origin)
    subprocess.run(GIT + ["add", "-A"], cwd=origin, check=True)  # dvc.lock (+ .gitignore entries)
    subprocess.run(GIT + ["commit", "-q", "-m", "results"], cwd=origin, check=True)

    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(origin), str(clone)], check=True)
    assert not (clone / "results").exists()
    # an interrupted download left a partial file in the persisted fetch folder (fetch.download's
    # temp-file name); `dvc pull` must still run (.dvcignore: *.part)
    partial = clone / "data/raw/skimage/.archive.zip.x1y2z3.part"
    partial.parent.mkdir(parents=True)
    partial.write_bytes(b"half an archive")
    pulled = run_bounded(["dvc", "pull"], clone, 300)
    assert pulled.returncode == 0, (
        "dvc pull refused to run beside a partial download (add `*.part` to .dvcignore):\n" + pulled.stdout[-2000:])

    # results came back byte for byte through DVC, the reports' published snapshot through git; data too
    assert _files(clone / "results") == _files(origin / "results")
    assert _files(clone / "reports/published") == _files(origin / "reports/published")
    assert (clone / "data/prepared/skimage/16/checksum.txt").is_file()

    # DVC: nothing to do
    status = _run(["dvc", "status"], clone)
    assert "up to date" in status.stdout, status.stdout
    repro = _run(["dvc", "repro"], clone)
    assert "Running stage" not in repro.stdout, repro.stdout

    # Snakemake: once, mark the pulled files current (DVC does not keep mtimes); then no job at all
    touch = _run([*SNAKEMAKE, "--cores", "1", "--touch", "--forceall"], clone)
    assert "train" in job_counts(touch.stdout)  # touched, not run: the runner never started
    assert all(log.stat().st_size == 0 for log in clone.glob("logs/**/train.log"))  # touched, empty
    again = _run([*SNAKEMAKE, "--cores", "2"], clone)  # rebuilds reports/ (not in git), trains nothing
    counts = job_counts(again.stdout)
    assert not {"train", "cell_config", "prepare", "gather"} & set(counts), counts
    third = _run([*SNAKEMAKE, "--cores", "2"], clone)
    assert "Nothing to be done" in third.stdout, third.stdout[-3000:]

    # reports regenerate from the pulled results, identical, without training
    shutil.rmtree(clone / "reports")
    regen = _run([*SNAKEMAKE, "--cores", "2"], clone)
    counts = job_counts(regen.stdout)
    assert counts and not {"train", "cell_config", "prepare", "gather"} & set(counts), counts
    assert _files(clone / "reports") == _files(origin / "reports")
    assert filecmp.cmp(clone / "dvc.lock", origin / "dvc.lock", shallow=False)

    # and an edit to the profile is still noticed after the touch: its cells would retrain
    config = clone / CONFIG
    config.write_text(config.read_text().replace("lr: 1.0e-3", "lr: 2.0e-3"))
    dry = _run([*SNAKEMAKE, "-n"], clone)
    assert job_counts(dry.stdout).get("train") == 2, dry.stdout[-3000:]
