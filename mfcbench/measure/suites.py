"""The rows of each measured table: Table 11 (FLOPs), FLOPs per model, Figure 7 and Table 15 (time).

Every function returns tidy rows (list of dicts, one measurement per row); `write_rows` writes
them atomically with the csv module, so nothing here needs pandas. FLOP tables import fvcore
lazily; timing tables need only torch. Published values are never written here.
"""

from __future__ import annotations

import csv
import math
from typing import Callable, Iterable

import torch
from torch import nn

from ..core.atomic import atomic_path
from ..layers.mfc import MeshFreeConv2d
from ..strategies.base import telescoping_draws
from .timing import device_available, environment, measure, not_measured

TABLE11_SIZES = (32, 64, 128, 256)
TABLE11_KERNELS = (5, 7, 9, 11, 13, 15)
MIXINGS = ("pointwise", "full")
FIG7_KERNELS = (3, 5, 7, 9, 13)
FIG7_SIZES = (32, 64, 128, 256, 512)
FIG7_CHANNELS = (3, 32)
FIG7_TAU = 0.1
# Table 15: Multiscale-SGD with 4 levels, (images, level) per telescoping term: 2^l images at
# level l paired with the same images at level l+1; the coarsest level stands alone.
MSGD_LEVELS = 4
SGD_IMAGES = 15


def write_rows(path, rows: list[dict]) -> None:
    """Write rows as CSV atomically; the header is the union of keys in first-seen order."""
    header: list[str] = []
    for row in rows:
        header.extend(k for k in row if k not in header)
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=header)
        writer.writeheader()
        writer.writerows(rows)


