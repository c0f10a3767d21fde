"""DDPM with Full-Multiscale training (App. D.9, Figure 8): meshes, #WU, Frechet distance, run_fig8."""

import math

import pytest
import torch

pytest.importorskip("diffusers")

from mfcbench.experiments import ddpm  # noqa: E402
from mfcbench.core.restrict import restrict  # noqa: E402
from mfcbench.core.workunits import wu_fmsgd  # noqa: E402

MICRO = dict(block_out_channels=(8, 16, 16), batch_size=2, fmsgd_iterations=(4, 2, 1), sgd_iterations=2,
             sgd_batch=2, samples=8, inference_steps=2, classifier_epochs=1, train_limit=256)


@pytest.fixture(scope="module")
def cfg():
    return ddpm.config_with(**MICRO)


def test_one_training_step_on_each_mesh(cfg):
    model, scheduler = ddpm.build_unet(cfg), ddpm.build_scheduler(cfg)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    gen = torch.Generator().manual_seed(0)
    x0 = torch.rand(2, 1, 32, 32, generator=gen) * 2 - 1
    eps = torch.randn(2, 1, 32, 32, generator=gen)
    t = torch.tensor([10, 900])
    for level, size in ((0, 32), (1, 16), (2, 8)):
        x_t = scheduler.add_noise(restrict(x0, level, "pool"), ddpm.level_noise(eps, 0, level), t)
        assert model(x_t, t).sample.shape == (2, 1, size, size)
        loss = ddpm.ddpm_level_loss(model, scheduler, x0, eps, t, level, 0)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        assert math.isfinite(loss.item()) and loss.item() > 0


def test_coarse_noise_is_standard_normal():
    eps = torch.randn(64, 1, 64, 64, generator=torch.Generator().manual_seed(1))
    assert ddpm.level_noise(eps, 0, 0) is eps
    for steps in (1, 2):
        coarse = ddpm.level_noise(eps, 0, steps)
        assert coarse.shape[-1] == 64 // 2**steps
        assert abs(float(coarse.std()) - 1.0) < 0.02 and abs(float(coarse.mean())) < 0.02


def test_fmsgd_executed_wu_equals_closed_form(cfg):
    images = torch.rand(16, 1, 32, 32, generator=torch.Generator().manual_seed(2)) * 2 - 1
    result = ddpm.train_ddpm("fmsgd", cfg, images)
    # App. C: Full-Multiscale with I = 4 coarsest-phase steps (4, 2, 1), N0 = 2, 3 levels, growths 2
    assert result.wu_executed == float(result.wu_closed_form) == float(wu_fmsgd(2, 4, levels=3))
    assert len(result.losses) == 7 and all(math.isfinite(v) for v in result.losses)
    sgd = ddpm.train_ddpm("sgd", cfg, images)
    assert sgd.wu_executed == float(sgd.wu_closed_form) == 2 * 2
    again = ddpm.train_ddpm("sgd", cfg, images)
    assert again.losses == sgd.losses  # seeded init, data and noise


def test_frechet_distance():
    gen = torch.Generator().manual_seed(3)
    a = torch.randn(400, 6, generator=gen, dtype=torch.float64)
    assert ddpm.frechet_distance(a, a) < 1e-8
    b = torch.randn(400, 6, generator=gen, dtype=torch.float64) * 1.5 + 0.5
    value = ddpm.frechet_distance(a, b)
    scipy_linalg = pytest.importorskip("scipy.linalg")
    mu, ca, cb = a.mean(0) - b.mean(0), torch.cov(a.T).numpy(), torch.cov(b.T).numpy()
    reference = float(mu @ mu) + ca.trace() + cb.trace() - 2 * scipy_linalg.sqrtm(ca @ cb).real.trace()
    assert value > 1.0 and value == pytest.approx(reference, rel=1e-6)


def test_run_fig8_micro(tmp_path):
    rows = ddpm.run_fig8(tmp_path, **MICRO)
    assert [r["run"] for r in rows] == ["ground_truth", "single_scale", "full_multiscale"]
    keys = {"mean_confidence", "confident_fraction", "frechet_distance", "wu_executed", "wu_closed_form",
            "train_seconds", "n_samples", "classifier_val_accuracy", "status"}
    for row in rows:
        assert keys <= set(row) and row["status"] == "OK" and row["n_samples"] == 8
        assert 0.0 <= row["confident_fraction"] <= 1.0 and row["frechet_distance"] >= 0.0
    assert rows[2]["wu_executed"] == float(wu_fmsgd(2, 4, levels=3))
    for name in ("ground_truth.png", "single_scale.png", "full_multiscale.png", "figure8.png", "samples.pt", "fig8.json"):
        assert (tmp_path / name).is_file()
    assert torch.load(tmp_path / "samples.pt")["full_multiscale"].shape == (8, 1, 32, 32)
