"""Fault injection: what a user does to the harness (kill -9, typos, damaged files, full disks, two
runs at once, bad flags). Each case asserts that the error names the file or key, that nothing
stale or partial is gathered, and that a rerun recovers to the uninterrupted result."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from _cluster import copy_pipeline

from mfcbench.core.atomic import DamagedFileError, NoSpaceError, torch_save
from mfcbench.core.cell import LOCK_FILE
from mfcbench.pipeline.checks import check_cells
from mfcbench.pipeline.gather import GatherError, gather
from mfcbench.pipeline.schema import apply_defaults
from mfcbench.train import checkpoint, runner
from mfcbench.train.request import StaleCellError

ROOT = Path(__file__).resolve().parents[2]
CELL = "table4/denoise/skimage/resnet/sgd/seed0"
TINY = {"image_size": 16, "levels": 2, "batch_size": 2, "iterations": [3, 3], "lr": 1e-3, "val_size": 4,
        "val_every": 3, "checkpoint_every": 2, "model": {"width": 0.125}, "threads": 1}


def _env() -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DVC_", "MFCBENCH_CELLS", "MFCBENCH_SUMMARY"))}
    return {**env, "OMP_NUM_THREADS": "1", "MFCBENCH_OFFLINE": "1", "PYTHONPATH": str(ROOT)}


@pytest.fixture(scope="module")
def images():
    g = torch.Generator().manual_seed(3)
    return torch.rand(16, 3, 16, 16, generator=g), torch.rand(4, 3, 16, 16, generator=g)


def train(out: Path, images, config=None, **kw) -> dict:
    return runner.run_cell(config if config is not None else TINY, task="denoise", arch="resnet", strategy="sgd",
                           out_dir=out, device="cpu", train_images=images[0], val_images=images[1],
                           progress=False, log=lambda m: None, **kw)


def cell_dir(root: Path) -> Path:
    out = root / "results" / "p" / CELL
    out.mkdir(parents=True)
    return out


# --- 1. a leftover job must not overwrite a newer result -------------------------------------------
@pytest.mark.slow
def test_training_job_stops_when_the_scheduler_is_killed(tmp_path):
    """`train --watch-pid` (what the pipeline passes): kill -9 the 'scheduler' and the job ends, writing nothing."""
    config = tmp_path / "cell.yaml"
    config.write_text(yaml.safe_dump({**TINY, "image_size": 32, "iterations": [5000, 5000], "data_root": str(tmp_path)}))
    scheduler = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    job = subprocess.Popen([sys.executable, "-m", "mfcbench", "train", "--task", "denoise", "--dataset", "fields",
                            "--arch", "resnet", "--strategy", "sgd", "--config", str(config), "--out",
                            str(tmp_path / "cell"), "--device", "cpu", "--watch-pid", str(scheduler.pid)],
                           env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 120
        while not (tmp_path / "cell" / LOCK_FILE).exists() and time.time() < deadline:
            time.sleep(0.2)
        time.sleep(1.0)
        scheduler.send_signal(signal.SIGKILL)
        scheduler.wait()
        job.wait(timeout=30)
    finally:
        job.kill()
        scheduler.kill()
    assert job.returncode != 0 and "is gone; stopping" in job.stderr.read()
    assert not (tmp_path / "cell" / "metrics.json").exists()


@pytest.mark.slow
def test_a_second_runner_on_the_same_cell_fails_naming_the_holder(tmp_path, images):
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from pathlib import Path; from mfcbench.train.checkpoint import lock_cell\n"
        f"with lock_cell(Path({str(tmp_path / 'cell')!r})):\n    print('locked', flush=True); time.sleep(60)")],
        env=_env(), stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(checkpoint.CellLockedError, match=f"PID {holder.pid}"):
            train(tmp_path / "cell", images)
    finally:
        holder.kill()
        holder.wait()
    assert train(tmp_path / "cell", images)["status"] == "ok"  # the lock dies with its holder


def test_metrics_are_not_written_when_cell_yaml_changed_during_the_run(tmp_path, images, monkeypatch):
    out = cell_dir(tmp_path)
    (out / "cell.yaml").write_text(yaml.safe_dump(TINY))
    real = runner.train_phases

    def edit_while_training(run, st, stop_after=None):
        status = real(run, st, stop_after)
        (out / "cell.yaml").write_text(yaml.safe_dump({**TINY, "iterations": [1, 1]}))  # the profile changed
        return status

    monkeypatch.setattr(runner, "train_phases", edit_while_training)
    with pytest.raises(StaleCellError, match="cell.yaml changed while this run trained"):
        train(out, images, config=out / "cell.yaml")
    assert not (out / "metrics.json").exists()


def test_gather_refuses_a_result_of_another_config(tmp_path, images):
    out = cell_dir(tmp_path)
    (out / "cell.yaml").write_text(yaml.safe_dump(TINY))
    train(out, images, config=out / "cell.yaml")
    assert len(gather([out])[0]) == 1
    (out / "cell.yaml").write_text(yaml.safe_dump({**TINY, "iterations": [30, 30]}))
    with pytest.raises(GatherError, match=f"{out}: metrics.json was written under another config"):
        gather([out])


# --- 2. config mistakes stop the run before any job --------------------------------------------------
@pytest.mark.parametrize("mutate, expected", [
    (lambda c: c["defaults"].update(iterations=[3, 3, 3]), r"table4 \(every cell\): 'iterations' must be a list of 2"),
    (lambda c: c["datasets"]["skimage"].update(image_size=17), r"table4 \(every cell\): image_size 17 does not fit 2 levels: it must be a multiple of 2"),
    (lambda c: c["tables"]["table4"].update(overrides={"levels": 6, "iterations": [1] * 6}),
     r"table4 \(every cell\): image_size 16 does not fit 6 levels: it must be a multiple of 32"),
    (lambda c: c["tables"]["table4"]["archs"].append("resnte"), r"table4 \(resnte/sgd, resnte/msgd\): archs: unknown model 'resnte'; valid choices: .*resnet"),
    (lambda c: c["datasets"].update(imagenet={"image_size": 16, "prepare_options": {}}), r"datasets: 'imagenet' is not a registered dataset; valid choices: .*skimage"),
    (lambda c: c["defaults"].update(model={"widht": 0.25}), r"model: unknown option\(s\) 'widht' for resnet; valid choices: width, blocks"),
])
def test_config_mistakes_are_found_at_parse_time(mutate, expected):
    config = yaml.safe_load((ROOT / "workflow/config/tiny.yaml").read_text())
    mutate(config)
    config = apply_defaults(config)
    problems = "\n".join(check_cells(config))
    assert problems and __import__("re").search(expected, problems), problems


@pytest.mark.slow
def test_snakemake_stops_before_any_job_on_a_config_mistake(tmp_path):
    if shutil.which("snakemake") is None:
        pytest.skip("snakemake is not installed")
    copy_pipeline(tmp_path)
    profile = yaml.safe_load((ROOT / "workflow/config/tiny.yaml").read_text())
    profile["defaults"]["model"] = {"widht": 0.25}
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(profile))
    proc = subprocess.run([sys.executable, "-m", "snakemake", "--cores", "1", "--configfile", "bad.yaml"],
                          cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0 and "no job started" in proc.stderr and "'widht'" in proc.stderr
    assert not (tmp_path / "results").exists() and not (tmp_path / "data").exists()


# --- 3. damaged and missing files --------------------------------------------------------------------
def test_damaged_prepared_data_names_the_file_and_the_fix(tmp_path):
    from mfcbench.data import open_dataset, prepare

    directory = prepare("fields", 16, tmp_path, limit_train=8, limit_val=4)
    data = (directory / "train.pt").read_bytes()
    (directory / "train.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(DamagedFileError) as error:
        open_dataset("fields", 16, tmp_path)
    message = str(error.value)
    assert str(directory / "train.pt") in message and "prepare" in message and "weights_only" not in message


def test_a_damaged_checkpoint_is_moved_aside_and_the_cell_restarts(tmp_path, images):
    whole = train(tmp_path / "whole", images)
    with pytest.raises(runner.SimulatedCrash):
        train(tmp_path / "cell", images, stop_after=2)
    (tmp_path / "cell" / "checkpoint.pt").write_bytes(b"not a checkpoint")
    with pytest.warns(UserWarning, match="damaged checkpoint"):
        again = train(tmp_path / "cell", images)
    assert again["metrics"] == whole["metrics"]
    assert list((tmp_path / "cell").glob("checkpoint.pt.damaged-*"))


def test_damaged_edited_or_incomplete_cells_are_named_by_gather(tmp_path, images):
    out = cell_dir(tmp_path)
    train(out, images)
    metrics = out / "metrics.json"
    good = metrics.read_text()
    metrics.write_text(good[: len(good) // 2])
    with pytest.raises(GatherError, match=f"{metrics} is damaged"):
        gather([out])
    edited = json.loads(good)
    edited["metrics"].pop("val_mse")
    metrics.write_text(json.dumps(edited))
    with pytest.raises(GatherError, match="lacks its headline metric 'val_mse'"):
        gather([out])
    metrics.write_text(good)
    (out / "curve.csv").unlink()
    with pytest.raises(GatherError, match="curve.csv of a finished cell is missing"):
        gather([out])


def test_a_failed_cell_is_recorded_and_shown_as_not_run(tmp_path):
    from mfcbench.cli import train as train_cli
    from mfcbench.report.layout import build_table

    out = cell_dir(tmp_path)
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({**TINY, "data_root": str(tmp_path / "nowhere")}))
    rc = train_cli.main(["--task", "denoise", "--dataset", "stl10", "--arch", "resnet", "--strategy", "sgd",
                         "--config", str(config), "--out", str(out), "--device", "cpu", "--record-failure"])
    record = json.loads((out / "metrics.json").read_text())
    assert rc == 0 and record["status"] == "failed" and "stl10" in record["error"]
    cells, _ = gather([out])
    table = build_table("table4", cells.assign(dataset="stl10"))
    sgd = table[(table.block == "mse") & (table.row == "SGD (Single Scale)") & (table.column == "ResNet")].iloc[0]
    assert sgd.status == "NOT_RUN" and "failed: " in sgd.reason and "stl10" in sgd.reason


# --- 4. full disk and small things -------------------------------------------------------------------
@pytest.fixture()
def small_disk(tmp_path):
    """A 256 KiB tmpfs where root may mount one; otherwise a writer that fails as a full disk does."""
    mount = tmp_path / "small"
    mount.mkdir()
    if os.geteuid() == 0 and shutil.which("mount") and subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount)], capture_output=True).returncode == 0:
        yield mount
        subprocess.run(["umount", str(mount)], check=False)
    else:
        pytest.skip("cannot mount a small tmpfs here (needs root)")


def test_full_disk_names_the_folder_and_the_size(small_disk):
    from mfcbench.data import prepare

    with pytest.raises(NoSpaceError, match=f"no space left in {small_disk}/prepared/fields.* MiB needed"):
        prepare("fields", 64, small_disk)
    assert not list((small_disk / "prepared" / "fields").glob("64*"))  # nothing half-written
    with pytest.raises(NoSpaceError, match=f"no space left in {small_disk}"):
        torch_save({"x": torch.zeros(200_000)}, small_disk / "big.pt")
    assert not list(small_disk.glob("*.tmp")) and not (small_disk / "big.pt").exists()


def test_prepared_splits_are_saved_compact(tmp_path):
    from mfcbench.data import prepare

    directory = prepare("fields", 16, tmp_path, limit_train=4, limit_val=2)
    tensor_bytes = 4 * 1 * 16 * 16 * 4
    assert (directory / "train.pt").stat().st_size < tensor_bytes + 4096  # not its whole source storage


@pytest.mark.parametrize("argv, expected", [
    (["train", "--task", "denoise", "--dataset", "fields", "--arch", "resnet", "--strategy", "sgd", "--seed", "-1",
      "--out", "x"], "--seed: must be >= 0, got -1"),
    (["wu", "--iterations", "-5"], "--iterations must be non-negative"),
    (["wu", "--levels", "0"], "--levels: must be >= 1, got 0"),
    (["measure", "fig7", "--threads", "0", "--out", "x.csv"], "--threads: must be >= 1"),
    (["experiment", "lemma4", "--seeds", "-2", "--out", "x.csv"], "--seeds: must be >= 0"),
])
def test_cli_numbers_are_range_checked(argv, expected, capsys):
    from mfcbench.cli import main

    try:
        rc = main(argv)
    except SystemExit as exit_:
        rc = exit_.code
    assert rc == 2 and expected in capsys.readouterr().err


@pytest.mark.slow
def test_kill_9_of_snakemake_leaves_no_job_behind_and_a_rerun_recovers(tmp_path):
    """The reported fault, end to end: kill -9 Snakemake mid-training, --unlock, change the profile,
    rerun: the orphaned job is gone (it would otherwise overwrite the new result later)."""
    if shutil.which("snakemake") is None:
        pytest.skip("snakemake is not installed")
    copy_pipeline(tmp_path)
    profile = yaml.safe_load((ROOT / "workflow/config/tiny.yaml").read_text())
    profile.update(extras=[], tables={"table4": {**profile["tables"]["table4"], "strategies": ["sgd"]}})
    profile["defaults"]["iterations"] = [4000, 4000]
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(profile))
    cmd = [sys.executable, "-m", "snakemake", "results/tiny/table4.csv", "--cores", "1", "--configfile", "p.yaml"]
    cell = tmp_path / "results/tiny/table4/denoise/skimage/resnet/sgd/seed0"
    scheduler = subprocess.Popen(cmd, cwd=tmp_path, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                 start_new_session=True)
    deadline = time.time() + 240
    while not (cell / LOCK_FILE).exists() and time.time() < deadline and scheduler.poll() is None:
        time.sleep(0.5)
    assert (cell / LOCK_FILE).exists(), "the training job never started"
    scheduler.send_signal(signal.SIGKILL)
    scheduler.wait()
    deadline = time.time() + 30
    while _trainers(cell) and time.time() < deadline:
        time.sleep(0.5)
    assert not _trainers(cell), "a training job outlived the killed Snakemake"
    subprocess.run(cmd + ["--unlock"], cwd=tmp_path, env=_env(), check=True, capture_output=True)
    profile["defaults"]["iterations"] = [3, 3]
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(profile))
    subprocess.run(cmd, cwd=tmp_path, env=_env(), check=True, capture_output=True, timeout=300)
    first = (cell / "metrics.json").read_text()
    assert json.loads(first)["iterations"] == 6
    time.sleep(3)
    assert (cell / "metrics.json").read_text() == first


def _trainers(cell: Path) -> list[str]:
    procs = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True).stdout.splitlines()
    return [p for p in procs if "mfcbench train" in p and str(cell) in p or (" train " in p and "--out " + str(cell) in p)]