# ---------------------------------------------------------------------------------------------
# FLOPs
def table11_rows(sizes: Iterable[int] = TABLE11_SIZES, kernels: Iterable[int] = TABLE11_KERNELS, channels: int = 32):
    """Conv2d(C, C, k, same padding) beside the MFC C->C in both mixing modes, batch 1, per (n, k)."""
    from .flops import count_flops

    rows = []
    for n in sizes:
        x = torch.randn(1, channels, n, n)
        mfc = {mix: count_flops(MeshFreeConv2d(channels, channels, mixing=mix), (x,), strict=True) for mix in MIXINGS}
        for k in kernels:
            conv = count_flops(nn.Conv2d(channels, channels, k, padding=k // 2), (x,), strict=True)
            rows.append(_flop_row(n, k, "conv2d", channels, conv.total))
            for mix in MIXINGS:
                rows.append(_flop_row(n, k, f"mfc_{mix}", channels, mfc[mix].total))
    return rows


def _flop_row(n: int, k: int, op: str, channels: int, flops: int) -> dict:
    return {"table": "table11", "n": n, "k": k, "op": op, "channels_in": channels, "channels_out": channels,
            "batch": 1, "flops": flops, "unit": "MAC"}


def model_resolution(name: str, model: nn.Module) -> int:
    """Input side for a model's FLOP count: 64 (denoising tables), 32 for x2 SR models (LR input)."""
    return 32 if getattr(model, "upscale", 1) > 1 else 64


def flops_models_rows(names: Iterable[str] | None = None, in_channels: int = 3) -> list[dict]:
    """FLOPs and parameter count of every registered model at its table's resolution."""
    from ..models import build_model, model_names
    from .flops import count_flops

    rows = []
    for name in names if names is not None else model_names():
        model = build_model(name, in_channels, in_channels)
        n = model_resolution(name, model)
        result = count_flops(model, (torch.randn(1, in_channels, n, n),))
        rows.append({
            "table": "flops_models", "model": name, "n": n, "batch": 1, "in_channels": in_channels,
            "params": sum(p.numel() for p in model.parameters()), "flops": result.total, "unit": "MAC",
            "uncounted_ops": ";".join(f"{k}x{v}" for k, v in sorted(result.unsupported.items())),
        })
    return rows


# ---------------------------------------------------------------------------------------------
# Figure 7: one layer, forward, batch 1
def fig7_mfc(channels: int, tau: float = FIG7_TAU) -> MeshFreeConv2d:
    """The MFC of Figure 7 with every channel's tau set to `tau` in our units (unit square,
    k = 2 pi m). The paper's tau unit is not stated; the work (and so the time) of an MFC does not
    depend on tau, only the symbol's values do."""
    layer = MeshFreeConv2d(channels, channels, mixing="pointwise")
    with torch.no_grad():
        layer.log_tau.fill_(math.log(tau))
    return layer


def fig7_rows(device: str = "cpu", threads: int = 2, quick: bool = False, sizes: Iterable[int] | None = None,
              kernels: Iterable[int] | None = None, channel_counts: Iterable[int] = FIG7_CHANNELS) -> list[dict]:
    """Forward time, batch 1, of each Conv2d kernel size and of the MFC, per (channels, n)."""
    sizes = sizes or (FIG7_SIZES[:3] if quick else FIG7_SIZES)
    kernels = kernels or (FIG7_KERNELS[:2] if quick else FIG7_KERNELS)
    min_run_time = 0.05 if quick else 0.5
    env = environment(device, threads)
    rows = []
    for channels in channel_counts:
        layers = [(f"conv{k}x{k}", k, lambda k=k, c=channels: nn.Conv2d(c, c, k, padding=k // 2)) for k in kernels]
        layers.append(("mfc_pointwise", "", lambda c=channels: fig7_mfc(c)))
        for n in sizes:
            for op, k, build in layers:
                row = {"figure": "fig7", "op": op, "k": k, "n": n, "channels": channels, "batch": 1,
                       "pass": "forward", "tau": FIG7_TAU if op.startswith("mfc") else ""}
                row.update(_time_forward(build, (1, channels, n, n), device, threads, min_run_time))
                row.update(env)
                rows.append(row)
    return rows


def _time_forward(build: Callable[[], nn.Module], shape, device: str, threads: int, min_run_time: float) -> dict:
    if not device_available(device):
        return not_measured(device)
    layer = build().to(device).eval()
    x = torch.randn(shape, device=device)

    def forward():
        with torch.no_grad():
            layer(x)

    return measure(forward, device=device, threads=threads, min_run_time=min_run_time)


# ---------------------------------------------------------------------------------------------
# Table 15: one training iteration, SGD (15 images) vs Multiscale-SGD (1/2/4/8 over 4 levels)
def msgd_plan(levels: int = MSGD_LEVELS) -> list[tuple[int, int, int | None]]:
    """(images, fine level, coarse level or None) per telescoping term: 1@l0+l1, 2@l1+l2, ...
    (the strategies' own Algorithm 1 draws with N_j = 2^j)."""
    draws = telescoping_draws([2**level for level in range(levels)], 0)
    return [(d.batch, d.levels[0], d.levels[1] if len(d.levels) > 1 else None) for d in draws]


def describe_plan(size: int, levels: int = MSGD_LEVELS) -> str:
    parts = []
    for images, fine, coarse in msgd_plan(levels):
        parts.append(f"{images}@{size >> fine}" + (f"+{size >> coarse}" if coarse is not None else ""))
    return ", ".join(parts)


TABLE15_TASK = "denoise"  # Table 15 times a denoising cell's step (Table 13's networks, conditioned on t)


def step_model(name: str, device: str = "cpu", channels: int = 3, **options) -> nn.Module:
    """`name` built as a Table 15 cell builds it (the task's in/out channels and cond), seeded, in train mode."""
    from ..models import build_model
    from ..tasks import build_task

    task = build_task(TABLE15_TASK, {}, seed=0)
    torch.manual_seed(0)
    return build_model(name, **{**task.model_options(channels), **options}).to(device).train()


def training_step(model: nn.Module, strategy: str, size: int, device: str, *, levels: int = MSGD_LEVELS,
                  channels: int = 3, seed: int = 0) -> Callable[[], None]:
    """A closure running one trained iteration of `strategy`: the runner's `optimizer_step` (zero_grad,
    `Strategy.loss` inside `symbol_cache`, backward, Adam step) on a `FixedSampler`, with N0 = 1 and
    batch growth 2 (msgd: 1@l0+l1, 2@l1+l2, 4@l2+l3, 8@l3, one model call per mesh; sgd: the matched
    15 images). The images are random: the time of an iteration does not depend on their content."""
    from ..core.workunits import WorkCounter
    from ..strategies import build_strategy
    from ..strategies.sampling import FixedSampler
    from ..tasks import build_task
    from ..train.config import defaults
    from ..train.runner import make_optimizer, optimizer_step

    if strategy not in ("sgd", "msgd"):
        raise ValueError(f"unknown strategy {strategy!r}; valid choices: sgd, msgd")
    # the defaults filled in without the jsonschema check: gpu-check runs this where jsonschema is absent
    cfg = {**defaults(), "image_size": size, "levels": levels, "batch_size": 1, "iterations": [0] * (levels - 1) + [1]}
    task, built = build_task(TABLE15_TASK, cfg["task_options"], seed=seed), build_strategy(strategy, cfg)
    (phase,) = built.phases()
    images = torch.rand(phase.images_per_iteration, channels, size, size, generator=torch.Generator().manual_seed(seed))
    sampler, counter = FixedSampler(images, task, device, seed), WorkCounter(size * size)
    optimizer = make_optimizer(model.parameters(), cfg)  # Adam, lr 5e-4 (Table 13)

    def step() -> None:
        optimizer_step(model, optimizer, built, task, phase, sampler=sampler, counter=counter)

    return step


def table15_rows(models: Iterable[str] = ("resnet", "mfc_resnet"), devices: Iterable[str] = ("cpu", "cuda"),
                 size: int = 256, threads: int = 2, quick: bool = False) -> list[dict]:
    """ms per training iteration of SGD (15 images) and Multiscale-SGD (4 levels), per model and device."""
    from ..models import model_names

    registered = model_names()
    size = 64 if quick else size
    rows = []
    for device in devices:
        env = environment(device, threads)
        for name in models:
            for strategy, images in (("sgd", f"{SGD_IMAGES}@{size}"), ("msgd", describe_plan(size))):
                row = {"table": "table15", "model": name, "strategy": strategy, "images": images, "size": size,
                       "optimizer": "adam", "pass": "forward+backward+step"}
                if name not in registered:
                    row.update({"median_ms": "", "iqr_ms": "", "runs": 0,
                                "status": f"not measured: model {name!r} is not registered"})
                elif not device_available(device):
                    row.update(not_measured(device))
                else:
                    row.update(time_training_step(name, strategy, size, device, threads, quick))
                row.update(env)
                rows.append(row)
    return rows


def time_training_step(name: str, strategy: str, size: int, device: str, threads: int, quick: bool) -> dict:
    model = step_model(name, device)
    step = training_step(model, strategy, size, device)
    return measure(step, device=device, threads=threads, min_run_time=0.2 if quick else 2.0,
                   warmup=1 if quick else 2, cuda_repeats=10 if quick else 50)
