"""Restriction operators R_h^{2^j h}: how a fine image becomes its coarse copy (paper Alg. 1 'Pool').

- pool: average pooling over 2^j x 2^j blocks (default; the paper's "Pool").
- bilinear: antialiased bilinear resize (torch's antialias=True).
- nearest: injection x[..., ::2^j, ::2^j] (what the authors' public code does).
Inputs and targets are restricted alike.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

from .registry import Registry

RESTRICTIONS: Registry = Registry("restriction")


@RESTRICTIONS.register("pool")
def pool(x: torch.Tensor, factor: int) -> torch.Tensor:
    return x if factor == 1 else F.avg_pool2d(x, factor)


@RESTRICTIONS.register("bilinear")
def bilinear(x: torch.Tensor, factor: int) -> torch.Tensor:
    if factor == 1:
        return x
    size = (x.shape[-2] // factor, x.shape[-1] // factor)
    return F.interpolate(x, size=size, mode="bilinear", antialias=True, align_corners=False)


@RESTRICTIONS.register("nearest")
def nearest(x: torch.Tensor, factor: int) -> torch.Tensor:
    return x if factor == 1 else x[..., ::factor, ::factor].contiguous()


def restrict(x: torch.Tensor | None, level: int, method: str = "pool") -> torch.Tensor | None:
    """Restrict a (B, C, H, W) tensor x from the finest mesh to level `level` (factor 2**level) with
    `method` ("pool", "bilinear" or "nearest"; RESTRICTIONS lists them).

    None passes through (e.g. an absent conditioning tensor); so do non-spatial tensors (dim < 3).
    Raises ValueError for a negative level or one that would leave less than one pixel.
    """
    if x is None or level == 0 or x.dim() < 3:
        return x
    height, width = x.shape[-2], x.shape[-1]
    if level < 0 or min(height, width) >> level < 1:
        deepest = max(0, min(height, width).bit_length() - 1)
        if level < 0:
            raise ValueError(f"restrict: level must be in 0..{deepest} for a {height}x{width} mesh, got {level}")
        raise ValueError(f"restrict: level {level} would make a {height}x{width} mesh smaller than one pixel "
                         f"(at most level {deepest})")
    return RESTRICTIONS.get(method)(x, 2**level)
