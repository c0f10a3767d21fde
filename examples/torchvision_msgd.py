"""A torchvision network converted to mesh-free convolutions and trained with Multiscale-SGD in a plain loop.

    python examples/torchvision_msgd.py            # 64x64 images, 300 steps: 1 min 31 s
    python examples/torchvision_msgd.py --tiny     # 16x16 images, a few steps (seconds; the test suite's run)

Times measured on a shared 2-core machine (CPU); it prints a line every tenth of the steps.

The network is torchvision's ResNet-18 trunk (stem, layer1, layer2) with a 1x1 head, resized back to
the input mesh, as a denoiser. Two changes make it fit for multiscale training, and `to_mfc` warns
about both when they are missing: GroupNorm instead of BatchNorm (batch statistics would differ
between the fine and the coarse term of a step) and average instead of max pooling (a pixel window
is not a mesh-free operator). Data are your own tensors; the loop is yours: `mfc.multiscale_loss`
only replaces the loss line.
"""

from __future__ import annotations

import os
import sys

import torch
from torch import nn
from torch.nn import functional as F

import mfcbench as mfc


class DenseResNet(nn.Module):
    """ResNet-18's stem, layer1 and layer2 (stride 8) with a 1x1 head, resized to the input mesh."""

    def __init__(self, channels: int = 3):
        super().__init__()
        import torchvision

        trunk = torchvision.models.resnet18(weights=None, norm_layer=lambda c: nn.GroupNorm(8, c))
        trunk.maxpool = nn.AvgPool2d(2)  # max pooling is not mesh-free: to_mfc would warn
        self.body = nn.Sequential(trunk.conv1, trunk.bn1, trunk.relu, trunk.maxpool, trunk.layer1, trunk.layer2)
        self.head = nn.Conv2d(128, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.head(self.body(x))
        return x + F.interpolate(features, size=x.shape[-2:], mode="bilinear", align_corners=False)


def build(image_size: int) -> nn.Module:
    """The converted network: every spatial conv becomes a pointwise-mixing MFC (the public default)."""
    torch.manual_seed(0)
    return mfc.to_mfc(DenseResNet(), init_resolution=image_size)


def smooth_images(n: int, size: int, generator: torch.Generator) -> torch.Tensor:
    """Your own data stand-in: random smooth colour fields in [0, 1] (a few low-frequency waves)."""
    coords = torch.arange(size) / size
    y, x = torch.meshgrid(coords, coords, indexing="ij")
    freq = torch.randint(1, 4, (n, 3, 2, 1, 1), generator=generator).float()
    phase = torch.rand(n, 3, 1, 1, generator=generator) * 6.28
    images = torch.sin(6.28 * (freq[:, :, 0] * x + freq[:, :, 1] * y) + phase)
    return 0.5 + 0.4 * images


def main(tiny: bool = False) -> dict:
    """Train with Multiscale-SGD (3 levels) and return the validation MSE before and after, and the #WU."""
    size, steps, batch = (16, 3, 7) if tiny else (64, 300, 14)
    levels = 3
    gen = torch.Generator().manual_seed(1)
    clean = smooth_images(8 * batch, size, gen)
    noisy = clean + 0.1 * torch.randn(clean.shape, generator=gen)
    val_clean = smooth_images(16, size, gen)
    val_noisy = val_clean + 0.1 * torch.randn(val_clean.shape, generator=gen)

    print(f"Multiscale-SGD on a converted ResNet-18 trunk ({size}x{size}, {levels} levels), {steps} steps", flush=True)
    model = build(size)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    counter = mfc.WorkCounter(size * size)  # one work unit = one size x size image through the model
    with torch.no_grad():
        before = float(F.mse_loss(model(val_noisy), val_clean))
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(noisy, clean), batch_size=batch,
                                         shuffle=True, drop_last=True, generator=gen)
    step = 0
    while step < steps:
        for x, y in loader:
            optimizer.zero_grad()
            # Algorithm 1: the batch of 7 is split 1 / 2 / 4 over levels 0 / 1 / 2 (mfc.split_batch)
            loss, wu = mfc.multiscale_loss(model, x, y, F.mse_loss, levels=levels, counter=counter)
            loss.backward()
            optimizer.step()
            step += 1
            if step % max(1, steps // 10) == 0:
                print(f"  step {step}/{steps}: loss {float(loss.detach()):.4g}, {counter.value:g} work units", flush=True)
            if step == steps:
                break
    with torch.no_grad():
        after = float(F.mse_loss(model(val_noisy), val_clean))
    result = {"val_mse_before": before, "val_mse_after": after, "steps": steps, "wu_executed": counter.value}
    print(f"Multiscale-SGD on a converted ResNet-18 trunk ({size}x{size}, {levels} levels): "
          f"val MSE {before:.4g} -> {after:.4g} in {steps} steps, {counter.value:g} work units")
    return result


if __name__ == "__main__":
    main(tiny="--tiny" in sys.argv[1:] or os.environ.get("MFCBENCH_EXAMPLES_TINY") == "1")
