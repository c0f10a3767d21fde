"""Training-side fault classes of issue 30: a checkpoint records the data it was trained on (a data change
or a rerun on request retrains, never reports the old model), a failing `--arch` builder is one line
naming the arch and leaves no folder, quiet or unclear inputs are refused naming the file or key, a
full disk during a checkpoint write frees the temporary file's space, and `dvc repro fetch@...` is
refused during a live run as `prepare@...` is."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from mfcbench.train import runner

ROOT = Path(__file__).resolve().parents[2]
TINY = {"image_size": 16, "levels": 2, "batch_size": 2, "iterations": [2, 2], "lr": 1e-2, "val_size": 4,
        "val_every": 2, "checkpoint_every": 2, "model": {"width": 0.125}, "threads": 1}


def _images(seed: int, n: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, 16, 16, generator=g), torch.rand(4, 3, 16, 16, generator=g)


def _run(out: Path, images, lines: list | None = None, on_stale: str = "restart") -> dict:
    train, val = images
    return runner.run_cell(dict(TINY), task="denoise", arch="resnet", strategy="fmsgd", out_dir=out, device="cpu",
                           train_images=train, val_images=val, progress=False, on_stale=on_stale,
                           log=(lines.append if lines is not None else lambda m: None))


def _val(record: dict) -> float:
    return record["metrics"][record["headline_metric"]]


def test_a_data_change_retrains_the_cell_instead_of_reporting_the_old_model(tmp_path):
    """The pipeline's rerun after a data change: Snakemake deletes metrics.json, the finished checkpoint
    stays; the new result must be a training on the new data, not the old model under the new checksum."""
    a, b = _images(0), _images(1)
    fresh_b = _run(tmp_path / "fresh_b", b)
    out = tmp_path / "cell"
    old = _run(out, a)
    assert _val(old) != _val(fresh_b)
    (out / "metrics.json").unlink()  # what Snakemake does before rerunning the job
    lines: list[str] = []
    new = _run(out, b, lines)
    assert _val(new) == _val(fresh_b), lines
    assert new["manifest"]["dataset_checksum"] == fresh_b["manifest"]["dataset_checksum"]
    assert not any("resuming" in line for line in lines), lines


def test_a_data_change_by_hand_retrains_a_finished_cell(tmp_path):
    """`train` rerun by hand on other data (metrics.json still there) retrains, saying why."""
    a, b = _images(0), _images(1)
    fresh_b = _run(tmp_path / "fresh_b", b, on_stale="error")
    out = tmp_path / "cell"
    _run(out, a, on_stale="error")
    lines: list[str] = []
    new = _run(out, b, lines, on_stale="error")
    assert _val(new) == _val(fresh_b), lines
    assert any("other data" in line and "afresh" in line for line in lines), lines


def test_a_rerun_on_request_never_resumes_a_finished_checkpoint(tmp_path):
    """`--forcerun train`: Snakemake deletes metrics.json; the cell trains afresh (same data, same result)."""
    out = tmp_path / "cell"
    first = _run(out, _images(0))
    (out / "metrics.json").unlink()
    lines: list[str] = []
    again = _run(out, _images(0), lines)
    assert not any("resuming" in line for line in lines), lines
    assert any("metrics.json is gone" in line for line in lines), lines
    assert _val(again) == _val(first) and again["iterations"] == first["iterations"]


def test_a_finished_cell_with_its_metrics_is_still_left_alone(tmp_path):
    out = tmp_path / "cell"
    first = _run(out, _images(0))
    lines: list[str] = []
    assert _run(out, _images(0), lines)["metrics"] == first["metrics"]
    assert any("nothing to do" in line for line in lines), lines


def test_a_checkpoint_that_records_no_data_counts_as_other_data(tmp_path):
    from mfcbench.core.atomic import torch_load, torch_save
    from mfcbench.core.cell import Cell
    from mfcbench.train import checkpoint

    out = tmp_path / "cell"
    _run(out, _images(0), on_stale="error")
    path = out / "checkpoint.pt"
    ck = torch_load(path)
    assert isinstance(ck["data_checksum"], str) and len(ck["data_checksum"]) == 64
    del ck["data_checksum"]  # a checkpoint of the format before the record
    torch_save(ck, path)
    cell = Cell(task="denoise", dataset="memory", arch="resnet", strategy="fmsgd", seed=0)
    lines: list[str] = []
    got = checkpoint.load_matching(path, cell=cell, config_hash=ck["config_hash"], on_stale="error",
                                   log=lines.append, data_checksum="0" * 64)
    assert got is None and not path.exists()
    assert lines and "no dataset checksum" in lines[0], lines


# --- --arch builders that fail ---------------------------------------------------------------------
BUILDERS = '''
def boom(in_channels, out_channels, **options):
    raise RuntimeError("builder exploded")


def number(in_channels, out_channels, **options):
    return 3
'''


@pytest.mark.parametrize("builder, words", [
    ("boom", ["r2_builders:boom: its builder raised RuntimeError: builder exploded"]),
    ("number", ["r2_builders:number: builder returned int, not a torch.nn.Module"]),
])
def test_a_failing_arch_builder_is_one_line_naming_it_and_leaves_nothing(tmp_path, monkeypatch, capsys, builder, words):
    from mfcbench.cli import main

    (tmp_path / "r2_builders.py").write_text(BUILDERS)
    monkeypatch.syspath_prepend(str(tmp_path))
    out = tmp_path / "runs" / "cell"
    argv = ["train", "--task", "denoise", "--dataset", "digits", "--arch", f"r2_builders:{builder}",
            "--strategy", "sgd", "--out", str(out), "--device", "cpu", "--set", "image_size=16", "levels=2",
            "iterations=[1,1]", "val_size=4", "model={}"]
    assert main(argv) in (1, 2)
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    for word in words:
        assert word in err, err
    assert not (tmp_path / "runs").exists(), sorted(str(p) for p in (tmp_path / "runs").rglob("*"))


def test_a_failed_start_keeps_a_folder_that_holds_other_files(tmp_path):
    """Only what the run made goes: a folder with the pipeline's cell.yaml keeps it (and its .lock)."""
    from mfcbench.train.checkpoint import lock_cell

    out = tmp_path / "cell"
    out.mkdir()
    (out / "cell.yaml").write_text("{}\n")
    with pytest.raises(RuntimeError), lock_cell(out):
        raise RuntimeError("refused")
    assert (out / "cell.yaml").is_file()
    made = tmp_path / "made" / "cell"
    with pytest.raises(RuntimeError), lock_cell(made):
        raise RuntimeError("refused")
    assert not (tmp_path / "made").exists()


