"""The cell runner: outputs, determinism, resume, divergence, early stop, and clear failures."""

from __future__ import annotations

import csv
import json
import subprocess

import pytest
import torch
from _tasks import NoisyDenoise
from torch import nn
from torch.nn import functional as F

from mfcbench.cli import train as train_cli
from mfcbench.core.atomic import torch_load
from mfcbench.core.cell import CURVE_COLUMNS, Cell
from mfcbench.models import MODELS
from mfcbench.tasks import TASKS
from mfcbench.train import config as config_mod
from mfcbench.train import convergence as convergence_mod
from mfcbench.train import runner
from mfcbench.train.cell import validation_subset

MODEL, TASK, BROKEN = "tiny_runner_test_net", "runner_test_denoise", "runner_test_nan"


class TinyNet(nn.Module):
    upscale = 1

    def __init__(self, in_channels, out_channels, *, cond=False, upscale=1, width=4, size_divisor=1):
        super().__init__()
        self.size_divisor = size_divisor
        self.body = nn.Sequential(nn.Conv2d(in_channels, width, 3, padding=1), nn.ReLU(), nn.Dropout(0.1),
                                  nn.Conv2d(width, out_channels, 3, padding=1))
        self.t = nn.Linear(1, out_channels) if cond else None

    def forward(self, x, cond=None):
        out = x + self.body(x)
        return out if cond is None or self.t is None else out + self.t(cond[:, None])[:, :, None, None]


class DenoiseLike(NoisyDenoise):
    noise = 0.2


class NaNTask(DenoiseLike):
    def loss(self, prediction, batch):
        return F.mse_loss(prediction, batch.targets) * float("nan")


@pytest.fixture(autouse=True)
def test_components():
    """The test model and tasks exist only while a test of this module runs (no global leftovers)."""
    with MODELS.temporarily(MODEL, TinyNet), TASKS.temporarily(TASK, DenoiseLike), \
            TASKS.temporarily(BROKEN, NaNTask):
        yield


@pytest.fixture(scope="module")
def images():
    g = torch.Generator().manual_seed(1)
    return torch.rand(24, 1, 16, 16, generator=g), torch.rand(6, 1, 16, 16, generator=g)


TINY = {"image_size": 16, "levels": 3, "batch_size": 1, "iterations": [3, 2, 2], "val_size": 4,
        "val_every": 2, "checkpoint_every": 2, "model": {"width": 4}}


def cell(tmp_path, images, strategy="msgd", out="cell", task=TASK, **kw):
    overrides = kw.pop("overrides", {})
    return runner.run_cell({**TINY, **overrides}, task=task, arch=MODEL, strategy=strategy, seed=kw.pop("seed", 0),
                           out_dir=tmp_path / out, device="cpu", train_images=images[0], val_images=images[1],
                           progress=False, log=lambda msg: None, **kw)


def test_cell_writes_the_documented_outputs(tmp_path, images):
    record = cell(tmp_path, images, strategy="fmsgd")
    out = tmp_path / "cell"
    on_disk = json.loads((out / "metrics.json").read_text())
    assert on_disk["status"] == "ok" and on_disk["cell"]["strategy"] == "fmsgd"
    for key in ("metrics", "headline_metric", "wu_closed_form", "wu_executed", "iterations", "seconds",
                "params", "peak_memory_mb", "config", "manifest"):
        assert key in on_disk, key
    assert set(on_disk["metrics"]) == {"val_loss", "val_mse"}
    assert on_disk["wu_executed"] == pytest.approx(on_disk["wu_closed_form"]) and on_disk["iterations"] == 7
    for key in ("git_commit", "git_dirty", "versions", "device", "seed", "config_hash", "dataset",
                "dataset_checksum", "hostname", "threads", "started_at", "finished_at"):
        assert key in on_disk["manifest"], key
    assert on_disk["manifest"]["config_hash"] == config_mod.config_hash(on_disk["config"])
    rows = list(csv.DictReader((out / "curve.csv").open()))
    assert list(rows[0]) == list(CURVE_COLUMNS) and len(rows) == 7
    assert [int(r["level"]) for r in rows] == [2, 2, 2, 1, 1, 0, 0]  # fmsgd: coarse -> fine
    assert float(rows[-1]["val_metric"]) == pytest.approx(record["metrics"]["val_mse"])
    assert float(rows[-1]["wu_executed"]) == pytest.approx(record["wu_executed"])
    ckpt = torch_load(out / "checkpoint.pt")  # weights_only=True
    assert ckpt["finished"] and ckpt["iteration"] == 7 and "model" in ckpt and "torch_rng" in ckpt


