"""Strategies and work units: schedules, the telescoping loss, restriction, and #WU both ways."""

from __future__ import annotations

import inspect
from fractions import Fraction

import pytest
import torch
from _tasks import NoisyDenoise
from torch import nn
from torch.nn import functional as F

from mfcbench.core.restrict import restrict
from mfcbench.core.workunits import WorkCounter
from mfcbench.strategies import build_strategy
from mfcbench.strategies.base import Draw, Phase
from mfcbench.train.config import resolve


# --- tiny in-test model, task and sampler --------------------------------------------------------
class SpyNet(nn.Module):
    """A conv net that records every input shape and cond it sees."""

    size_divisor, upscale = 1, 1

    def __init__(self, channels: int = 1):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)
        self.scale = nn.Parameter(torch.tensor(0.5))
        self.seen: list[tuple[tuple[int, ...], torch.Tensor | None]] = []

    def forward(self, x, cond=None):
        self.seen.append((tuple(x.shape), cond))
        out = self.conv(x)
        return out if cond is None else out + self.scale * cond.view(-1, 1, 1, 1)


NoisyTask = NoisyDenoise  # noise 0.1


class ListSampler:
    """Serves images from a fixed pool in order, so a test can replay the exact draws."""

    def __init__(self, images, task, seed=0):
        self.pool, self.task, self.pos, self.seed = images, task, 0, seed
        self.gens: dict[str, torch.Generator] = {}

    def generator(self, purpose):
        return self.gens.setdefault(purpose, torch.Generator().manual_seed(self.seed))

    def images(self, n):
        idx = torch.arange(self.pos, self.pos + n) % len(self.pool)
        self.pos += n
        return self.pool[idx]

    def batch(self, images):
        return self.task.make_batch(images, self.generator("noise"))


def cfg(**kw):
    """The runner's validated defaults on App. C's shape: 4 levels, N0 = 1, I = 8/4/2/1."""
    return resolve({"levels": 4, "batch_size": 1, "iterations": [8, 4, 2, 1], "image_size": 16, **kw})


# --- schedules -----------------------------------------------------------------------------------
def test_msgd_draws_are_the_telescoping_terms():
    (phase,) = build_strategy("msgd", cfg(batch_size=2)).phases()
    assert phase.iterations == 15 and phase.level == 0
    assert phase.draws == (Draw(2, (0, 1)), Draw(4, (1, 2)), Draw(8, (2, 3)), Draw(16, (3,)))
    explicit = build_strategy("msgd", cfg(level_batches=[3, 3, 5, 7])).phases()[0]
    assert [d.batch for d in explicit.draws] == [3, 3, 5, 7]


def test_sgd_batch_is_matched_or_explicit():
    assert build_strategy("sgd", cfg(batch_size=4)).phases()[0].draws == (Draw(60, (0,)),)
    assert build_strategy("sgd", cfg(sgd_batch=7)).phases()[0].draws == (Draw(7, (0,)),)


def test_fmsgd_phases_go_coarse_to_fine_with_growing_batches():
    phases = build_strategy("fmsgd", cfg(batch_size=1)).phases()
    assert [(p.level, p.iterations) for p in phases] == [(3, 8), (2, 4), (1, 2), (0, 1)]
    assert phases[0].draws == (Draw(8, (3,)),)
    assert phases[1].draws == (Draw(4, (2, 3)), Draw(8, (3,)))
    assert phases[3].draws == (Draw(1, (0, 1)), Draw(2, (1, 2)), Draw(4, (2, 3)), Draw(8, (3,)))
    assert build_strategy("fmsgd", cfg(optimizer_state="reset")).reset_optimizer
    assert not build_strategy("fmsgd", cfg()).reset_optimizer


def test_progressive_is_plain_sgd_on_fmsgd_schedule():
    phases = build_strategy("progressive", cfg(batch_size=1)).phases()
    assert [(p.level, p.iterations) for p in phases] == [(3, 8), (2, 4), (1, 2), (0, 1)]
    assert [p.draws for p in phases] == [(Draw(8, (3,)),), (Draw(12, (2,)),), (Draw(14, (1,)),), (Draw(15, (0,)),)]