# --- quiet or unclear inputs -----------------------------------------------------------------------
def test_a_curve_missing_its_columns_is_refused_naming_the_file(tmp_path):
    from _cells import trained_cell

    from mfcbench.pipeline.gather import gather

    cell = trained_cell(tmp_path)
    curve = cell / "curve.csv"
    lines = curve.read_text().splitlines()
    header = lines[0].split(",")
    keep = [i for i, name in enumerate(header) if name not in ("wu_executed", "val_metric")]
    curve.write_text("\n".join(",".join(row.split(",")[i] for i in keep) for row in lines) + "\n")
    with pytest.raises(ValueError) as error:
        gather([cell])
    message = str(error.value)
    assert str(curve) in message and "wu_executed" in message and "val_metric" in message, message


@pytest.mark.slow
def test_an_unknown_dataset_is_one_line_and_exit_2(tmp_path):
    run = subprocess.run([sys.executable, "-m", "mfcbench", "train", "--task", "denoise", "--dataset", "nope",
                          "--arch", "resnet", "--strategy", "sgd", "--out", str(tmp_path / "cell")],
                         capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert run.returncode == 2, run.stderr
    assert run.stderr.count("\n") == 1 and "unknown dataset 'nope'" in run.stderr, run.stderr
    assert not (tmp_path / "cell").exists()


def test_fit_into_a_file_is_one_line_naming_it(tmp_path):
    import mfcbench as mfc

    blocker = tmp_path / "results.txt"
    blocker.write_text("not a folder\n")
    x = torch.rand(4, 1, 8, 8)
    for out_dir in (blocker, blocker / "run"):
        with pytest.raises(ValueError) as error:
            mfc.fit(torch.nn.Conv2d(1, 1, 3, padding=1), (x, x), (x, x), strategy="sgd", levels=1, iterations=1,
                    batch_size=2, out_dir=out_dir, log=None, device="cpu")
        message = str(error.value)
        assert str(blocker) in message and "is a file, not a folder" in message and "\n" not in message, message


def test_the_library_speaks_of_device_not_of_the_command_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError) as error:
        runner.resolve_device("cuda")
    assert "device='cuda'" in str(error.value) and "--device" not in str(error.value), error.value
    with pytest.raises(ValueError) as error:
        runner.run_cell(dict(TINY), task="denoise", arch="resnet", strategy="sgd", out_dir=tmp_path / "cell",
                        device="cuda", train_images=_images(0)[0], val_images=_images(0)[1], progress=False,
                        log=lambda m: None)
    assert "--device" not in str(error.value), error.value

    from mfcbench.cli import main

    argv = ["train", "--task", "denoise", "--dataset", "digits", "--arch", "resnet", "--strategy", "sgd",
            "--out", str(tmp_path / "cli"), "--device", "cuda"]
    assert main(argv) == 2
    assert "--device cuda requested" in capsys.readouterr().err


# --- minor -----------------------------------------------------------------------------------------
def _open_temp_files(directory: Path) -> list[str]:
    """Files under `directory` (deleted ones too) that this process holds open."""
    held = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith(str(directory)):
            held.append(target)
    return held


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc")
def test_a_full_disk_during_a_checkpoint_write_frees_the_temporary_file(tmp_path, monkeypatch):
    """torch's writer stays open while the error's traceback lives; the space of the deleted temporary
    file must be free before the failure record is written (closed handle, file gone)."""
    from mfcbench.core.atomic import NoSpaceError, torch_save

    opened = []

    def full_disk(obj, f, *args, **kwargs):
        handle = open(f, "wb") if isinstance(f, (str, os.PathLike)) else f  # torch opens a path itself
        opened.append(handle)
        handle.write(b"x" * 4096)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", full_disk)
    with pytest.raises(NoSpaceError) as error:
        torch_save({"w": torch.zeros(4)}, tmp_path / "checkpoint.pt")
    assert str(tmp_path) in str(error.value)
    assert all(handle.closed for handle in opened)
    assert _open_temp_files(tmp_path) == [], _open_temp_files(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == []
    for handle in opened:
        handle.close()


def test_dvc_fetch_stages_refuse_during_a_live_run_as_prepare_does():
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    for name in ("fetch", "prepare"):
        stage = stages[name]["do"]
        assert stage["cmd"][0] == "python -m mfcbench grid --refuse-if-running", (name, stage["cmd"])
        (out,) = stage["outs"]
        assert list(out.values()) == [{"persist": True}]  # DVC deletes nothing before the refusal
