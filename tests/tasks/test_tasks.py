"""Trainable tasks: shapes, determinism, the transforms they promise, metrics, and a few training steps."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from mfcbench.core.registry import UnknownNameError
from mfcbench.tasks import build_task, task_names
from mfcbench.tasks.blur import random_blur_kernel
from mfcbench.tasks.superres import ssim_per_image, ssim_window

TRAINABLE = ("denoise", "superres", "blur")


class TinyNet(nn.Module):
    """A single conv (+ pixel shuffle for upscale 2); ignores cond, as the contract allows."""

    def __init__(self, channels: int, upscale: int = 1, kernel_size: int = 3):
        super().__init__()
        self.upscale = upscale
        self.conv = nn.Conv2d(channels, channels * upscale**2, kernel_size, padding=kernel_size // 2,
                              padding_mode="circular")

    def forward(self, x, cond=None):
        y = self.conv(x)
        return F.pixel_shuffle(y, self.upscale) if self.upscale > 1 else y


def images(n=6, c=3, size=16, seed=0):
    return torch.rand(n, c, size, size, generator=torch.Generator().manual_seed(seed))


def gen(seed):
    return torch.Generator().manual_seed(seed)


def test_registered():
    assert set(TRAINABLE) <= set(task_names()) and "discrepancy" not in task_names()  # an experiment now
    with pytest.raises(UnknownNameError, match="valid choices"):
        build_task("nope")


@pytest.mark.parametrize("name", TRAINABLE)
def test_shapes_and_determinism(name):
    task = build_task(name)
    opts = task.model_options(3)
    x = images()
    a, b, c = (task.make_batch(x, gen(s)) for s in (1, 1, 2))
    assert a.targets.shape[-1] == a.inputs.shape[-1] * opts["upscale"]
    assert a.targets.shape[:2] == a.inputs.shape[:2] == (6, 3)
    assert (a.cond is not None) == opts["cond"]
    assert torch.equal(a.inputs, b.inputs) and torch.equal(a.targets, b.targets)
    # every task draws noise: on the inputs (denoise, superres) or the targets (blur)
    assert not (torch.equal(a.inputs, c.inputs) and torch.equal(a.targets, c.targets))


@pytest.mark.parametrize("name", TRAINABLE)
def test_evaluate_chunked_equals_whole_and_restores_mode(name):
    task = build_task(name)
    torch.manual_seed(0)
    model = TinyNet(3, task.model_options(3)["upscale"]).train()
    batch = task.make_batch(images(n=5), gen(0))
    whole, chunked = task.evaluate(model, batch, chunk=64), task.evaluate(model, batch, chunk=2)
    assert model.training
    assert whole.keys() == chunked.keys() and "val_loss" in whole and task.headline_metric in whole
    for key in whole:
        assert whole[key] == pytest.approx(chunked[key], rel=1e-5)
    with torch.no_grad():
        assert whole["val_loss"] == pytest.approx(task.loss(model(batch.inputs), batch).item(), rel=1e-5)


@pytest.mark.parametrize("name", TRAINABLE)
def test_a_few_steps_reduce_the_loss(name):
    task = build_task(name)
    torch.manual_seed(0)
    model = TinyNet(1, task.model_options(1)["upscale"], kernel_size=7 if name == "blur" else 3)
    smooth = F.interpolate(images(n=8, c=1, size=4, seed=3), size=(16, 16), mode="bilinear")
    batch = task.make_batch(smooth, gen(0))
    opt = torch.optim.Adam(model.parameters(), lr=3e-2)
    losses = []
    for _ in range(25):
        loss = task.loss(model(batch.inputs, cond=batch.cond), batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.6 * losses[0]


# --- denoise -------------------------------------------------------------------------------
def test_denoise_mixes_image_and_unit_noise():
    task = build_task("denoise")
    assert task.model_options(3) == {"in_channels": 3, "out_channels": 3, "cond": True, "upscale": 1}
    x = images(n=64, size=32)
    batch = task.make_batch(x, gen(0))
    assert torch.allclose(batch.targets, 2 * x - 1)  # default range [-1, 1]
    t = batch.cond
    assert t.shape == (64,) and bool((t >= 0).all() and (t <= 1).all()) and t.std() > 0.2
    keep = t < 0.9
    tb = t[keep][:, None, None, None]
    z = (batch.inputs[keep] - tb * batch.targets[keep]) / (1 - tb)
    assert abs(z.mean().item()) < 0.02 and z.std().item() == pytest.approx(1.0, abs=0.02)


def test_denoise_options():
    x = images()
    assert torch.equal(build_task("denoise", {"image_range": "unit"}).make_batch(x, gen(0)).targets, x)
    fixed = build_task("denoise", {"t_min": 0.25, "t_max": 0.25}).make_batch(x, gen(0))
    assert torch.allclose(fixed.cond, torch.full((6,), 0.25))
    with pytest.raises(ValueError, match="symmetric"):
        build_task("denoise", {"image_range": "0-255"})
    with pytest.raises(ValueError):
        build_task("denoise", {"t_min": 0.8, "t_max": 0.2})


# --- superres ------------------------------------------------------------------------------
def test_superres_degradation():
    task = build_task("superres", {"sigma": 0.0, "clamp_lr": False})
    assert task.min_divisor() == 2 and task.model_options(3)["upscale"] == 2 and task.headline_metric == "val_ssim"
    x = images(size=16)
    batch = task.make_batch(x, gen(0))
    expected = F.interpolate(x, size=(8, 8), mode="bicubic", antialias=True, align_corners=False)
    assert torch.allclose(batch.inputs, expected) and torch.equal(batch.targets, x)
    noisy = build_task("superres", {"sigma": 0.1}).make_batch(x, gen(0))
    assert (noisy.inputs - expected.clamp(0, 1)).std().item() == pytest.approx(0.1, rel=0.15)
    with pytest.raises(ValueError, match="divisible"):
        task.make_batch(images(size=15), gen(0))


def test_ssim_window_adapts_to_small_images():
    assert ssim_window(64, 64) == ssim_window(16, 16) == 1.5  # the standard window from 11 px up
    assert ssim_window(8, 8) == pytest.approx(0.9)  # 7 taps on a level-3 8-px image
    assert ssim_window(4, 4) == pytest.approx(0.3)
    with pytest.raises(ValueError, match="3x3"):
        ssim_window(2, 2)
    for size in (4, 8, 16):
        x = images(n=3, size=size)
        y = (x + 0.05 * torch.randn(x.shape, generator=gen(1))).clamp(0, 1)
        same, near, far = ssim_per_image(x, x), ssim_per_image(y, x), ssim_per_image(images(n=3, size=size, seed=9), x)
        assert torch.allclose(same, torch.ones(3), atol=1e-5)
        assert torch.all(near < 1) and torch.all(near > 0.9)
        assert torch.all(torch.isfinite(far)) and torch.all(far < 0.5)


def test_superres_metrics_on_perfect_prediction():
    task = build_task("superres")

    class Oracle(nn.Module):
        def __init__(self, hr):
            super().__init__()
            self.hr = hr

        def forward(self, x, cond=None):
            return self.hr[: x.shape[0]]

    x = images(n=4, size=16)
    metrics = task.evaluate(Oracle(x), task.make_batch(x, gen(0)), chunk=4)
    assert metrics["val_ssim"] == pytest.approx(1.0, abs=1e-5) and metrics["val_loss"] == pytest.approx(0.0, abs=1e-5)
    assert metrics["val_psnr"] > 60


# --- blur ----------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["gaussian", "uniform"])
def test_blur_kernel_is_positive_normalised_and_seeded(kind):
    k = random_blur_kernel(7, kind, gen(0))
    assert k.shape == (7, 7) and bool((k > 0).all()) and k.sum().item() == pytest.approx(1.0)
    assert torch.equal(k, random_blur_kernel(7, kind, gen(0)))
    assert not torch.equal(k, random_blur_kernel(7, kind, gen(1)))
    assert torch.equal(build_task("blur", {"kernel_seed": 3, "kernel": kind}).kernel,
                       build_task("blur", {"kernel_seed": 3, "kernel": kind}).kernel)
    with pytest.raises(ValueError, match="gaussian"):
        build_task("blur", {"kernel": "box"})


def test_blur_is_periodic_cross_correlation():
    task = build_task("blur", {"sigma": 0.0})
    x = images(n=1, c=2, size=12)
    y = task.make_batch(x, gen(0)).targets
    k = task.kernel
    # pixel (0, 0) wraps around both edges
    rows, cols = torch.arange(-3, 4) % 12, torch.arange(-3, 4) % 12
    expected = (x[0, 1][rows][:, cols] * k).sum()
    assert y[0, 1, 0, 0].item() == pytest.approx(expected.item(), rel=1e-5)


def test_blur_kernel_error_is_model_independent():
    task = build_task("blur", {"sigma": 0.0})
    batch = task.make_batch(images(n=2, c=2, size=16), gen(0))
    exact = nn.Conv2d(2, 2, 7, padding=3, padding_mode="circular", bias=True)
    with torch.no_grad():
        exact.weight.zero_()
        exact.weight[0, 0] = exact.weight[1, 1] = task.kernel
        exact.bias.fill_(0.3)  # a bias does not count as operator error

    class Wrap(nn.Module):
        def __init__(self, conv):
            super().__init__()
            self.conv = conv

        def forward(self, x, cond=None):
            return self.conv(x)

    metrics = task.evaluate(Wrap(exact), batch)
    assert metrics["val_kernel_error"] < 1e-5
    zero = nn.Conv2d(2, 2, 1)
    nn.init.zeros_(zero.weight)
    assert task.evaluate(Wrap(zero), batch)["val_kernel_error"] == pytest.approx(1.0)
    assert build_task("blur", {"kernel_error": False}).evaluate(Wrap(exact), batch).keys() == {"val_loss", "val_mse"}