def test_zero_iteration_phases_are_skipped():
    phases = build_strategy("fmsgd", cfg(iterations=[0, 3, 0, 2])).phases()
    assert [(p.level, p.iterations) for p in phases] == [(2, 3), (0, 2)]


# --- the step ------------------------------------------------------------------------------------
def test_msgd_loss_is_algorithm_1_and_restricts_inputs_and_targets_alike():
    torch.manual_seed(0)
    task, model = NoisyTask({}), SpyNet()
    pool = torch.rand(40, 1, 16, 16)
    (phase,) = build_strategy("msgd", cfg(batch_size=1)).phases()
    strategy = build_strategy("msgd", cfg(batch_size=1))
    loss = strategy.loss(model, task, phase, ListSampler(pool, task), WorkCounter(16 * 16))

    replay, expected = ListSampler(pool, task), 0.0
    for n, (fine, coarse) in ((1, (0, 1)), (2, (1, 2)), (4, (2, 3))):
        b = replay.batch(replay.images(n))
        for sign, lvl in ((1, fine), (-1, coarse)):
            x, y = restrict(b.inputs, lvl, "pool"), restrict(b.targets, lvl, "pool")
            expected += sign * F.mse_loss(model.conv(x) + model.scale * b.cond.view(-1, 1, 1, 1), y)
    b = replay.batch(replay.images(8))
    expected += F.mse_loss(model.conv(restrict(b.inputs, 3)) + model.scale * b.cond.view(-1, 1, 1, 1),
                           restrict(b.targets, 3))
    torch.testing.assert_close(loss, expected)
    shapes = [s for s, _ in model.seen]  # one call per mesh: draw j's coarse part beside draw j+1's fine part
    assert shapes == [(1, 1, 16, 16), (3, 1, 8, 8), (6, 1, 4, 4), (12, 1, 2, 2)]
    assert all(c is not None and c.shape == (s[0],) for s, c in model.seen)  # cond passes through


def test_fine_and_coarse_terms_share_images():
    task, model = NoisyTask({}), SpyNet()
    strategy = build_strategy("msgd", cfg(levels=2, iterations=[1, 1], batch_size=2, restriction="nearest"))
    (phase,) = strategy.phases()
    seen_inputs = []
    model.register_forward_hook(lambda m, args, out: seen_inputs.append(args[0]))
    strategy.loss(model, task, phase, ListSampler(torch.rand(10, 1, 8, 8), task), WorkCounter(64))
    assert len(seen_inputs) == 2  # two meshes, two calls
    torch.testing.assert_close(seen_inputs[1][:2], seen_inputs[0][..., ::2, ::2])  # same images, coarser mesh
    assert not torch.equal(seen_inputs[1][2:], seen_inputs[1][:2])  # the coarsest term draws its own batch


SR_MODELS = {"espcn", "mfc_espcn", "fno_espcn", "srresnet", "mfc_srresnet"}


def real_model_and_task(name: str):
    """A registered model, tiny, in float64 with dropout off, and the task it trains on."""
    from mfcbench.models import MODELS, build_model
    from mfcbench.tasks import build_task

    task = build_task("superres" if name in SR_MODELS else "blur" if name.startswith("blur") else "denoise", {})
    params = inspect.signature(MODELS.get(name)).parameters
    options = {"width": 0.125} if "width" in params else {}
    options.update({"modes": 4} if name == "fno_espcn" else {"init_resolution": 16} if "init_resolution" in params else {})
    torch.manual_seed(0)
    model = build_model(name, **{**task.model_options(1 if name.startswith("blur") else 3), **options}).double()
    for param in model.parameters():
        if param.is_complex():  # .double() converts real parameters only (FNO's spectral weights are complex)
            param.data = param.data.to(torch.complex128)
    for module in model.modules():
        if isinstance(module, nn.Dropout):
            module.p = 0.0  # dropout masks come from the global stream, in another order when batched
    return model, task


