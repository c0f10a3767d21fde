"""Degraded fault classes of issue 20: each is a clear, early, one-line error naming the file, key or
folder and the fix, or the behaviour a user expects (file modes follow the umask, SIGTERM stops a job
checkpointed, an archive bomb is refused, NaN pixels and edited meta.json are refused at load, an
unprepared dataset is not built in memory by the pipeline's train)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest
import torch
import yaml

from mfcbench.core.atomic import write_text
from mfcbench.data import CorruptPreparedDataError, load_split, open_dataset, prepare
from mfcbench.data.fetch import ArchiveError, safe_extract
from mfcbench.data.store import write_prepared

ROOT = Path(__file__).resolve().parents[2]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_written_files_follow_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        write_text(tmp_path / "shared.csv", "a\n")
        assert (tmp_path / "shared.csv").stat().st_mode & 0o777 == 0o644  # was 0600 (the temp file's mode)
        os.umask(0o077)
        write_text(tmp_path / "private.csv", "a\n")
        assert (tmp_path / "private.csv").stat().st_mode & 0o777 == 0o600
    finally:
        os.umask(old)


def test_an_archive_that_expands_past_the_limit_is_refused_before_writing(tmp_path):
    bomb = tmp_path / "bomb.zip"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("zeros.bin", b"\0" * (8 << 20))  # 8 KiB on disk, 8 MiB expanded
    assert bomb.stat().st_size < 64 << 10
    with pytest.raises(ArchiveError, match=rf"refusing to extract {bomb}: it expands to 8.0 MiB, over the 1.0 MiB limit"):
        safe_extract(bomb, tmp_path / "out", max_bytes=1 << 20)
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob(".out.extract.*"))
    assert [p.name for p in safe_extract(bomb, tmp_path / "out", max_bytes=16 << 20)] == ["zeros.bin"]


def _prepared_with(tmp_path: Path, train: torch.Tensor) -> Path:
    directory = tmp_path / "prepared" / "fields" / "16"
    write_prepared(directory, {"train": train, "val": torch.rand(2, 1, 16, 16)}, {"dataset": "fields", "image_size": 16})
    return directory


def test_nan_pixels_in_a_prepared_split_are_refused_naming_the_file(tmp_path):
    train = torch.rand(4, 1, 16, 16)
    train[1, 0, 3, 3] = float("nan")
    directory = _prepared_with(tmp_path, train)
    with pytest.raises(CorruptPreparedDataError, match=rf"{directory / 'train.pt'}: 1 NaN or infinite pixel value"):
        open_dataset("fields", 16, tmp_path)
    with pytest.raises(CorruptPreparedDataError, match=rf"{directory / 'train.pt'}: 1 NaN"):
        load_split("fields", "train", 16, tmp_path)


def test_an_edited_meta_json_is_refused_by_training_as_by_load_split(tmp_path):
    directory = prepare("fields", 16, tmp_path, limit_train=4, limit_val=2)
    meta = json.loads((directory / "meta.json").read_text())
    meta["splits"]["train"]["sha256"] = "0" * 64
    (directory / "meta.json").write_text(json.dumps(meta))
    for load in (lambda: load_split("fields", "train", 16, tmp_path), lambda: open_dataset("fields", 16, tmp_path)):
        with pytest.raises(CorruptPreparedDataError, match=rf"{directory / 'train.pt'} does not match the sha256 recorded in"):
            load()


def test_the_pipelines_train_refuses_an_unprepared_dataset(tmp_path, capsys):
    from mfcbench.cli import train as train_cli

    config = tmp_path / "cell.yaml"
    config.write_text(yaml.safe_dump({"image_size": 16, "levels": 2, "iterations": [1, 1], "batch_size": 2,
                                      "data_root": str(tmp_path / "data")}))
    rc = train_cli.main(["--task", "denoise", "--dataset", "skimage", "--arch", "resnet", "--strategy", "sgd",
                         "--config", str(config), "--out", str(tmp_path / "cell"), "--device", "cpu", "--require-prepared"])
    err = capsys.readouterr().err
    assert rc == 1 and f"{tmp_path / 'data'}/prepared/skimage/16 is missing or incomplete" in err
    assert f"python -m mfcbench prepare --dataset skimage --image-size 16 --root {tmp_path / 'data'}" in err
    assert not (tmp_path / "cell" / "metrics.json").exists()


@pytest.mark.slow
def test_sigterm_stops_a_training_job_at_once_keeping_its_checkpoint(tmp_path):
    config = tmp_path / "cell.yaml"
    config.write_text(yaml.safe_dump({"image_size": 16, "levels": 2, "batch_size": 2, "iterations": [100000, 100000],
                                      "lr": 1e-3, "val_size": 4, "val_every": 50, "checkpoint_every": 5,
                                      "model": {"width": 0.125}, "threads": 1, "data_root": str(tmp_path)}))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MFCBENCH_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    job = subprocess.Popen([sys.executable, "-m", "mfcbench", "train", "--task", "denoise", "--dataset", "fields",
                            "--arch", "resnet", "--strategy", "sgd", "--config", str(config), "--out", str(tmp_path / "cell"),
                            "--device", "cpu"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 120
        while not (tmp_path / "cell" / "checkpoint.pt").exists() and time.time() < deadline and job.poll() is None:
            time.sleep(0.2)
        assert (tmp_path / "cell" / "checkpoint.pt").exists(), job.stderr.read() if job.poll() is not None else "no checkpoint"
        job.send_signal(signal.SIGTERM)
        started = time.time()
        job.wait(timeout=20)
        assert time.time() - started < 10
    finally:
        job.kill()
    assert job.returncode == 130 and "mfcbench train: interrupted" in job.stderr.read()
    assert not (tmp_path / "cell" / "metrics.json").exists() and (tmp_path / "cell" / "checkpoint.pt").stat().st_size > 0


def test_a_failure_that_cannot_be_recorded_is_one_line_naming_the_folder(tmp_path, capsys, monkeypatch):
    from mfcbench.cli import train as train_cli

    def read_only(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(train_cli, "record_failure", read_only)
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({"image_size": 16, "data_root": str(tmp_path / "nowhere")}))
    out = tmp_path / "cell"
    rc = train_cli.main(["--task", "denoise", "--dataset", "stl10", "--arch", "resnet", "--strategy", "sgd",
                         "--config", str(config), "--out", str(out), "--device", "cpu", "--record-failure"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 1 and err[-1] == (f"mfcbench train: could not record the failure in {out}/metrics.json "
                                   f"(Permission denied); make {out} writable or free space there, and rerun")
    assert "Traceback" not in "\n".join(err)
