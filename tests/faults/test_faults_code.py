"""Fault classes of issue 20 around code and concurrent runs: every cell records the training code that
made it and the report flags cells trained by other training code; `dvc repro` refuses while a
Snakemake run holds the data; the workflow refuses to run from a subfolder; a YAML syntax error in a
profile names its file and line."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml
from _cells import CELL, TINY  # noqa: E402,F401
from _cells import trained_cell as _trained_cell

from mfcbench.pipeline.gather import gather, stale_code_cells
from mfcbench.train import manifest


def test_code_digest_covers_the_training_modules(tmp_path):
    for pkg in manifest.TRAINING_PACKAGES:
        (tmp_path / pkg / "sub").mkdir(parents=True)
        (tmp_path / pkg / "sub" / "m.py").write_text("x = 1\n")
    (tmp_path / "report").mkdir()
    (tmp_path / "report" / "r.py").write_text("y = 1\n")
    before = manifest.code_digest(tmp_path)
    (tmp_path / "report" / "r.py").write_text("y = 2\n")  # not training code
    assert manifest.code_digest(tmp_path) == before
    (tmp_path / "train" / "sub" / "m.py").write_text("x = 2\n")  # e.g. the learning-rate schedule
    assert manifest.code_digest(tmp_path) != before
    assert manifest.training_code() == manifest.code_digest() and len(manifest.training_code()) == 64


def test_cell_records_training_code_and_gather_carries_it(tmp_path):
    out = _trained_cell(tmp_path)
    recorded = json.loads((out / "metrics.json").read_text())["manifest"]
    assert recorded["training_code"] == manifest.training_code()
    cells, _ = gather([out])
    assert cells["training_code"].tolist() == [manifest.training_code()]
    assert stale_code_cells([out], manifest.training_code()) == []
    assert stale_code_cells([out], "0" * 64) == [(out, manifest.training_code(), recorded["git_commit"])]


def _results(tmp_path: Path, current: str) -> tuple[Path, dict]:
    results_dir = tmp_path / "results" / "p"
    results_dir.mkdir(parents=True)
    (results_dir / "manifest.json").write_text(json.dumps({"profile": "p", "training_code": current}))
    table = pd.DataFrame({"table": "table4", "arch": "resnet", "strategy": ["sgd", "sgd", "fmsgd"], "variant": "",
                          "seed": [0, 1, 0], "dataset": "skimage", "headline_metric": "mse", "mse": [0.1, 0.2, 0.3],
                          "status": "ok", "config_hash": "c", "git_commit": ["a" * 40, "b" * 40, "b" * 40],
                          "training_code": ["1" * 64, current, current]})
    return results_dir, {"table4": table}


def test_report_flags_cells_trained_by_other_code(tmp_path):
    from mfcbench.report.evidence import cells_frame
    from mfcbench.report.markdown import provenance_section, stale_code_line

    results_dir, results = _results(tmp_path, "2" * 64)
    warning = stale_code_line(results_dir, results)
    assert "Warning: 1 of 3 cells were trained by other training code" in warning
    assert "digest 111111111111, commit aaaaaaaaaaaa" in warning and "--stale-code" in warning
    provenance = provenance_section(results_dir, results, "p")
    assert "2 of 3 cells trained by the current training code (digest `222222222222`)" in provenance
    assert "1 cells were trained by other training code (digest `111111111111`, commit `aaaaaaaaaaaa`)" in provenance
    assert cells_frame(results, [])["training_code"].tolist() == ["1" * 64, "2" * 64, "2" * 64]
    results["table4"]["training_code"] = "2" * 64
    assert stale_code_line(results_dir, results) == ""
    results["table4"] = results["table4"].drop(columns="training_code")  # cells from before digests were recorded
    assert "3 of 3 cells" in stale_code_line(results_dir, results)


def test_stale_code_lists_the_cells_to_force(tmp_path, monkeypatch):
    from mfcbench.cli import grid as grid_cli
    from mfcbench.pipeline.cells import iter_cells
    from mfcbench.pipeline.schema import ROOT, load_config

    config = load_config(Path(ROOT) / "workflow" / "config" / "tiny.yaml")
    config["results_dir"] = str(tmp_path / "results")
    cells = [tmp_path / "results" / config["profile"] / c.relpath() for c in iter_cells(config)][:3]
    for i, cell in enumerate(cells):
        cell.mkdir(parents=True)
        digest = manifest.training_code() if i == 0 else "9" * 64
        (cell / "metrics.json").write_text(json.dumps({"status": "failed" if i == 2 else "ok",
                                                       "manifest": {"training_code": digest}}))
    assert grid_cli.stale_code_metrics(config) == [f"{cells[1]}/metrics.json"]


# --- `dvc repro` while a Snakemake run is going (mfcbench/pipeline/runlock.py) ---------------------------


def test_a_held_run_lock_refuses_dvc_prepare_but_not_the_runs_own_jobs(tmp_path, monkeypatch, capsys):
    import fcntl
    import os

    from mfcbench.cli import grid as grid_cli
    from mfcbench.pipeline import runlock

    monkeypatch.delenv(runlock.LOCK_ENV, raising=False)
    monkeypatch.setattr(grid_cli.schema, "ROOT", tmp_path)
    assert runlock.refusal(tmp_path) is None and grid_cli.main(["--refuse-if-running"]) == 0  # no run: no lock file
    path = runlock.lock_path(tmp_path)
    path.parent.mkdir(parents=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT)  # a fake run: another open file holding the flock
    fcntl.flock(fd, fcntl.LOCK_EX)
    os.write(fd, b"4242\n")
    try:
        assert grid_cli.main(["--refuse-if-running"]) == 1
        line = capsys.readouterr().err.strip()
        assert line.count("\n") == 0 and str(path) in line and "pid 4242" in line and "rerun dvc repro" in line
        monkeypatch.setenv(runlock.LOCK_ENV, "4242")  # a job of that run (its nested dvc repro prepare@...)
        assert runlock.refusal(tmp_path) is None
    finally:
        os.close(fd)
    monkeypatch.delenv(runlock.LOCK_ENV)
    assert runlock.refusal(tmp_path) is None  # the run ended: the kernel dropped its lock


def test_hold_takes_the_lock_once_and_marks_the_jobs(tmp_path, monkeypatch):
    import os

    from mfcbench.pipeline import runlock

    monkeypatch.setenv(runlock.LOCK_ENV, "")  # registered with monkeypatch: hold()'s own export is undone too
    try:
        assert runlock.hold(tmp_path) is True
        assert os.environ[runlock.LOCK_ENV] == str(os.getpid()) == runlock.holder(tmp_path)
        assert runlock.hold(tmp_path) is False  # parsed again in the same process, or a job: no second lock
        assert runlock.refusal(tmp_path) is None  # our own children pass
        monkeypatch.delenv(runlock.LOCK_ENV)
        assert f"pid {os.getpid()}" in runlock.refusal(tmp_path)  # anyone else is refused
    finally:
        while runlock._HELD:
            os.close(runlock._HELD.pop())


def test_dvc_prepare_stages_refuse_first_and_keep_their_outputs():
    """DVC deletes a stage's outputs before its command unless they persist: the refusal must come first."""
    from mfcbench.pipeline.schema import ROOT

    stage = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]["prepare"]["do"]
    assert stage["cmd"][0] == "python -m mfcbench grid --refuse-if-running"
    (out,) = stage["outs"]
    assert list(out.values()) == [{"persist": True}]
    smk = (ROOT / "workflow" / "rules" / "common.smk").read_text()
    assert "runlock.hold(workflow.basedir, " in smk


