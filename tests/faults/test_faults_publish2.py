"""Issue 30: a publish that is whole or nothing, a `publish --check` that compares both ways, one run per
checkout, paths without braces, one bound on every batch, and report inputs that are refused when wrong."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from mfcbench.cli import main
from mfcbench.report import snapshot

NAMES = ("REPORT.md", "cells.csv", "claims.csv", "pairs.csv", "table4.csv")


def _reports(tmp_path: Path, tag: str = "old") -> Path:
    reports = tmp_path / "reports"
    reports.mkdir(exist_ok=True)
    for name in NAMES:
        (reports / name).write_text(f"{name} {tag}\n")
    return reports


def _tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _publish(tmp_path: Path, *extra: str) -> int:
    return main(["publish", "--profile", "p", "--reports-dir", str(tmp_path / "reports"),
                 "--published-root", str(tmp_path / "published"), *extra])


# --- publish --check compares both ways (Broken 4) --------------------------------------------------------


def test_check_names_missing_extra_and_changed_files_and_subfolders(tmp_path, capsys):
    _reports(tmp_path)
    assert _publish(tmp_path, *NAMES) == 0
    assert _publish(tmp_path, "--check") == 0
    snap = tmp_path / "published" / "p"
    (snap / "claims.csv").unlink()
    (snap / "REPORT.md").unlink()
    capsys.readouterr()
    assert _publish(tmp_path, "--check") == 1  # was "matches": only the files still there were compared
    err = capsys.readouterr().err
    assert f"{snap / 'claims.csv'} (missing from the snapshot" in err and f"{snap / 'REPORT.md'} (missing" in err
    assert "matches" not in err

    assert _publish(tmp_path) == 0  # publishes what the snapshot should hold (its SHA256SUMS), missing ones too
    (snap / "extra.csv").write_text("not published\n")
    (snap / "sub").mkdir()
    (snap / "sub" / "x.csv").write_text("x\n")
    (tmp_path / "reports" / "table4.csv").write_text("rebuilt\n")
    capsys.readouterr()
    assert _publish(tmp_path, "--check") == 1
    err = capsys.readouterr().err
    assert f"{snap / 'extra.csv'} (not published" in err
    assert f"{snap / 'sub'} (a subfolder" in err
    assert f"{snap / 'table4.csv'} (differs from" in err
    assert "3 difference(s)" in err


def test_check_of_a_snapshot_that_does_not_say_what_it_holds_is_not_a_match(tmp_path, capsys):
    reports = _reports(tmp_path)
    snap = tmp_path / "published" / "p"
    snap.mkdir(parents=True)
    (snap / "claims.csv").write_bytes((reports / "claims.csv").read_bytes())  # committed before SHA256SUMS existed
    assert _publish(tmp_path, "--check") == 1
    assert "SHA256SUMS" in capsys.readouterr().err
    assert _publish(tmp_path, "--check", "claims.csv") == 0  # named files: compared as named


def test_check_of_a_hand_edited_file_whose_report_is_gone(tmp_path, capsys):
    reports = _reports(tmp_path)
    assert _publish(tmp_path, *NAMES) == 0
    snap = tmp_path / "published" / "p"
    (snap / "pairs.csv").write_text("edited\n")
    (reports / "pairs.csv").unlink()
    capsys.readouterr()
    assert _publish(tmp_path, "--check") == 1
    err = capsys.readouterr().err
    assert f"{snap / 'pairs.csv'} ({reports / 'pairs.csv'} is not built" in err
    assert f"{snap / 'pairs.csv'} (edited since it was published" in err


# --- an interrupted or failed publish leaves the old snapshot whole ----------------------------------------


def test_an_interrupt_on_the_third_copy_leaves_the_snapshot_byte_identical(tmp_path, monkeypatch, capsys):
    _reports(tmp_path, "old")
    assert _publish(tmp_path, *NAMES) == 0
    snap = tmp_path / "published" / "p"
    before = _tree(snap)
    _reports(tmp_path, "new")
    real, calls = snapshot.shutil.copyfile, []

    def copy(src, dst, *args, **kwargs):
        calls.append(src)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(src, dst, *args, **kwargs)

    monkeypatch.setattr(snapshot.shutil, "copyfile", copy)
    capsys.readouterr()
    assert _publish(tmp_path, *NAMES) == 130
    assert capsys.readouterr().err.strip().count("\n") == 0  # one line, not a traceback
    assert _tree(snap) == before
    assert sorted(p.name for p in snap.parent.iterdir()) == ["p"]  # no temporary folder left beside it


@pytest.mark.parametrize("which", ["aside", "in"])
def test_a_failed_rename_rolls_back_to_the_old_snapshot(tmp_path, monkeypatch, capsys, which):
    _reports(tmp_path, "old")
    assert _publish(tmp_path, *NAMES) == 0
    snap = tmp_path / "published" / "p"
    before = _tree(snap)
    _reports(tmp_path, "new")
    real = os.replace

    def replace(src, dst, *args, **kwargs):
        if (which == "aside" and Path(src) == snap) or (which == "in" and ".publish-" in Path(src).name):
            raise OSError(5, "Input/output error")
        return real(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "replace", replace)
    capsys.readouterr()
    assert _publish(tmp_path, *NAMES) == 1
    assert "Input/output error" in capsys.readouterr().err
    assert _tree(snap) == before
    assert sorted(p.name for p in snap.parent.iterdir()) == ["p"]


def test_a_publish_killed_between_the_renames_is_recovered(tmp_path):
    _reports(tmp_path, "old")
    assert _publish(tmp_path, *NAMES) == 0
    snap = tmp_path / "published" / "p"
    before = _tree(snap)
    os.replace(snap, snap.parent / ".p.old-999999")  # killed after moving the old one aside
    assert _publish(tmp_path, "--check") == 1
    _reports(tmp_path, "new")
    assert _publish(tmp_path, *NAMES) == 0
    assert _tree(snap) != before and (snap / "REPORT.md").read_text() == "REPORT.md new\n"
    assert sorted(p.name for p in snap.parent.iterdir()) == ["p"]


# --- one run per checkout (pipeline/runlock.py) ------------------------------------------------------------


def _holder(root: Path, profile: str) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k != "MFCBENCH_RUN_LOCK_HOLDER"}
    proc = subprocess.Popen([sys.executable, "-c", "import time; from mfcbench.pipeline import runlock; "
                             f"runlock.hold({str(root)!r}, {profile!r}); print('held', flush=True); time.sleep(120)"],
                            env=env, stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


@pytest.fixture
def lock_env(monkeypatch):
    from mfcbench.pipeline import runlock

    monkeypatch.setenv(runlock.LOCK_ENV, "")  # hold()'s own export is undone after the test
    monkeypatch.delenv(runlock.LOCK_ENV)
    yield runlock
    while runlock._HELD:
        os.close(runlock._HELD.pop())


def test_a_second_run_in_one_checkout_is_refused_naming_the_pid_and_profile(tmp_path, lock_env):
    runlock = lock_env
    first = _holder(tmp_path, "tiny")
    try:
        with pytest.raises(runlock.RunLockError) as refused:
            runlock.hold(tmp_path, "paper", argv=["snakemake", "--cores", "all"])
        line = str(refused.value)
        assert line.count("\n") == 0 and f"pid {first.pid}" in line and "profile tiny" in line
        assert str(runlock.lock_path(tmp_path)) in line
        # a dry run neither takes the lock nor is refused (Snakemake's own -n takes no lock either)
        assert runlock.hold(tmp_path, "paper", argv=["snakemake", "-np", "--configfile", "x.yaml"]) is False
        assert runlock.hold(tmp_path, "paper", argv=["snakemake", "--dry-run"]) is False
    finally:
        first.kill()
        first.wait()
    assert runlock.hold(tmp_path, "paper", argv=["snakemake", "--cores", "1"]) is True  # the first run ended
    assert runlock.owner(tmp_path)[:2] == (str(os.getpid()), "paper")


def _dead_run_lock(runlock, tmp_path):
    """(the PID of a process that has exited, the run lock's path with its folder made)."""
    dead = subprocess.Popen(["true"])
    dead.wait()
    path = runlock.lock_path(tmp_path)
    path.parent.mkdir(parents=True)
    return dead, path


def test_a_stale_lock_of_a_dead_run_is_taken_over(tmp_path, lock_env):
    runlock = lock_env
    dead, path = _dead_run_lock(runlock, tmp_path)
    path.write_text(f"{dead.pid}\n")  # a run killed with -9: the kernel dropped its flock, the file stays
    assert runlock.hold(tmp_path, "tiny") is True
    assert runlock.owner(tmp_path)[:2] == (str(os.getpid()), "tiny")


def test_a_lock_held_by_a_leftover_of_a_dead_run_is_taken_over(tmp_path, lock_env):
    """The flock is held (a process forked by the dead run kept the file open) but its PID is gone."""
    runlock = lock_env
    dead, path = _dead_run_lock(runlock, tmp_path)
    leftover = subprocess.Popen([sys.executable, "-c", (
        "import fcntl, json, os, socket, time\n"
        f"fd = os.open({str(path)!r}, os.O_RDWR | os.O_CREAT)\n"
        "fcntl.flock(fd, fcntl.LOCK_EX)\n"
        f"os.write(fd, json.dumps({{'pid': {dead.pid}, 'profile': 'tiny', 'host': socket.gethostname()}}).encode())\n"
        "print('held', flush=True)\ntime.sleep(120)\n")], stdout=subprocess.PIPE, text=True)
    try:
        assert leftover.stdout.readline().strip() == "held"
        assert runlock.hold(tmp_path, "paper") is True
        assert runlock.owner(tmp_path)[:2] == (str(os.getpid()), "paper")
    finally:
        leftover.kill()
        leftover.wait()


def test_the_snakefile_takes_the_run_lock_with_the_profile_and_its_arguments():
    from mfcbench.pipeline.schema import ROOT

    smk = (ROOT / "workflow" / "rules" / "common.smk").read_text()
    assert "runlock.hold(workflow.basedir, config[\"profile\"], sys.argv)" in smk
    assert smk.index("runlock.hold(") < smk.index("write_cell_configs(")  # refused before anything is written


# --- braces and $ in paths ------------------------------------------------------------------------------------


@pytest.mark.parametrize("key, value", [("results_dir", "res{x}"), ("logs_dir", "o ${HOME}/logs"),
                                        ("data_root", "data$x"), ("reports_dir", "rep}")])
def test_braces_and_dollars_in_paths_are_refused_naming_the_key(key, value):
    from mfcbench.pipeline.profile_checks import check_profile

    problems = check_profile({"profile": "p", key: value})
    assert len(problems) == 1 and problems[0].startswith(f"{key}: {value!r} holds")
    assert "wildcard" in problems[0] and "write the path out in full" in problems[0]


# --- Snakemake's own YAML error: documented as it is ---------------------------------------------------------


def test_the_docs_say_what_snakemake_reports_for_a_yaml_error(tmp_path):
    from snakemake.common.configfile import load_configfile
    from snakemake_interface_common.exceptions import WorkflowError

    from mfcbench.pipeline.schema import ROOT

    bad = tmp_path / "bad.yaml"
    bad.write_text("profile: p\ndefaults:\n  lr: [1, 2\n  x: 1\n")
    with pytest.raises(WorkflowError) as error:
        load_configfile(str(bad))
    said = str(error.value).split(".")[0]
    assert str(bad) not in str(error.value) and ":3:" not in str(error.value)  # no file, no line
    docs = " ".join((ROOT / "docs" / "pipeline.md").read_text().split())
    assert f'"{said}' in docs and "no file name, line or column" in docs
    assert "with a line and column" not in docs


# --- report inputs ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["claims", "markdown"])
def test_report_refuses_a_results_dir_that_is_missing_or_holds_no_results(tmp_path, capsys, command):
    out = tmp_path / "reports"
    extra = ["--reports-dir", str(out)] if command == "markdown" else []
    typo = tmp_path / "results" / "typo"
    assert main(["report", command, "--results-dir", str(typo), *extra, "--out", str(out / "x")]) == 2
    err = capsys.readouterr().err
    assert f"{typo}: no such folder" in err and err.count("\n") == 1
    typo.mkdir(parents=True)
    (typo / "notes.txt").write_text("no csv\n")
    assert main(["report", command, "--results-dir", str(typo), *extra, "--out", str(out / "x")]) == 2
    assert f"{typo} holds no result CSVs" in capsys.readouterr().err
    assert not out.exists()


def test_report_markdown_prints_no_nan_where_nothing_was_published():
    import pandas as pd

    from mfcbench.report.markdown import paper_layout, pretty_printed

    assert pretty_printed(float("nan")) == "—" and pretty_printed(None) == "—" and pretty_printed("") == "—"
    assert pretty_printed("2.62 \\times 10^7") == "2.62×10^7"
    table = pd.DataFrame({"block": ["b", "b"], "row": ["SGD", "SGD"], "split": [None, None], "column": ["x", "y"],
                          "display": ["1.5 ± 0 (n=2) | 1.5", "2 ± 0 (n=2) | "],
                          "published_printed": ["1.5", float("nan")]})
    text = paper_layout(table)
    assert "nan" not in text and "2 ± 0 (n=2) \\| —" in text


# --- one bound on every batch (Broken 3) -------------------------------------------------------------------------


TINY_PROFILE = {"profile": "p", "datasets": {"skimage": {"image_size": 16}},
                "tables": {"table4": {"task": "denoise", "dataset": "skimage", "archs": ["resnet"],
                                      "strategies": ["sgd"], "seeds": [0]}}}


@pytest.mark.parametrize("defaults, key", [({"level_batches": [100000000, 1]}, "level_batches[0]: 100000000 images"),
                                            ({"batch_size": 10**9}, "batch_size: 1000000000 images"),
                                            ({"sgd_batch": 10**9}, "sgd_batch: 1000000000 images"),
                                            ({"batch_size": 10, "batch_growth": 10**8}, "batch_size x batch_growth**1: ")])
def test_the_profile_refuses_a_batch_that_cannot_fit_in_memory(defaults, key):
    from mfcbench.pipeline.profile_checks import check_profile

    problems = check_profile({**TINY_PROFILE, "defaults": {"levels": 2, **defaults}})
    assert len(problems) == 1 and problems[0].startswith(f"table4 (every cell): {key}"), problems
    assert " x 16 x 16 need about" in problems[0] or " x 8 x 8 need about" in problems[0]
    assert "GB (images x channels x H x W x 4 bytes x 4 copies), more than this machine's" in problems[0]


def test_grid_check_refuses_level_batches_that_cannot_fit(tmp_path, capsys):
    import yaml

    profile = {**TINY_PROFILE, "defaults": {"levels": 2, "iterations": [1, 1], "level_batches": [100000000, 1]}}
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(profile))
    assert main(["grid", "--config", str(path), "--check"]) != 0
    assert "level_batches[0]: 100000000 images" in capsys.readouterr().err


