"""Pieces shared by the model zoo: noise-level embeddings, width scaling, normalisation choices."""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F


def scaled(channels: int, width: float) -> int:
    """Channel count scaled by the `width` option (>= 1), so a tiny CPU profile can shrink a model."""
    if width <= 0:
        raise ValueError(f"width must be > 0, got {width}")
    return max(1, int(round(channels * width)))


def group_norm(channels: int, groups: int = 16) -> nn.GroupNorm:
    """GroupNorm with `groups` groups, or fewer when a scaled-down width has fewer channels.

    Every group keeps >= 2 channels (when channels >= 2), so a 1x1 coarsest level still normalises.
    """
    g = math.gcd(groups, channels)
    while g > 1 and channels // g < 2:
        g = math.gcd(g // 2, channels)
    return nn.GroupNorm(g, channels)


def sinusoidal(t: torch.Tensor, dim: int, scale: float = 1000.0, max_period: float = 10000.0) -> torch.Tensor:
    """Fixed sin/cos features of the noise level t (B,) -> (B, dim).

    t in [0, 1] is multiplied by `scale` first so the low frequencies are not all ~linear in t.
    """
    half = dim // 2
    dtype = t.dtype if t.dtype == torch.float64 else torch.float32  # float64 models (exactness tests) stay float64
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device, dtype=dtype) / half)
    args = (t.to(dtype) * scale)[:, None] * freqs[None]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    if dim % 2:
        emb = F.pad(emb, (0, 1))
    return emb


class MLPEmbedding(nn.Module):
    """Guided-diffusion style embedding: sinusoidal(base) -> Linear -> SiLU -> Linear (to `dim`)."""

    def __init__(self, base: int, dim: int):
        super().__init__()
        self.base = base
        self.net = nn.Sequential(nn.Linear(base, dim), nn.SiLU(), nn.Linear(dim, dim))

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        return self.net(sinusoidal(t, self.base))


class HybridEmbedding(nn.Module):
    """Half fixed sin/cos features, half a small trainable MLP of t (1 -> hidden -> hidden -> rest).

    This is the per-block embedding of the Table 13 ResNet (3,232 parameters at dim=128, hidden=32).
    """

    def __init__(self, dim: int, hidden: int = 32):
        super().__init__()
        self.fixed = dim // 2
        self.mlp = nn.Sequential(
            nn.Linear(1, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, dim - self.fixed)
        )

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        learned = self.mlp(t.to(torch.float64 if t.dtype == torch.float64 else torch.float32)[:, None])
        return torch.cat([sinusoidal(t, self.fixed), learned], dim=-1)


def check_cond(model: nn.Module, x: torch.Tensor, cond: torch.Tensor | None) -> torch.Tensor | None:
    """Validate `cond` for a model built with cond=True; return None for an unconditioned model."""
    if not getattr(model, "conditioned", False):
        return None
    if cond is None:
        raise ValueError(f"{type(model).__name__} was built with cond=True: pass cond, a (B,) tensor")
    cond = cond.reshape(-1)
    if cond.numel() == 1 and x.shape[0] != 1:
        cond = cond.expand(x.shape[0])
    if cond.shape[0] != x.shape[0]:
        raise ValueError(f"cond has {cond.shape[0]} entries for a batch of {x.shape[0]}")
    return cond


def reject_cond(name: str, cond: bool) -> None:
    """Models with no noise-level input refuse cond=True instead of silently ignoring it."""
    if cond:
        raise ValueError(f"model {name!r} takes no condition; build it with cond=False")


class Upsampled(nn.Module):
    """Super-resolution with an image-to-image network: bilinear x`upscale`, then net + residual.

    Lets the denoising architectures (resnet, unet, ...) serve the SR task (Table 5's ResNet) the way
    the authors' SR code does: the net refines a bilinear upsampling of the low-resolution input.
    """

    def __init__(self, net: nn.Module, upscale: int):
        super().__init__()
        self.net, self.upscale = net, upscale
        self.size_divisor = max(1, net.size_divisor // upscale)

    def forward(self, x, cond=None):
        up = F.interpolate(x, scale_factor=self.upscale, mode="bilinear", align_corners=False)
        out = self.net(up, cond)
        return out + up if out.shape == up.shape else out


def with_upscale(net: nn.Module, upscale: int) -> nn.Module:
    """`net` itself for upscale=1, else the net wrapped for super-resolution."""
    if not isinstance(upscale, int) or upscale < 1:
        raise ValueError(f"upscale must be a positive int, got {upscale!r}")
    return net if upscale == 1 else Upsampled(net, upscale)
