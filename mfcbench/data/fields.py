"""`fields`: seeded, periodic Gaussian (Markov) random fields, grayscale, in [0, 1].

The default ("gmrf") is a Gaussian Markov random field in the sense of Tenorio et al. (2011), the
"Random Markov Field" of the paper's blur-estimation example: white noise filtered by
(kappa^2 - Laplacian)^(-alpha/2), with the 5-point Laplacian on a periodic grid. Wavenumbers are
in physical units of the unit square, so a field drawn at 256^2 and one at 128^2 have the same
correlation length. "powerlaw" uses a |k|^(-beta) amplitude spectrum instead (fractal texture).
Each field is min-max scaled to [0, 1]. Train and val use independent seed streams.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from .base import DATASETS, Dataset

KINDS = ("gmrf", "powerlaw")


def spectrum(n: int, kind: str, kappa: float, alpha: float, beta: float) -> np.ndarray:
    """Amplitude filter (n, n//2+1) applied to the rfft2 of white noise."""
    k1 = np.fft.fftfreq(n) * n  # integer wavenumbers
    k2 = np.fft.rfftfreq(n) * n
    if kind == "gmrf":
        # eigenvalues of the periodic 5-point Laplacian on a grid of spacing h = 1/n
        lap = (4.0 * n * n) * (np.sin(np.pi * k1 / n)[:, None] ** 2 + np.sin(np.pi * k2 / n)[None, :] ** 2)
        return (kappa**2 + lap) ** (-alpha / 2.0)
    if kind == "powerlaw":
        k = np.hypot(k1[:, None], k2[None, :])
        k[0, 0] = 1.0
        amp = k ** (-beta / 2.0)
        amp[0, 0] = 0.0
        return amp
    raise ValueError(f"unknown field kind {kind!r}; valid choices: {', '.join(KINDS)}")


def random_fields(count: int, n: int, *, seed: int, kind: str = "gmrf", kappa: float = 10.0,
                  alpha: float = 2.0, beta: float = 3.0) -> torch.Tensor:
    """(count, 1, n, n) float32 fields in [0, 1]; the same arguments give the same fields."""
    rng = np.random.default_rng(seed)
    amp = spectrum(n, kind, kappa, alpha, beta)
    out = np.empty((count, 1, n, n), dtype=np.float32)
    for i in range(count):
        noise = rng.standard_normal((n, n))
        field = np.fft.irfft2(np.fft.rfft2(noise) * amp, s=(n, n))
        lo, hi = field.min(), field.max()
        out[i, 0] = (field - lo) / (hi - lo) if hi > lo else 0.5
    return torch.from_numpy(out)


@DATASETS.register("fields")
class Fields(Dataset):
    name = "fields"
    channels = 1
    defaults = {"n_train": 256, "n_val": 64, "kind": "gmrf", "kappa": 10.0, "alpha": 2.0, "beta": 3.0, "seed": 0}
    test_options = {"n_train": 6, "n_val": 3}

    def build_split(self, split: str, image_size: int, root: Path, options: dict[str, Any]) -> torch.Tensor:
        count = int(options["n_train"] if split == "train" else options["n_val"])
        # independent streams per split: SeedSequence entropy (seed, split index)
        seed = np.random.SeedSequence([int(options["seed"]), 0 if split == "train" else 1])
        return random_fields(count, image_size, seed=seed, kind=options["kind"], kappa=float(options["kappa"]),
                             alpha=float(options["alpha"]), beta=float(options["beta"]))