@pytest.mark.parametrize("overrides, key", [({"batch_size": 10**9}, "batch_size"),
                                             ({"level_batches": [1, 10**9], "levels": 2, "iterations": [1, 1]},
                                              "level_batches[1]"),
                                             ({"sgd_batch": 10**9}, "sgd_batch"),
                                             ({"batch_size": 10, "batch_growth": 10**8, "levels": 2,
                                               "iterations": [1, 1]}, "batch_size x batch_growth**1")])
def test_every_resolved_config_bounds_its_batches(overrides, key):
    from mfcbench.train import config

    with pytest.raises(ValueError, match=rf"^{re.escape(key)}: \d+ images of 1 x \d+ x \d+ need about"):
        config.resolve(overrides)


def test_train_set_refuses_a_batch_that_cannot_fit_before_anything(tmp_path, capsys):
    out = tmp_path / "cell"
    rc = main(["train", "--task", "denoise", "--dataset", "fields", "--arch", "resnet", "--strategy", "sgd",
               "--out", str(out), "--set", "batch_size=1000000000"])
    err = capsys.readouterr().err
    assert rc == 2 and "batch_size: 1000000000 images of 1 x 64 x 64 need about" in err, err
    assert not out.exists()


def test_fit_refuses_a_batch_that_cannot_fit(tmp_path, monkeypatch):
    """fit knows the data's channels (inputs and targets stacked: 6 here): its bound counts them."""
    import torch

    import mfcbench as mfc
    from mfcbench.train import config

    monkeypatch.setattr(config, "memory_bytes", lambda: 1 << 30)
    net = torch.nn.Conv2d(3, 3, 3, padding=1)
    x = torch.rand(4, 3, 8, 8)
    with pytest.raises(ValueError, match=r"^batch_size: 500000 images of 6 x 8 x 8 need about"):
        mfc.fit(net, (x, x), (x, x), strategy="sgd", levels=1, iterations=1, batch_size=500000,
                out_dir=tmp_path / "fit")
    assert not (tmp_path / "fit").exists()


