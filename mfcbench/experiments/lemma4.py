"""Lemma 4 (App. B.3): on a fixed mesh, a linear combination of m >= k^2 MFC filters fits a k x k
convolution. We solve the least-squares problem of Eq. 37 on impulse responses and report the
relative residual ||K - sum_i c_i e_i|| / ||K|| (over the whole periodic mesh).

The basis (families "axy" and "alpha", widths, m) is the layer's: `mfcbench.layers.lemma4`
(`mfc_basis`, `FAMILIES`), which `Lemma4MFC` (MFC-SAM) uses too. The target is a 3x3 kernel with
N(0, 1) entries.
"""

from __future__ import annotations

from typing import Iterable

import torch

from ..layers.lemma4 import FAMILIES, conv_response, mfc_basis

__all__ = ["DEFAULT_BASES", "FAMILIES", "conv_response", "lemma4_residuals", "mfc_basis", "relative_residual"]

# (family, count, widths in px): m = 9, 54, 24, 81, 162.
DEFAULT_BASES = (
    ("axy", 3, (0.7,)),
    ("axy", 9, (0.5, 1.0)),
    ("alpha", 2, (0.7,)),
    ("alpha", 3, (0.7,)),
    ("alpha", 3, (0.5, 1.0)),
)


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