def test_same_cell_twice_gives_identical_metrics(tmp_path, images):
    a = cell(tmp_path, images, out="a")
    b = cell(tmp_path, images, out="b")
    assert a["metrics"] == b["metrics"]
    c = cell(tmp_path, images, out="c", seed=1)
    assert c["metrics"] != a["metrics"]


@pytest.mark.parametrize("strategy,opt_state,crash_at", [("msgd", "carry", 5), ("fmsgd", "reset", 4),
                                                          ("crops", "carry", 3)])
def test_killed_cell_resumes_to_the_same_result(tmp_path, images, strategy, opt_state, crash_at):
    overrides = {"optimizer_state": opt_state, "lr_schedule": "cosine"}
    whole = cell(tmp_path, images, strategy=strategy, out="whole", overrides=overrides)
    with pytest.raises(runner.SimulatedCrash):
        cell(tmp_path, images, strategy=strategy, out="resumed", overrides=overrides, stop_after=crash_at)
    assert not (tmp_path / "resumed" / "metrics.json").exists()
    assert torch_load(tmp_path / "resumed" / "checkpoint.pt")["iteration"] < crash_at + 1
    resumed = cell(tmp_path, images, strategy=strategy, out="resumed", overrides=overrides)
    assert resumed["metrics"] == whole["metrics"]
    assert resumed["wu_executed"] == whole["wu_executed"]
    strip = lambda p: [{k: v for k, v in r.items() if k not in ("seconds", "train_seconds")} for r in csv.DictReader(p.open())]  # noqa: E731
    assert strip(tmp_path / "resumed" / "curve.csv") == strip(tmp_path / "whole" / "curve.csv")


def test_finished_cell_is_a_no_op_unless_forced(tmp_path, images):
    first = cell(tmp_path, images)
    metrics = tmp_path / "cell" / "metrics.json"
    stamp = metrics.stat().st_mtime_ns
    assert cell(tmp_path, images) == first and metrics.stat().st_mtime_ns == stamp
    forced = cell(tmp_path, images, force=True)
    assert forced["metrics"] == first["metrics"] and metrics.stat().st_mtime_ns != stamp


def test_checkpoint_of_another_config_is_refused(tmp_path, images):
    with pytest.raises(runner.SimulatedCrash):
        cell(tmp_path, images, stop_after=2)
    with pytest.raises(ValueError, match="different cell or config"):
        cell(tmp_path, images, overrides={"lr": 1e-2})


def test_stale_checkpoint_restarts_when_asked(tmp_path, images):
    """The pipeline reruns a cell whose config changed: its old checkpoint must not block it."""
    with pytest.raises(runner.SimulatedCrash):
        cell(tmp_path, images, stop_after=2)
    restarted = cell(tmp_path, images, overrides={"lr": 1e-2}, on_stale="restart")
    fresh = cell(tmp_path / "fresh", images, overrides={"lr": 1e-2})
    assert restarted["metrics"] == fresh["metrics"]


def test_nan_loss_ends_the_cell_as_diverged(tmp_path, images):
    record = cell(tmp_path, images, task=BROKEN)
    assert record["status"] == "diverged" and record["iterations"] == 0
    assert json.loads((tmp_path / "cell" / "metrics.json").read_text())["status"] == "diverged"


def test_early_stop_on_a_plateau(tmp_path, images):
    record = cell(tmp_path, images, strategy="sgd", overrides={
        "iterations": [10, 10, 10], "val_every": 1, "early_stop": {"patience": 2, "min_delta": 10.0}})
    assert record["stopped_early"] and record["iterations"] == 3  # best at 1, no 10.0 gain at 2 and 3


def test_early_stop_ends_a_level_not_the_full_multiscale_run(tmp_path, images):
    """Algorithm 2 solves each level in turn: a plateau on a coarse level moves on to the next finer
    one (the run used to end on the coarsest mesh, never training on the finest)."""
    record = cell(tmp_path, images, strategy="fmsgd", overrides={
        "iterations": [10, 10, 10], "val_every": 1, "early_stop": {"patience": 2, "min_delta": 10.0}})
    curve = (tmp_path / "cell" / "curve.csv").read_text().splitlines()[1:]
    levels = [int(line.split(",")[1]) for line in curve]
    assert levels == [2, 2, 2, 1, 1, 1, 0, 0, 0], levels  # three validations per level, coarse to fine
    assert record["phase_stops"] == [3, 6] and record["stopped_early"] and record["iterations"] == 9
    assert all(line.split(",")[-1] for line in curve)  # every step validated (val_every 1)
    whole = cell(tmp_path / "run", images, strategy="fmsgd", overrides={
        "iterations": [10, 10, 10], "val_every": 1, "early_stop": {"patience": 2, "min_delta": 10.0, "scope": "run"}})
    assert whole["iterations"] == 3 and whole["phase_stops"] == [] and whole["stopped_early"]


