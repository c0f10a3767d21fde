"""DDPM with Full-Multiscale training (App. D.9, Figure 8): meshes, #WU, Frechet distance, run_fig8."""

import math

import pytest
import torch

pytest.importorskip("diffusers")

from mfcbench.core.restrict import restrict  # noqa: E402
from mfcbench.core.workunits import wu_fmsgd  # noqa: E402
from mfcbench.experiments import ddpm, ddpm_train  # noqa: E402
from mfcbench.experiments.sample_scores import frechet_distance  # noqa: E402

MICRO = dict(block_out_channels=[8, 16, 16], batch_size=2, fmsgd_iterations=[4, 2, 1], sgd_iterations=2,
             sgd_batch=2, samples=8, inference_steps=2, classifier_epochs=1, train_limit=256, seeds=[0])


@pytest.fixture(scope="module")
def cfg():
    return ddpm.config_with(**MICRO)


def test_one_training_step_on_each_mesh(cfg, one_thread):
    model, scheduler = ddpm_train.build_unet(cfg), ddpm_train.build_scheduler(cfg)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    gen = torch.Generator().manual_seed(0)
    x0 = torch.rand(2, 1, 32, 32, generator=gen) * 2 - 1
    eps = torch.randn(2, 1, 32, 32, generator=gen)
    t = torch.tensor([10, 900])
    for level, size in ((0, 32), (1, 16), (2, 8)):
        x_t = scheduler.add_noise(restrict(x0, level, "pool"), ddpm_train.level_noise(eps, 0, level), t)
        assert model(x_t, t).sample.shape == (2, 1, size, size)
        loss = ddpm_train.ddpm_level_loss(model, scheduler, x0, eps, t, level, eps_level=0)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        assert math.isfinite(loss.item()) and loss.item() > 0


def test_coarse_noise_is_standard_normal():
    eps = torch.randn(64, 1, 64, 64, generator=torch.Generator().manual_seed(1))
    assert ddpm_train.level_noise(eps, 0, 0) is eps
    for steps in (1, 2):
        coarse = ddpm_train.level_noise(eps, 0, steps)
        assert coarse.shape[-1] == 64 // 2**steps
        assert abs(float(coarse.std()) - 1.0) < 0.02 and abs(float(coarse.mean())) < 0.02


def test_fmsgd_executed_wu_equals_closed_form(cfg, one_thread):
    images = torch.rand(16, 1, 32, 32, generator=torch.Generator().manual_seed(2)) * 2 - 1
    result = ddpm_train.train_ddpm("fmsgd", cfg, images)
    # App. C: Full-Multiscale with I = 4 coarsest-phase steps (4, 2, 1), N0 = 2, 3 levels, growths 2
    assert result.wu_executed == float(result.wu_closed_form) == float(wu_fmsgd(2, 4, levels=3))
    assert len(result.losses) == 7 and all(math.isfinite(v) for v in result.losses)
    sgd = ddpm_train.train_ddpm("sgd", cfg, images)
    assert sgd.wu_executed == float(sgd.wu_closed_form) == 2 * 2
    again = ddpm_train.train_ddpm("sgd", cfg, images)
    assert again.losses == sgd.losses  # seeded init, data and noise


def test_each_ddpm_step_is_the_runners_optimizer_step(cfg, one_thread, monkeypatch):
    from mfcbench.strategies import schedule_config

    steps = []

    def counted(*args, **kwargs):
        steps.append(args[4].level)  # the phase's level
        return optimizer_step(*args, **kwargs)

    optimizer_step = ddpm_train.optimizer_step
    monkeypatch.setattr(ddpm_train, "optimizer_step", counted)
    images = torch.rand(16, 1, 32, 32, generator=torch.Generator().manual_seed(2)) * 2 - 1
    result = ddpm_train.train_ddpm("fmsgd", cfg, images)
    assert len(steps) == len(result.losses) == 7 and steps == sorted(steps, reverse=True)  # coarse -> fine
    # the strategies' one schedule config, with the experiment's own single-scale batch
    assert ddpm_train.ddpm_schedule(cfg, "sgd") == schedule_config(3, 2, [0, 0, 2], 2, 2, sgd_batch=2)


def test_frechet_distance():
    gen = torch.Generator().manual_seed(3)
    a = torch.randn(400, 6, generator=gen, dtype=torch.float64)
    assert frechet_distance(a, a) < 1e-8
    b = torch.randn(400, 6, generator=gen, dtype=torch.float64) * 1.5 + 0.5
    value = frechet_distance(a, b)
    scipy_linalg = pytest.importorskip("scipy.linalg")
    mu, ca, cb = a.mean(0) - b.mean(0), torch.cov(a.T).numpy(), torch.cov(b.T).numpy()
    reference = float(mu @ mu) + ca.trace() + cb.trace() - 2 * scipy_linalg.sqrtm(ca @ cb).real.trace()
    assert value > 1.0 and value == pytest.approx(reference, rel=1e-6)