def step_gradient(strategy, model, task, pool):
    from mfcbench.layers import symbol_cache

    model.zero_grad(set_to_none=True)
    with symbol_cache():
        loss = strategy.loss(model, task, strategy.phases()[0], ListSampler(pool, task), WorkCounter(16 * 16))
        loss.backward()
    grads = torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])
    return loss.detach(), grads


@pytest.mark.parametrize("name", sorted(__import__("mfcbench.models", fromlist=["model_names"]).model_names()))
def test_one_call_per_mesh_is_exact_on_every_registered_model(name):
    """float64: the batched step's loss and gradient equal the draw-by-draw telescoping sum to 1e-10."""
    model, task = real_model_and_task(name)
    strategy = build_strategy("msgd", cfg(levels=3, batch_size=1, iterations=[0, 0, 1]))
    pool = torch.rand(12, 1 if name.startswith("blur") else 3, 16, 16, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    calls = []
    model.register_forward_pre_hook(lambda m, args: calls.append(args[0].shape))
    loss, grad = step_gradient(strategy, model, task, pool)
    assert len(calls) == 3  # three meshes, three calls
    model.per_sample = False  # draw by draw: one call per part
    calls.clear()
    loss_ref, grad_ref = step_gradient(strategy, model, task, pool)
    assert len(calls) == 5
    assert abs(float(loss - loss_ref)) <= 1e-10 * max(abs(float(loss_ref)), 1e-30)
    assert float((grad - grad_ref).norm()) <= 1e-10 * float(grad_ref.norm())
    assert float(grad_ref.norm()) > 0


def test_a_four_level_step_calls_the_model_once_per_mesh():
    task, model = NoisyTask({}), SpyNet()
    strategy = build_strategy("msgd", cfg(batch_size=2))
    counter = WorkCounter(16 * 16)
    strategy.loss(model, task, strategy.phases()[0], ListSampler(torch.rand(40, 1, 16, 16), task), counter)
    assert len(model.seen) == 4
    assert counter.total == strategy.phases()[0].wu_per_iteration  # the counter still counts every part


def test_batch_statistics_fall_back_to_draw_by_draw():
    from mfcbench.strategies.base import per_sample_model

    task, model = NoisyTask({}), SpyNet()
    model.norm = nn.BatchNorm2d(1)
    assert not per_sample_model(model) and per_sample_model(nn.GroupNorm(1, 1))
    strategy = build_strategy("msgd", cfg(batch_size=2))
    strategy.loss(model, task, strategy.phases()[0], ListSampler(torch.rand(40, 1, 16, 16), task), WorkCounter(256))
    assert len(model.seen) == 7
    model.eval()  # running statistics: per-sample again
    assert per_sample_model(model)


def test_crops_resize_clean_images_reproducibly():
    task = NoisyTask({})
    images = torch.rand(6, 1, 16, 16)
    small = build_strategy("crops", cfg(crop_size=8, crop_scale=[0.25, 0.5]))
    out1 = small.prepare_images(images, ListSampler(images, task, seed=3))
    out2 = small.prepare_images(images, ListSampler(images, task, seed=3))
    assert out1.shape == (6, 1, 8, 8) and torch.equal(out1, out2)
    assert not torch.equal(out1, small.prepare_images(images, ListSampler(images, task, seed=4)))
    assert small.phases()[0].wu_per_iteration == Fraction(15, 4)  # matched 15 images at 1/4 the pixels
    full = build_strategy("crops", cfg())
    assert full.prepare_images(images, ListSampler(images, task)).shape == images.shape


def test_bad_schedules_fail_clearly():
    with pytest.raises(ValueError, match="valid choices"):
        build_strategy("nope", cfg())
    with pytest.raises(ValueError, match="4 levels"):
        build_strategy("msgd", {**cfg(), "iterations": [1, 2]})  # past config validation: the strategy checks too
    assert isinstance(Phase(0, 1, ()).wu_per_iteration, Fraction)