@pytest.mark.slow
def test_dvc_repro_refuses_while_a_run_holds_the_data_end_to_end(tmp_path):
    """A real `dvc repro prepare@skimage` with changed prepare options: refused, data untouched, while a
    process holds the run lock; passes when it runs as a job of that run (MFCBENCH_RUN_LOCK_HOLDER)."""
    import shutil
    import subprocess
    import sys

    from _cluster import CONFIG, env, make_repo

    if shutil.which("dvc") is None:
        pytest.skip("dvc is not installed")
    repo = make_repo(tmp_path / "repo", dvc_profile=True)
    base = {k: v for k, v in env().items() if k != "MFCBENCH_RUN_LOCK_HOLDER"}

    def repro(extra: dict | None = None) -> subprocess.CompletedProcess:
        return subprocess.run(["dvc", "repro", "prepare@skimage"], cwd=repo, env={**base, **(extra or {})},
                              capture_output=True, text=True, timeout=240)

    first = repro()
    assert first.returncode == 0, first.stdout[-2000:] + first.stderr[-2000:]
    checksum = repo / "data" / "prepared" / "skimage" / "16" / "checksum.txt"
    before = (checksum.read_text(), checksum.stat().st_mtime_ns)
    (repo / CONFIG).write_text((repo / CONFIG).read_text().replace("limit-train: 32", "limit-train: 16"))
    run = subprocess.Popen([sys.executable, "-c", "import sys, time; from mfcbench.pipeline import runlock; "
                            "runlock.hold('.'); print('held', flush=True); time.sleep(120)"],
                           cwd=repo, env=base, stdout=subprocess.PIPE, text=True)
    try:
        assert run.stdout.readline().strip() == "held"
        refused = repro()
        assert refused.returncode != 0 and f"running Snakemake (pid {run.pid})" in refused.stdout + refused.stderr
        assert (checksum.read_text(), checksum.stat().st_mtime_ns) == before  # not deleted, not rebuilt
        nested = repro({"MFCBENCH_RUN_LOCK_HOLDER": str(run.pid)})  # the run's own job: dvc repro prepare@...
        assert nested.returncode == 0, nested.stdout[-2000:] + nested.stderr[-2000:]
        assert checksum.read_text() != before[0]
    finally:
        run.kill()
        run.wait()