def test_the_bound_is_the_stated_estimate():
    from mfcbench.train import config

    need = 1000 * 3 * 64 * 64 * 4 * config.BATCH_COPIES
    assert config.batch_problem("k", 1000, 3, 64, 64, memory=need) is None
    line = config.batch_problem("k", 1000, 3, 64, 64, memory=need - 1)
    assert line.startswith("k: 1000 images of 3 x 64 x 64 need about") and "give a smaller batch" in line


def test_grid_check_refuses_braces_in_a_path_before_the_cells(tmp_path, capsys):
    import yaml

    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump({**TINY_PROFILE, "results_dir": str(tmp_path / "res{x}"),
                                    "defaults": {"levels": 2, "iterations": [1, 1]}}))
    assert main(["grid", "--config", str(path), "--check"]) == 1
    assert "results_dir: " in capsys.readouterr().err
    assert not list(tmp_path.glob("res*"))


# --- end to end: the workflow refuses before Snakemake's own lock and before any file ---------------------------


def _snakemake(repo: Path, *args: str) -> subprocess.CompletedProcess:
    from _cluster import env

    base = {k: v for k, v in env().items() if k != "MFCBENCH_RUN_LOCK_HOLDER"}
    return subprocess.run([sys.executable, "-m", "snakemake", *args], cwd=repo, env=base, capture_output=True,
                          text=True, timeout=300)


