"""MFC impulse responses for the parameter sweeps of Figure 3's caption, as a tidy DataFrame.

Row 1: axx = 1, ayy = 3, g0 = 1, gy = 0; axy and gx sweep 0 -> 1 together; tau fixed.
Row 2: axx = 1, ayy = 3 (the caption leaves them open; row 1's values), g0 = 1, gx = gy = 0;
       axy and tau sweep 0 -> 1 together.

Scalings (the caption's values are dimensionless; k is physical on the unit square):
- tau = tau_scale * s for sweep value s, with tau_scale = 1/256 by default: at s = 1 the kernel
  std is sqrt(2 tau axx) = 0.088 (5.7 px on a 64 x 64 mesh; sqrt(3) times that along y), so
  kernels are visible on a 64-px mesh. s = 0 would be a delta (tau must be > 0): it uses
  tau_min = 1.25e-4 (a 1-px std on a 64-px mesh; smaller ones ring at Nyquist). Row 1 uses tau = tau_scale / 2.
- gx is given in units of the kernel's x length scale l = sqrt(2 tau axx): the filter applies
  gx * l * d/dx, so gx = 1 makes the derivative lobe as strong as the g0 term at any tau.
The response is to a unit-mass delta (n^2 at the centre pixel), so `value` approximates the
continuous kernel and does not change with the mesh size.
"""

from __future__ import annotations

import math

import torch

from ..layers import mesh_free_filter


def sweep_parameters(panels: int = 5, tau_scale: float = 1 / 256, tau_min: float = 1.25e-4) -> list[dict]:
    """One dict per (row, panel) with the sweep value s and the physical MFC parameters."""
    if panels < 1:
        raise ValueError(f"panels must be >= 1, got {panels}")
    if tau_scale <= 0 or tau_min <= 0:
        raise ValueError("tau_scale and tau_min must be > 0")
    axx, ayy = 1.0, 3.0
    steps = [i / (panels - 1) if panels > 1 else 0.0 for i in range(panels)]
    rows = []
    for panel, s in enumerate(steps):
        tau = tau_scale / 2
        rows.append(dict(row=1, panel=panel, sweep=s, axx=axx, axy=s, ayy=ayy, tau=tau,
                         g0=1.0, gx=s * math.sqrt(2 * tau * axx), gy=0.0))
    for panel, s in enumerate(steps):
        rows.append(dict(row=2, panel=panel, sweep=s, axx=axx, axy=s, ayy=ayy, tau=max(tau_scale * s, tau_min),
                         g0=1.0, gx=0.0, gy=0.0))
    return rows


def impulse_responses(parameters: list[dict], size: int = 64) -> torch.Tensor:
    """(P, size, size) responses of the MFCs in `parameters` to a unit-mass delta at the centre."""
    if size < 2:
        raise ValueError(f"size must be >= 2, got {size}")
    tau = torch.tensor([p["tau"] for p in parameters], dtype=torch.float64)
    alpha = torch.tensor([[p["axx"], p["axy"], p["ayy"]] for p in parameters], dtype=torch.float64)
    gamma = torch.tensor([[p["g0"], p["gx"], p["gy"]] for p in parameters], dtype=torch.float64)
    delta = torch.zeros(1, len(parameters), size, size, dtype=torch.float64)
    delta[..., size // 2, size // 2] = size * size
    return mesh_free_filter(delta, tau, alpha, gamma)[0]


def figure3_kernels(size: int = 64, panels: int = 5, tau_scale: float = 1 / 256, tau_min: float = 1.25e-4):
    """Tidy DataFrame: row, panel, sweep, axx, axy, ayy, tau, g0, gx, gy, x, y, value.

    x is the column (width) index and y the row (height) index; the delta sits at (size//2, size//2).
    """
    import pandas as pd

    parameters = sweep_parameters(panels, tau_scale, tau_min)
    kernels = impulse_responses(parameters, size).numpy()
    ys, xs = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    frames = []
    for p, kernel in zip(parameters, kernels):
        frame = pd.DataFrame({"x": xs.reshape(-1).numpy(), "y": ys.reshape(-1).numpy(), "value": kernel.reshape(-1)})
        for key, value in reversed(list(p.items())):
            frame.insert(0, key, value)
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)