# --- running from a subfolder ---------------------------------------------------------------------------


@pytest.mark.slow
def test_running_from_a_subfolder_is_refused_in_one_line(tmp_path):
    import os
    import subprocess
    import sys

    from _cluster import copy_pipeline, env

    repo = copy_pipeline(tmp_path / "repo")
    proc = subprocess.run([sys.executable, "-m", "snakemake", "-n", "-s", "../Snakefile", "--cores", "1"],
                          cwd=repo / "workflow", env={**env(), "PYTHONPATH": str(repo)}, capture_output=True, text=True,
                          timeout=120)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out[-2000:]
    assert f"run from the repository root: cd {os.path.realpath(repo)} (" in out
    assert not (repo / "workflow" / "results").exists() and not (repo / "workflow" / "logs").exists()


# --- a YAML syntax error in a profile ---------------------------------------------------------------------


def test_grid_check_names_file_and_line_of_a_yaml_syntax_error(tmp_path, capsys):
    """Snakemake loads --configfile before the Snakefile runs (its message: line and column of a
    '<unicode string>', no file), so the named check is `python -m mfcbench grid --config P --check`."""
    from mfcbench.cli import grid as grid_cli
    from mfcbench.pipeline.schema import ROOT

    text = (Path(ROOT) / "workflow" / "config" / "tiny.yaml").read_text().splitlines()
    line = next(i for i, t in enumerate(text) if t.startswith("threads_per_cell:"))
    text[line] = "threads_per_cell: 1 : : [unclosed"
    bad = tmp_path / "my profile.yaml"
    bad.write_text("\n".join(text) + "\n")
    assert grid_cli.main(["--config", str(bad), "--check"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and f"{bad}:{line + 1}:21: YAML syntax error" in err and "<unicode string>" not in err


def test_a_checkpoint_of_other_training_code_restarts_under_the_pipeline(tmp_path):
    """`snakemake --forcerun <metrics.json>` deletes metrics.json only: resuming the finished checkpoint
    would stamp the current digest on the old training (seen: "resuming ... at iteration 6/6")."""
    from mfcbench.core.atomic import torch_save
    from mfcbench.core.cell import Cell
    from mfcbench.train import checkpoint

    path, cell, logged = tmp_path / "checkpoint.pt", Cell(task="denoise", dataset="d", arch="a", strategy="sgd"), []
    for code, kept in ((manifest.training_code(), True), ("1" * 64, False), (None, False)):
        torch_save({"version": checkpoint.VERSION, "cell": cell.identity(), "config_hash": "h", "training_code": code}, path)
        ck = checkpoint.load_matching(path, cell=cell, config_hash="h", on_stale="restart", log=logged.append)
        assert (ck is not None) == kept == path.exists()
    assert logged[-1] == f"{path} was written by other training code: starting the cell afresh"
    torch_save({"version": checkpoint.VERSION, "cell": cell.identity(), "config_hash": "h", "training_code": "1" * 64}, path)
    assert checkpoint.load_matching(path, cell=cell, config_hash="h", on_stale="error", log=logged.append) is not None