@pytest.fixture
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny convolutions: a second thread only waits (7.8 s -> 0.8 s at 16 px on a busy box)
    yield
    torch.set_num_threads(before)


def test_run_fig8_micro_seeds_floor_and_dataset(tmp_path, one_thread):
    from mfcbench.figures.fig8 import draw_fig8

    rows = ddpm.run_fig8(tmp_path, **{**MICRO, "image_size": 16, "block_out_channels": [8, 8], "seeds": [0, 1]})
    assert [(r["seed"], r["run"]) for r in rows] == [(s, run) for s in (0, 1)
                                                     for run in ("ground_truth", "single_scale", "full_multiscale")]
    keys = {"mean_confidence", "confident_fraction", "frechet_distance", "frechet_floor", "wu_executed",
            "wu_closed_form", "train_seconds", "n_samples", "n_reference", "classifier_val_accuracy", "status",
            "dataset"}
    for row in rows:
        assert keys <= set(row) and row["status"] == "OK" and row["n_samples"] == 8 and row["n_reference"] == 256
        assert 0.0 <= row["confident_fraction"] <= 1.0 and row["frechet_distance"] >= 0.0
        assert row["dataset"] == "digits"  # no prepared MNIST under the default data root of a test
    for seed in (0, 1):  # the floor of a seed is its ground truth's FD: same count, same reference
        ground = next(r for r in rows if r["seed"] == seed and r["run"] == "ground_truth")
        assert all(r["frechet_floor"] == ground["frechet_distance"] for r in rows if r["seed"] == seed)
    assert rows[0]["frechet_floor"] != rows[3]["frechet_floor"]  # each seed measures its own floor
    assert rows[2]["wu_executed"] == float(wu_fmsgd(2, 4, levels=3))  # #WU in units of the finest mesh
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fig8.json", "samples.pt"]  # the experiment draws nothing
    assert draw_fig8(tmp_path) == tmp_path / "figure8.png"  # figures/ draws from those files
    for name in ("ground_truth.png", "single_scale.png", "full_multiscale.png", "figure8.png"):
        assert (tmp_path / name).read_bytes()[:4] == b"\x89PNG"
    samples = torch.load(tmp_path / "samples.pt")
    assert set(samples) == {0, 1} and samples[1]["full_multiscale"].shape == (8, 1, 16, 16)


def test_options_are_checked_before_any_run():
    assert ddpm.check_options({}) == [] and ddpm.check_options(MICRO) == []
    assert ddpm.DEFAULTS["seeds"] == [0, 1, 2] and set(ddpm.DEFAULTS) == set(ddpm.OPTIONS)
    (typo,) = ddpm.check_options({"sampels": 64})
    assert "'sampels'" in typo and "valid options" in typo and "samples" in typo
    assert any("samples" in p for p in ddpm.check_options({"samples": 0}))
    assert any("seeds" in p for p in ddpm.check_options({"seeds": []}))
    assert any("dataset" in p and "mnist" in p for p in ddpm.check_options({"dataset": "cifar"}))
    assert any("lr" in p for p in ddpm.check_options({"lr": "fast"}))
    assert any("fmsgd_iterations" in p for p in ddpm.check_options({"levels": 2}))
    assert any("image_size" in p for p in ddpm.check_options({"image_size": 36}))
    assert any("must be a mapping" in p for p in ddpm.check_options([1]))
    with pytest.raises(ValueError, match="sampels"):
        ddpm.config_with(sampels=3)
    assert ddpm.config_with(seeds=[4, 5])["seed"] == 4


def test_dataset_choice_mnist_when_prepared_else_digits(tmp_path):
    cfg = ddpm.config_with()
    name, why = ddpm.choose_dataset(cfg, tmp_path)
    assert name == "digits" and "not prepared" in why
    with pytest.raises(ValueError, match="dataset is mnist"):
        ddpm.choose_dataset({**cfg, "dataset": "mnist"}, tmp_path)
    prepared = tmp_path / "prepared" / "mnist" / "32"
    prepared.mkdir(parents=True)
    for name in ("train.pt", "val.pt", "checksum.txt"):
        (prepared / name).write_text("")
    assert "raw MNIST files" in ddpm.choose_dataset(cfg, tmp_path)[1]  # prepared, but no labels: digits
    raw = tmp_path / "raw" / "mnist" / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for part in ("train", "t10k"):
        for kind in ("images-idx3-ubyte", "labels-idx1-ubyte"):
            (raw / f"{part}-{kind}").write_text("")
    assert ddpm.choose_dataset(cfg, tmp_path)[0] == "mnist"
    assert ddpm.choose_dataset({**cfg, "dataset": "digits"}, tmp_path)[0] == "digits"


