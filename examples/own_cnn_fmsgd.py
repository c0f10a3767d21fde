"""Your own CNN built from mesh-free convolutions, trained with Full-Multiscale-SGD on your own tensors.

    python examples/own_cnn_fmsgd.py            # 64x64 images, 700 steps each way: 4 min 29 s
    python examples/own_cnn_fmsgd.py --tiny     # 16x16 images, a few steps (seconds; the test suite's run)

Times measured on a shared 2-core machine (CPU). It prints as it goes: `fit`'s progress on stderr (a
bar in a terminal, else a line per phase and every tenth of the run), then your own loop's phases.

Two ways, the same algorithm (Algorithm 2: coarse to fine, each level solved by Algorithm 1's
telescoping loss over the meshes at and below it):

1. `mfc.fit`: the harness's loop (lr schedule, validation on each level's mesh, early stopping,
   #WU, checkpoint/resume with `out_dir=`) on a model object and (input, target) tensors;
2. your own loop: `mfc.fmsgd_schedule` says which level, how many steps and which batch sizes,
   `mfc.multiscale_loss` gives the step's loss.
"""

from __future__ import annotations

import os
import sys

import torch
from torch import nn
from torch.nn import functional as F

import mfcbench as mfc


class MFCDenoiser(nn.Module):
    """A small residual CNN whose spatial layers are all mesh-free convolutions (pointwise mixing)."""

    def __init__(self, channels: int = 1, width: int = 16, image_size: int = 64):
        super().__init__()
        self.body = nn.Sequential(
            mfc.MeshFreeConv2d(channels, width, init_resolution=image_size), nn.GroupNorm(4, width), nn.SiLU(),
            mfc.MeshFreeConv2d(width, width, init_resolution=image_size), nn.GroupNorm(4, width), nn.SiLU(),
            mfc.MeshFreeConv2d(width, channels, init_resolution=image_size),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


def make_data(n: int, size: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Your own (noisy, clean) pairs: smooth random fields plus Gaussian noise of std 0.1."""
    coords = torch.arange(size) / size
    y, x = torch.meshgrid(coords, coords, indexing="ij")
    freq = torch.randint(1, 4, (n, 1, 2, 1, 1), generator=generator).float()
    phase = torch.rand(n, 1, 1, 1, generator=generator) * 6.28
    clean = 0.5 + 0.4 * torch.sin(6.28 * (freq[:, :, 0] * x + freq[:, :, 1] * y) + phase)
    return clean + 0.1 * torch.randn(clean.shape, generator=generator), clean


def with_fit(train, val, size: int, iterations: int) -> dict:
    """Full-Multiscale with the harness's loop."""
    torch.manual_seed(0)
    model = MFCDenoiser(image_size=size)
    model, result = mfc.fit(model, train, val, strategy="fmsgd", levels=3, iterations=iterations, batch_size=1,
                            lr=2e-3, val_every=max(1, iterations // 4))  # prints its progress on stderr
    return {"val_mse": result["metrics"]["val_loss"], "wu": result["wu_executed"], "steps": result["iterations"]}


def with_own_loop(train, val, size: int, iterations: int) -> dict:
    """Full-Multiscale in a plain loop: the schedule and the loss are the library's, the rest is yours."""
    torch.manual_seed(0)
    model = MFCDenoiser(image_size=size)
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
    counter = mfc.WorkCounter(size * size)
    gen = torch.Generator().manual_seed(2)
    steps = 0
    for level, level_steps, batch_sizes in mfc.fmsgd_schedule(levels=3, iterations=iterations, batch_size=1):
        print(f"  own loop: level {level}, {level_steps} steps, batches {batch_sizes} (finest first)", flush=True)
        for _ in range(level_steps):
            rows = torch.randint(0, len(train[0]), (sum(batch_sizes),), generator=gen)
            optimizer.zero_grad()
            with mfc.symbol_cache():  # a no-op for pointwise MFCs; builds full-mixing symbols once per step
                loss, _ = mfc.multiscale_loss(model, train[0][rows], train[1][rows], F.mse_loss, levels=3,
                                              first_level=level, batch_sizes=batch_sizes, counter=counter)
                loss.backward()
            optimizer.step()
            steps += 1
    with torch.no_grad():
        val_mse = float(F.mse_loss(model(val[0]), val[1]))
    return {"val_mse": val_mse, "wu": counter.value, "steps": steps}


def main(tiny: bool = False) -> dict:
    """Train both ways; returns their validation MSE, #WU and steps, and the noisy input's MSE."""
    size, iterations = (16, 2) if tiny else (64, 400)
    gen = torch.Generator().manual_seed(1)
    train, val = make_data(64, size, gen), make_data(16, size, gen)
    print(f"Full-Multiscale, 3 levels, {size}x{size}: with mfc.fit, then with your own loop", flush=True)
    result = {"noisy_mse": float(F.mse_loss(*val)), "fit": with_fit(train, val, size, iterations),
              "own_loop": with_own_loop(train, val, size, iterations)}
    print(f"Full-Multiscale, 3 levels, {size}x{size}: noisy input MSE {result['noisy_mse']:.4g}")
    for way in ("fit", "own_loop"):
        r = result[way]
        print(f"  {way:8s} val MSE {r['val_mse']:.4g} after {r['steps']} steps, {r['wu']:g} work units")
    return result


if __name__ == "__main__":
    main(tiny="--tiny" in sys.argv[1:] or os.environ.get("MFCBENCH_EXAMPLES_TINY") == "1")