@pytest.mark.slow
def test_the_workflow_refuses_a_second_run_braces_and_names_a_broken_default_profile(tmp_path):
    import shutil

    import yaml
    from _cluster import CONFIG, make_repo

    if shutil.which("snakemake") is None:
        pytest.skip("snakemake is not installed")
    repo = make_repo(tmp_path / "repo")
    first = _holder(repo, "tiny")
    try:
        refused = _snakemake(repo, "--cores", "1", "--configfile", CONFIG)
        out = refused.stdout + refused.stderr
        assert refused.returncode != 0 and f"pid {first.pid}, profile tiny" in out, out[-3000:]
        assert "LockException" not in out and not (repo / "results").exists()  # before Snakemake's lock and any write
        dry = _snakemake(repo, "-n", "--configfile", CONFIG)
        assert dry.returncode == 0, (dry.stdout + dry.stderr)[-3000:]
    finally:
        first.kill()
        first.wait()

    profile = yaml.safe_load((repo / CONFIG).read_text())
    (repo / "braces.yaml").write_text(yaml.safe_dump({**profile, "results_dir": "res{x}"}))
    braces = _snakemake(repo, "-n", "--configfile", "braces.yaml")
    assert braces.returncode != 0 and "results_dir: 'res{x}' holds" in braces.stdout + braces.stderr
    assert not list(repo.glob("res{*"))

    default = repo / "workflow" / "config" / "default.yaml"
    default.write_text(default.read_text() + "broken: [1, 2\n")
    broken = _snakemake(repo, "-n")
    lines = len(default.read_text().splitlines())
    assert broken.returncode != 0 and f"workflow/config/default.yaml:{lines + 1}:1: YAML syntax error" in \
        broken.stdout + broken.stderr, (broken.stdout + broken.stderr)[-3000:]