def test_samples_beyond_the_held_out_split_are_refused(tmp_path):
    with pytest.raises(ValueError, match="samples 400 exceeds the 359 held-out digits"):
        ddpm.load_data(ddpm.config_with(samples=400), tmp_path)


def test_every_profiles_ddpm_options_pass_the_check():
    from pathlib import Path

    import yaml

    for path in sorted((Path(__file__).resolve().parents[2] / "workflow" / "config").glob("*.yaml")):
        options = (yaml.safe_load(path.read_text()).get("ddpm") or {}).get("options") or {}
        assert ddpm.check_options(options) == [], path.name


def _fake_seed(fds):
    """run_seed stand-in: per seed, ground truth and both runs with the FD pair fds[seed] (no training)."""
    def run_seed(cfg, data, seed):
        ss, fm = fds[seed]
        rows = [{"run": run, "strategy": strategy, "seed": seed, "status": "OK", "wu_executed": wu,
                 "mean_confidence": 0.9, "confident_fraction": 0.5, "confident": 0.9, "train_seconds": 1.0,
                 "frechet_distance": fd, "frechet_floor": 20.0, "dataset": "digits"}
                for run, strategy, wu, fd in (("ground_truth", "", 0.0, 20.0), ("single_scale", "sgd", 100.0, ss),
                                              ("full_multiscale", "fmsgd", 80.0, fm))]
        return rows, {row["run"]: torch.zeros(2, 1, 8, 8) for row in rows}
    return run_seed


def test_run_fig8_runs_the_planned_seeds_round_after_round_until_the_plan_adds_none(monkeypatch):
    monkeypatch.setattr(ddpm, "run_seed", _fake_seed({s: (100.0, 100.0 + s) for s in range(7)}))
    seen = []
    answers = [([3, 4, 1], "undecided: 2 added"), ([5, 6], "still undecided: 2 added"), ([], "cap reached")]

    def plan(rows):
        seen.append(sorted({r["seed"] for r in rows}))
        return answers[len(seen) - 1]  # a seed already run is not run again

    rows = ddpm.run_fig8(None, more_seeds=plan, seeds=[0, 1, 2])
    assert seen == [[0, 1, 2], [0, 1, 2, 3, 4], [0, 1, 2, 3, 4, 5, 6]]  # asked after every round
    assert [(r["seed"], r["seed_round"]) for r in rows if r["run"] == "single_scale"] == [
        (0, 1), (1, 1), (2, 1), (3, 2), (4, 2), (5, 3), (6, 3)]
    assert {r["seed_reason"] for r in rows} == {"undecided: 2 added; then still undecided: 2 added; then cap reached"}
    assert ddpm.added_seeds([0, 1, 2], 6) == [3, 4, 5] and ddpm.added_seeds([0, 5], 2) == []


def test_run_fig8_stops_when_the_plan_only_names_seeds_already_run(monkeypatch):
    monkeypatch.setattr(ddpm, "run_seed", _fake_seed({s: (100.0, 100.0) for s in range(3)}))
    calls = []

    def plan(rows):
        calls.append(1)
        return [0, 1], "nothing new"

    rows = ddpm.run_fig8(None, more_seeds=plan, seeds=[0, 1, 2])
    assert len(calls) == 1 and {r["seed_round"] for r in rows} == {1}


def test_ddpm_cli_seed_cap_adds_the_seeds_the_claim_asks_for(tmp_path, monkeypatch):
    import pandas as pd

    from mfcbench.cli import experiment

    # FD ratios 0.5, 1.5, 1.2 on seeds 0-2: undecided, the power calculation asks for more than 5
    fds = {0: (100.0, 50.0), 1: (200.0, 300.0), 2: (250.0, 300.0), 3: (100.0, 110.0), 4: (100.0, 90.0)}
    monkeypatch.setattr(ddpm, "run_seed", _fake_seed(fds))
    out = tmp_path / "fig8.csv"
    assert experiment.main(["ddpm", "--options", "{seeds: [0, 1, 2]}", "--seed-cap", "5", "--out", str(out)]) == 0
    frame = pd.read_csv(out)
    assert sorted(frame["seed"].unique()) == [0, 1, 2, 3, 4]
    assert frame["seed_reason"].str.contains("3 seeds leave it undecided").all()
    assert frame["seed_reason"].str.contains(r"2 added \(cap 5\)").all()
    assert frame["seed_reason"].str.contains("; then 5 seed").all()  # asked again after the added round
    assert (tmp_path / "fig8" / "figure8.png").is_file()
