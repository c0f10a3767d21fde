"""Gradient discrepancy across meshes (paper Example 1, Eq. 14-16; Tables 1 and 2): an experiment.

On the unit interval (periodic), the linear loss l_h(theta) = (1/n) (u^h * theta)^T y^h is
evaluated on meshes h = 1/finest, 2/finest, ... where u^h, y^h are restrictions of the finest-mesh
signals (Eq. 15). For each resolution 1/n we report

    discrepancy(1/n) = || grad l_{1/n} - grad l_{2/n} ||^2            (Eq. 16, norm "squared")

and, beside it, the plain norm || . || (norm "plain"): Eq. 16 squares the norm, but Table 1's
smooth row halves per level, which is what the plain norm of an O(h) difference gives. Both are
reported; the `norm` option picks the one in the `discrepancy` column (the claims read that one).

for two operators: the standard kernel-3 convolution (Table 1; gradient w.r.t. its 3 weights)
and a 1D mesh-free convolution with symbol (g0 + i k gx) exp(-tau a k^2), k physical (Table 2;
gradient w.r.t. (g0, gx, tau, a)); the MFC is `mfcbench.layers.mesh_free_filter` on a 1 x n mesh.
Gradients come from autograd. Inputs u are smooth, or smooth plus N(0, noise_std^2) noise.

What the paper leaves open is an option (all reported back under "options"):
- restriction: "full_weighting" (default; [1/4, 1/2, 1/4] then every other sample, the multigrid
  transpose of linear interpolation, which Eq. 15 names), "average" (pairs), "injection".
- noise: "finest" (default; drawn once on the finest mesh, then restricted like the signal, as
  Eq. 15 restricts u^h) or "per_mesh" (fresh N(0, noise_std^2) added on every mesh).
- u, y: smooth periodic functions by name (SMOOTH_FUNCTIONS); defaults "bump" and "wave".
- theta: the conv weights where the gradient is taken (the loss is linear in theta, so the
  gradient does not depend on it; recorded for completeness). mfc: {g0, gx, tau, a}.
- repeats: noisy draws averaged per resolution (seeded by `seed`); finest: finest mesh size;
  resolutions: how many rows (1/finest ... 1/(finest / 2**(resolutions-1))).
- norm: "squared" (default, Eq. 16) or "plain".
`python -m mfcbench experiment discrepancy --conv standard --out results/<profile>/table1.csv`.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import torch
from torch.nn import functional as F

from ..core.registry import Registry
from ..layers import mesh_free_filter

RESTRICTIONS_1D: Registry = Registry("1D restriction")
SMOOTH_FUNCTIONS: Registry = Registry("smooth function")

SMOOTH_FUNCTIONS.register("bump")(lambda x: torch.exp(-0.5 * ((x - 0.5) / 0.1) ** 2))
SMOOTH_FUNCTIONS.register("wave")(lambda x: torch.cos(2 * math.pi * x) + 0.5 * torch.sin(4 * math.pi * x))
SMOOTH_FUNCTIONS.register("sin")(lambda x: torch.sin(2 * math.pi * x))
SMOOTH_FUNCTIONS.register("cos")(lambda x: torch.cos(2 * math.pi * x))


@RESTRICTIONS_1D.register("full_weighting")
def full_weighting(v: torch.Tensor) -> torch.Tensor:
    return (0.25 * torch.roll(v, 1, -1) + 0.5 * v + 0.25 * torch.roll(v, -1, -1))[..., ::2]


@RESTRICTIONS_1D.register("average")
def average(v: torch.Tensor) -> torch.Tensor:
    return 0.5 * (v[..., ::2] + v[..., 1::2])


@RESTRICTIONS_1D.register("injection")
def injection(v: torch.Tensor) -> torch.Tensor:
    return v[..., ::2]


DEFAULTS: dict[str, Any] = {
    "finest": 1024,
    "resolutions": 6,
    "restriction": "full_weighting",
    "noise": "finest",
    "noise_std": 1.0,
    "u": "bump",
    "y": "wave",
    "theta": [0.25, 0.5, 0.25],
    "mfc": {"g0": 1.0, "gx": 0.01, "tau": 1e-3, "a": 1.0},
    "repeats": 16,
    "norm": "squared",
}
NOISE_MODES = ("finest", "per_mesh")
NORMS = ("squared", "plain")
MFC_PARAMETERS = ("g0", "gx", "tau", "a")


def conv_loss(u: torch.Tensor, y: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """(1/n) (u * theta)^T y with a periodic kernel-3 cross-correlation: (u*theta)_j = sum_k theta_k u_{j+k-1}."""
    out = F.conv1d(F.pad(u.view(1, 1, -1), (1, 1), mode="circular"), theta.view(1, 1, 3)).view(-1)
    return out.dot(y) / u.numel()


def mfc_loss(u: torch.Tensor, y: torch.Tensor, xi: torch.Tensor) -> torch.Tensor:
    """(1/n) (C(xi) u)^T y for xi = (g0, gx, tau, a); k is physical (h = 1/n on the unit interval)."""
    g0, gx, tau, a = xi
    zero, one = torch.zeros_like(a), torch.ones_like(a)
    alpha = torch.stack((a, zero, one)).view(1, 3)  # ayy is irrelevant on a 1 x n mesh (ky = 0)
    gamma = torch.stack((g0, gx, zero)).view(1, 3)
    out = mesh_free_filter(u.view(1, 1, 1, -1), tau.view(1), alpha, gamma).view(-1)
    return out.dot(y) / u.numel()


LOSSES: dict[str, Callable] = {"standard": conv_loss, "mfc": mfc_loss}


def gradient(loss: Callable, u: torch.Tensor, y: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
    params = params.detach().clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(loss(u, y, params), params)
    return grad


def resolve_options(options: dict[str, Any] | None = None) -> dict[str, Any]:
    """DEFAULTS <- options, checked: one line naming the option and what is allowed."""
    options = dict(options or {})
    unknown = set(options) - set(DEFAULTS)
    if unknown:
        raise ValueError(f"discrepancy: unknown options {sorted(unknown)}; valid: {sorted(DEFAULTS)}")
    resolved = {**DEFAULTS, **options}
    resolved["mfc"] = {**DEFAULTS["mfc"], **resolved["mfc"]}
    if set(resolved["mfc"]) != set(MFC_PARAMETERS):
        raise ValueError(f"discrepancy: mfc takes exactly {MFC_PARAMETERS}, got {sorted(resolved['mfc'])}")
    RESTRICTIONS_1D.get(resolved["restriction"])
    SMOOTH_FUNCTIONS.get(resolved["u"]), SMOOTH_FUNCTIONS.get(resolved["y"])
    for key, valid in (("noise", NOISE_MODES), ("norm", NORMS)):
        if resolved[key] not in valid:
            raise ValueError(f"discrepancy: {key} must be one of {valid}, got {resolved[key]!r}")
    finest, levels = int(resolved["finest"]), int(resolved["resolutions"])
    if levels < 1 or finest % 2**levels:
        raise ValueError(f"discrepancy: finest={finest} must be divisible by 2**resolutions={2**levels}")
    if int(resolved["repeats"]) < 1:
        raise ValueError(f"discrepancy: repeats must be >= 1, got {resolved['repeats']}")
    if len(resolved["theta"]) != 3:
        raise ValueError("discrepancy: theta must have 3 entries (kernel size 3)")
    return resolved


def signals(opts: dict[str, Any], generator: torch.Generator, noisy: bool) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """u and y on meshes finest, finest/2, ..., finest/2**resolutions (float64)."""
    restrict = RESTRICTIONS_1D.get(opts["restriction"])
    n = int(opts["finest"])
    x = torch.arange(n, dtype=torch.float64) / n
    u, y = SMOOTH_FUNCTIONS.get(opts["u"])(x), SMOOTH_FUNCTIONS.get(opts["y"])(x)
    std = float(opts["noise_std"])
    if noisy and opts["noise"] == "finest":
        u = u + std * torch.randn(n, generator=generator, dtype=torch.float64)
    us, ys = [u], [y]
    for _ in range(int(opts["resolutions"])):
        us.append(restrict(us[-1]))
        ys.append(restrict(ys[-1]))
    if noisy and opts["noise"] == "per_mesh":
        clean = us
        us = [v + std * torch.randn(v.shape, generator=generator, dtype=torch.float64) for v in clean]
    return us, ys


def _mean_discrepancies(opts: dict[str, Any], seed: int) -> dict[tuple[str, str, str], list[float]]:
    """(conv, input, norm) -> per-resolution mean over draws of ||g_i - g_{i+1}||^2 or ||g_i - g_{i+1}||."""
    params = {
        "standard": torch.tensor(opts["theta"], dtype=torch.float64),
        "mfc": torch.tensor([opts["mfc"][k] for k in MFC_PARAMETERS], dtype=torch.float64),
    }
    generator = torch.Generator().manual_seed(int(seed))
    sums = {(conv, kind, norm): [0.0] * int(opts["resolutions"])
            for conv in LOSSES for kind in ("smooth", "noisy") for norm in NORMS}
    for kind in ("smooth", "noisy"):
        draws = int(opts["repeats"]) if kind == "noisy" else 1
        for _ in range(draws):
            us, ys = signals(opts, generator, noisy=kind == "noisy")
            for conv, loss in LOSSES.items():
                grads = [gradient(loss, u, y, params[conv]) for u, y in zip(us, ys)]
                for i in range(len(grads) - 1):
                    squared = (grads[i] - grads[i + 1]).pow(2).sum().item()
                    sums[conv, kind, "squared"][i] += squared / draws
                    sums[conv, kind, "plain"][i] += math.sqrt(squared) / draws
    return sums


def run_discrepancy(options: dict[str, Any] | None = None, seed: int = 0) -> dict[str, Any]:
    """Rows (conv, input, resolution, n, discrepancy in the chosen norm, both norms) and summary metrics."""
    opts = resolve_options(options)
    sums = _mean_discrepancies(opts, seed)
    finest, chosen = int(opts["finest"]), opts["norm"]
    sizes = [finest // 2**i for i in range(int(opts["resolutions"]))]
    rows, metrics = [], {}
    for conv in LOSSES:
        for kind in ("smooth", "noisy"):
            values = sums[conv, kind, chosen]
            for i, n in enumerate(sizes):
                rows.append({"conv": conv, "input": kind, "resolution": f"1/{n}", "n": n, "norm": chosen,
                             "discrepancy": values[i], "discrepancy_squared": sums[conv, kind, "squared"][i],
                             "discrepancy_plain": sums[conv, kind, "plain"][i]})
            metrics[f"{conv}_{kind}_finest"] = values[0]
            metrics[f"{conv}_{kind}_coarsest"] = values[-1]
            metrics[f"{conv}_{kind}_slope"] = refinement_slope(sizes, values)
    return {"metrics": metrics, "rows": rows, "options": opts, "seed": int(seed)}


def refinement_slope(sizes: list[int], values: list[float]) -> float:
    """Least-squares slope of log2(discrepancy) against log2(n): < 0 means it shrinks as the mesh
    refines (the behaviour multiscale SGD needs), > 0 that it grows. NaN if any value is 0."""
    if len(sizes) < 2 or min(values) <= 0:
        return float("nan")
    xs = torch.log2(torch.tensor(sizes, dtype=torch.float64))
    ys = torch.log2(torch.tensor(values, dtype=torch.float64))
    xc = xs - xs.mean()
    return float((xc * (ys - ys.mean())).sum() / (xc * xc).sum())