@pytest.mark.parametrize("overrides,match", [
    ({"image_size": 14}, "multiple of 4"),
    ({"model": {"width": 4, "size_divisor": 8}}, "multiple of 32"),
    ({"iterations": [1, 1]}, "3 non-negative ints"),
    ({"batch_size": 0}, "batch_size: 0 is less than the minimum of 1"),
    ({"levels": 0, "iterations": [1]}, "levels: 0 is less than the minimum of 1"),
    ({"restriction": "cubic"}, "valid choices: pool, bilinear, nearest"),
    ({"lr_schedule": 3}, "lr_schedule: 3 is not allowed"),
    ({"bogus": 1}, "valid keys: image_size"),
])
def test_bad_cells_fail_before_training(tmp_path, images, overrides, match):
    with pytest.raises(ValueError, match=match):
        cell(tmp_path, images, overrides=overrides)
    assert not (tmp_path / "cell" / "checkpoint.pt").exists()


def test_cli_fails_with_one_line_and_exit_code(tmp_path, capsys):
    rc = train_cli.main(["--task", TASK, "--dataset", "x", "--arch", MODEL, "--strategy", "nope",
                      "--out", str(tmp_path / "c"), "--set", "image_size=16"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and "valid choices" in err and "Traceback" not in err
    rc = train_cli.main(["--task", TASK, "--dataset", "x", "--arch", MODEL, "--strategy", "sgd",
                      "--out", str(tmp_path / "c"), "--set", "levels=true"])
    assert rc == 2 and "levels: True is not of type 'integer'" in capsys.readouterr().err


def test_set_overrides_parse_yaml_and_nested_keys(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("levels: 2\niterations: [5, 5]\nmodel: {width: 8}\n")
    cfg = config_mod.resolve(path, ["lr=1e-3", "model.depth=2", "early_stop={patience: 3}"])
    assert cfg["lr"] == 1e-3 and cfg["model"] == {"width": 8, "depth": 2}
    assert cfg["early_stop"] == {"patience": 3, "min_delta": 0.0, "scope": "phase"} and cfg["levels"] == 2
    with pytest.raises(ValueError, match="key=value"):
        config_mod.parse_overrides(["lr"])


@pytest.mark.parametrize("task,strategy", [("denoise", "fmsgd"), ("superres", "crops")])
def test_real_task_and_model_train_a_tiny_cell(tmp_path, task, strategy):
    from mfcbench.models import model_names
    from mfcbench.tasks import task_names

    if task not in task_names() or "resnet" not in model_names():
        pytest.skip("the real task/model modules are not in this checkout yet")
    g = torch.Generator().manual_seed(0)
    train, val = torch.rand(8, 3, 32, 32, generator=g), torch.rand(4, 3, 32, 32, generator=g)
    record = runner.run_cell({**TINY, "image_size": 32, "iterations": [2, 1, 1], "model": {"width": 0.125}},
                             task=task, arch="resnet", strategy=strategy, out_dir=tmp_path, device="cpu",
                             train_images=train, val_images=val, progress=False, log=lambda m: None)
    assert record["status"] == "ok" and record["wu_executed"] == pytest.approx(record["wu_closed_form"])
    assert all(v is not None for v in record["metrics"].values())


class SlowValidation(DenoiseLike):
    def evaluate(self, model, batch, chunk=64):
        import time

        time.sleep(0.15)
        return super().evaluate(model, batch, chunk)


def test_training_seconds_exclude_validation(tmp_path, images):
    """A slow validation shows in eval_seconds and seconds, never in train_seconds."""
    with TASKS.temporarily("runner_test_slow_val", SlowValidation):
        record = cell(tmp_path, images, task="runner_test_slow_val", strategy="sgd",
                      overrides={"iterations": [1, 1, 2], "val_every": 1})
    validations = 4  # every step validates; the last one is reused as the final metric
    assert record["eval_seconds"] >= 0.15 * validations
    assert record["train_seconds"] < record["seconds"] - 0.15 * (validations - 1)
    curve = list(csv.DictReader(open(tmp_path / "cell" / "curve.csv")))
    assert float(curve[-1]["train_seconds"]) == pytest.approx(record["train_seconds"], abs=1e-3)


@pytest.mark.parametrize("values,higher,expected", [
    ([1.0, 0.5, 0.4, 0.399], False, (0.4 - 0.399) / 0.4),   # windows (2, 3] and (3, 4] of 4 steps
    ([0.1, 0.5, 0.8, 0.9], True, (0.9 - 0.8) / 0.8),
    ([None, None, None, 0.3], False, None),                   # nothing validated in the third quarter
    ([9, 9, 9, 9, 1.0, 3.0, 1.5, 1.5], False, (2.0 - 1.5) / 2.0),  # means of (4, 6] and (6, 8]
])
def test_plateau_statistic(values, higher, expected):
    curve = [{"iteration": i + 1, "val_metric": v} for i, v in enumerate(values)]
    steps = len(values)
    got = convergence_mod.plateau_statistic(curve, steps, higher)
    assert got == pytest.approx(expected) if expected is not None else got is None
    ok = convergence_mod.convergence(curve, steps, higher, 0.01, "ok", False)
    assert ok["converged"] == (expected is not None and expected <= 0.01)
    assert convergence_mod.convergence(curve, steps, higher, 1.0, "diverged", False)["converged"] is False
    assert convergence_mod.convergence(curve, steps, higher, 0.0, "ok", True)["converged"] is True  # early stop = plateau


def test_validation_images_spread_over_the_split():
    val = torch.arange(100, dtype=torch.float32).view(100, 1, 1, 1)
    spread = validation_subset(val, {"val_size": 5, "val_selection": "spread"}).flatten().tolist()
    assert spread == [0.0, 25.0, 50.0, 74.0, 99.0]  # evenly spaced: every val image can contribute
    assert validation_subset(val, {"val_size": 5, "val_selection": "first"}).flatten().tolist() == [0, 1, 2, 3, 4]
    assert len(validation_subset(val, {"val_size": 500})) == 100


@pytest.mark.slow
def test_git_state_ignores_the_published_snapshot(tmp_path):
    from mfcbench.train.manifest import git_state

    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-c", "commit.gpgsign=false"]
    (tmp_path / "reports/published/p").mkdir(parents=True)
    (tmp_path / "reports/published/p/REPORT.md").write_text("old\n")
    (tmp_path / "code.py").write_text("x = 1\n")
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    subprocess.run(git + ["add", "-A"], cwd=tmp_path, check=True)
    subprocess.run(git + ["commit", "-qm", "c"], cwd=tmp_path, check=True)
    (tmp_path / "reports/published/p/REPORT.md").write_text("refreshed by the pipeline\n")
    assert git_state(tmp_path)[1] is False
    (tmp_path / "code.py").write_text("x = 2\n")
    assert git_state(tmp_path)[1] is True


# --- the protocol of Algorithm 2 (issue 19 item 1) ----------------------------------------------
def test_each_full_multiscale_level_restarts_the_cosine_schedule(tmp_path, images, monkeypatch):
    """In a 3-level run with [24, 12, 6] iterations every level starts at the configured lr (one cosine
    over the whole run started the levels at 1.00x, 0.39x and 0.05x of it)."""
    seen, step = [], runner.train_step

    def spy(run, phase, *args):
        out = step(run, phase, *args)
        seen.append((phase.level, run.optimizer.param_groups[0]["lr"]))
        return out

    monkeypatch.setattr(runner, "train_step", spy)
    cell(tmp_path, images, strategy="fmsgd", overrides={"iterations": [24, 12, 6], "lr": 1e-3,
                                                        "lr_schedule": "cosine", "val_every": 50})
    firsts = [lr for i, (level, lr) in enumerate(seen) if i == 0 or seen[i - 1][0] != level]
    assert [level for level, _ in seen] == [2] * 24 + [1] * 12 + [0] * 6
    assert firsts == [pytest.approx(1e-3)] * 3
    assert seen[23][1] < 0.01 * 1e-3  # each level anneals towards 0 by its own last step


def test_a_level_is_validated_on_its_own_mesh(tmp_path, images, monkeypatch):
    """While fmsgd trains level j, validation (and so early stopping) sees the validation batch
    restricted to mesh j; the final metric is on the finest mesh."""
    sizes, evaluate = [], runner.evaluate
    monkeypatch.setattr(runner, "evaluate", lambda task, model, batch: sizes.append(batch.inputs.shape[-1])
                        or evaluate(task, model, batch))
    record = cell(tmp_path, images, strategy="fmsgd", overrides={"val_every": 1})
    rows = list(csv.DictReader((tmp_path / "cell" / "curve.csv").open()))
    assert [16 // 2 ** int(r["level"]) for r in rows] == sizes == [4, 4, 4, 8, 8, 16, 16]
    assert record["metrics"]["val_mse"] == pytest.approx(float(rows[-1]["val_metric"]))


def curve_of(levels_and_values):
    return [{"iteration": i + 1, "level": level, "val_metric": v} for i, (level, v) in enumerate(levels_and_values)]


def test_convergence_is_judged_on_the_last_level_only():
    """Windows straddling level changes made every Full-Multiscale cell unconverged; a flat last
    level is converged whatever the coarse levels did."""
    curve = curve_of([(1, 9.0)] * 8 + [(0, 1.0)] * 4)
    got = convergence_mod.convergence(curve, 12, False, 0.01, "ok", False)
    assert got["plateau"] == pytest.approx(0.0) and got["converged"] and got["plateau_from"] == 8
    assert convergence_mod.plateau_statistic(curve, 12, False) > 0.5  # the whole-run windows straddle the level change


def test_a_worsening_curve_is_not_converged():
    worse = curve_of([(0, 1.0), (0, 1.0), (0, 1.0), (0, 1.5)])
    got = convergence_mod.convergence(worse, 4, False, 0.01, "ok", False)
    assert got["plateau"] == pytest.approx(-0.5) and not got["converged"]
    assert not convergence_mod.convergence(worse, 4, False, 0.01, "ok", True)["converged"]  # not even after an early stop
    assert convergence_mod.convergence(worse, 4, False, 0.6, "ok", False)["converged"]  # within the threshold


def test_budget_scale_doubles_every_phase_and_the_closed_form(tmp_path, images):
    from mfcbench.strategies import build_strategy, closed_form

    base = config_mod.resolve({**TINY})
    double = config_mod.resolve({**TINY, "budget_scale": 2})
    for name in ("sgd", "msgd", "fmsgd", "progressive"):
        one, two = build_strategy(name, base).phases(), build_strategy(name, double).phases()
        assert [p.iterations * 2 for p in one] == [p.iterations for p in two]
    assert closed_form("fmsgd", 1, [3, 2, 2], 3, budget_scale=2) == 2 * closed_form("fmsgd", 1, [3, 2, 2], 3)
    record = cell(tmp_path, images, strategy="fmsgd", overrides={"budget_scale": 2})
    assert record["iterations"] == 14 and record["budget_scale"] == 2
    assert record["wu_executed"] == pytest.approx(record["wu_closed_form"])


def test_manifest_records_the_processor_and_math_libraries(tmp_path):
    from mfcbench.train import manifest

    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nvendor_id\t: X\nmodel name\t: Test CPU 9000 @ 3.0GHz\nflags\t: avx\n")
    assert manifest.cpu_model(info) == "Test CPU 9000 @ 3.0GHz" and manifest.cpu_model(tmp_path / "none") is None
    shown = "PyTorch built with:\n  - Intel(R) MKL-DNN v3.1.0 (Git Hash abc)\n"
    assert manifest.build_line(shown, "Intel(R) MKL-DNN") == "v3.1.0 (Git Hash abc)"
    compute = manifest.compute_provenance()
    assert compute["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert compute["threads"] == torch.get_num_threads() and "onednn" in compute and "mkl" in compute


def test_run_cell_trains_what_build_cell_builds(tmp_path, images, monkeypatch):
    """The public builder is the runner's: same seeded initial model, same validation batch."""
    from mfcbench.train.cell import build_cell, cell_images

    seen, make_run = {}, runner.make_run
    monkeypatch.setattr(runner, "make_run", lambda *a, **k: seen.setdefault("run", make_run(*a, **k)))
    cfg = config_mod.resolve(TINY)
    record = cell(tmp_path, images, strategy="sgd", overrides={"iterations": [0, 0, 1]})
    spec = Cell(task=TASK, dataset="memory", arch=MODEL, strategy="sgd", seed=0, config=cfg)
    train, val, checksum = cell_images(spec, *images)
    built = build_cell(spec, val)
    assert torch.equal(built.val_batch.inputs, seen["run"].val_batch.inputs) and len(val) == record["val_images"]
    assert torch.equal(built.val_batch.cond, seen["run"].val_batch.cond) and checksum == record["manifest"]["dataset_checksum"]
    fresh = build_cell(spec, val).model.state_dict()
    assert all(torch.equal(v, built.model.state_dict()[k]) for k, v in fresh.items())  # seeded: rebuilt identically
