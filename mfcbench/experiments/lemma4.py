"""Lemma 4 (App. B.3): on a fixed mesh, a linear combination of m >= k^2 MFC filters fits a k x k
convolution. We solve the least-squares problem of Eq. 37 on impulse responses and report the
relative residual ||K - sum_i c_i e_i|| / ||K|| (over the whole periodic mesh).

Basis: for every tau in `widths` (Gaussian std in pixels, tau = (w h)^2 / 2 with h = 1/size:
"small tau") and every alpha of the family, three filters with gamma = (1, 0, 0), (0, h, 0),
(0, 0, h) (the derivative weights scaled by the mesh spacing). Families:
- "axy": axx = ayy = 1 and `count` values of axy in [-0.9, 0.9] (the proof's construction);
- "alpha": axx, ayy in geomspace(0.5, 2, count) and axy = r sqrt(axx ayy), r in linspace(-0.5, 0.5,
  count) (count^3 elliptic alphas).
m = (number of alphas) * 3 * len(widths). The target is a 3x3 kernel with N(0, 1) entries.
"""

from __future__ import annotations

import math
from typing import Iterable

import torch
from torch.nn import functional as F

from ..layers import mesh_free_filter


def _axy_family(count: int) -> list[tuple[float, float, float]]:
    return [(1.0, axy, 1.0) for axy in torch.linspace(-0.9, 0.9, count).tolist()]


def _alpha_family(count: int) -> list[tuple[float, float, float]]:
    diagonal = torch.logspace(math.log10(0.5), math.log10(2.0), count).tolist() if count > 1 else [1.0]
    tilts = torch.linspace(-0.5, 0.5, count).tolist() if count > 1 else [0.0]
    return [(axx, r * math.sqrt(axx * ayy), ayy) for axx in diagonal for ayy in diagonal for r in tilts]


FAMILIES = {"axy": _axy_family, "alpha": _alpha_family}

# (family, count, widths in px): m = 9, 54, 24, 81, 162.
DEFAULT_BASES = (
    ("axy", 3, (0.7,)),
    ("axy", 9, (0.5, 1.0)),
    ("alpha", 2, (0.7,)),
    ("alpha", 3, (0.7,)),
    ("alpha", 3, (0.5, 1.0)),
)


def mfc_basis(size: int, family: str, count: int, widths: Iterable[float]) -> torch.Tensor:
    """(m, size*size) impulse responses of the basis filters, float64."""
    if family not in FAMILIES:
        raise ValueError(f"unknown family {family!r}; valid choices: {', '.join(FAMILIES)}")
    h = 1.0 / size
    gammas = ((1.0, 0.0, 0.0), (0.0, h, 0.0), (0.0, 0.0, h))
    params = [((w * h) ** 2 / 2, alpha, gamma) for w in widths for alpha in FAMILIES[family](count) for gamma in gammas]
    tau = torch.tensor([p[0] for p in params], dtype=torch.float64)
    alpha = torch.tensor([p[1] for p in params], dtype=torch.float64)
    gamma = torch.tensor([p[2] for p in params], dtype=torch.float64)
    return mesh_free_filter(_delta(size, len(params)), tau, alpha, gamma).reshape(len(params), -1)


def conv_response(kernel: torch.Tensor, size: int) -> torch.Tensor:
    """Impulse response (size*size,) of a k x k convolution (conv2d convention, periodic)."""
    pad = kernel.shape[-1] // 2
    out = F.conv2d(F.pad(_delta(size, 1), (pad, pad, pad, pad), mode="circular"), kernel.view(1, 1, *kernel.shape))
    return out.reshape(-1)


def relative_residual(basis: torch.Tensor, target: torch.Tensor) -> float:
    """min_c ||target - c^T basis|| / ||target|| (Eq. 37)."""
    coefficients = torch.linalg.lstsq(basis.T, target[:, None]).solution
    return float(torch.linalg.vector_norm(basis.T @ coefficients - target[:, None]) / torch.linalg.vector_norm(target))


def lemma4_residuals(seeds: Iterable[int] = (0, 1, 2), bases=DEFAULT_BASES, size: int = 16, kernel_size: int = 3):
    """Tidy DataFrame: family, count, widths, m, seed, size, residual."""
    import pandas as pd

    if kernel_size % 2 == 0 or kernel_size >= size:
        raise ValueError(f"kernel_size must be odd and smaller than size, got {kernel_size} and {size}")
    rows = []
    for family, count, widths in bases:
        basis = mfc_basis(size, family, count, widths)
        for seed in seeds:
            generator = torch.Generator().manual_seed(int(seed))
            kernel = torch.randn(kernel_size, kernel_size, generator=generator, dtype=torch.float64)
            rows.append(dict(family=family, count=count, widths=" ".join(map(str, widths)), m=basis.shape[0],
                             seed=int(seed), size=size, residual=relative_residual(basis, conv_response(kernel, size))))
    return pd.DataFrame(rows)


def _delta(size: int, channels: int) -> torch.Tensor:
    delta = torch.zeros(1, channels, size, size, dtype=torch.float64)
    delta[..., size // 2, size // 2] = 1.0
    return delta
