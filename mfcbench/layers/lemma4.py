"""Lemma 4 (App. B.3) as a layer: a k x k convolution as a linear combination of m MFC filters.

On a fixed mesh, m >= k^2 MFC filters e_k span the impulse responses of a k x k convolution, so a
conv layer becomes y = sum_k e_k * (C_k x) with channel maps C_k (Cout x Cin) fitted by least squares
(Eq. 37). Used by Lemma 4's experiment (`mfcbench.experiments.lemma4`: residual of the fit) and by
MFC-SAM (`mfcbench.experiments.sam`: `Lemma4MFC` replaces SAM's 3x3 convolution).

The basis: for every width w in `widths` (Gaussian std in pixels, tau = (w h)^2 / 2 with h = 1/mesh:
"small tau") and every alpha of the family, three filters with gamma = (1, 0, 0), (0, h, 0),
(0, 0, h) (the derivative weights scaled by the mesh spacing). Families:
- "axy": axx = ayy = 1 and `count` values of axy in [-0.9, 0.9] (the proof's construction);
- "alpha": axx, ayy in geomspace(0.5, 2, count) and axy = r sqrt(axx ayy), r in linspace(-0.5, 0.5,
  count) (count^3 elliptic alphas).
m = (number of alphas) * 3 * len(widths).

The filters' symbol and their SPD diffusion tensors are the MFC's (`functional.py`'s `mesh_free_filter`,
`mesh_free_symbol`, `wavenumbers`; `MeshFreeConv2d.tau/alpha`): one definition of an MFC filter.
"""

from __future__ import annotations

import math
from typing import Iterable

import torch
from torch import nn
from torch.nn import functional as F

from .functional import mesh_free_filter, mesh_free_symbol, wavenumbers
from .mfc import MeshFreeConv2d


def _axy_family(count: int) -> list[tuple[float, float, float]]:
    return [(1.0, axy, 1.0) for axy in torch.linspace(-0.9, 0.9, count).tolist()]


def _alpha_family(count: int) -> list[tuple[float, float, float]]:
    diagonal = torch.logspace(math.log10(0.5), math.log10(2.0), count).tolist() if count > 1 else [1.0]
    tilts = torch.linspace(-0.5, 0.5, count).tolist() if count > 1 else [0.0]
    return [(axx, r * math.sqrt(axx * ayy), ayy) for axx in diagonal for ayy in diagonal for r in tilts]


FAMILIES = {"axy": _axy_family, "alpha": _alpha_family}
DEFAULT_BASIS: tuple[str, int, tuple[float, ...]] = ("alpha", 2, (0.5,))  # m = 24; Lemma 4 residual ~0.11


def basis_parameters(family: str, count: int, widths: Iterable[float], mesh: int):
    """tau (m,), alpha (m, 3), gamma (m, 3) of the basis filters at h = 1/mesh, float64."""
    if family not in FAMILIES:
        raise ValueError(f"unknown family {family!r}; valid choices: {', '.join(FAMILIES)}")
    h = 1.0 / mesh
    gammas = ((1.0, 0.0, 0.0), (0.0, h, 0.0), (0.0, 0.0, h))
    params = [((w * h) ** 2 / 2, a, g) for w in widths for a in FAMILIES[family](count) for g in gammas]
    return tuple(torch.tensor([p[i] for p in params], dtype=torch.float64) for i in range(3))


def impulse(size: int, channels: int = 1) -> torch.Tensor:
    """(1, channels, size, size) float64 unit impulses at the mesh centre."""
    delta = torch.zeros(1, channels, size, size, dtype=torch.float64)
    delta[..., size // 2, size // 2] = 1.0
    return delta


def mfc_basis(size: int, family: str, count: int, widths: Iterable[float]) -> torch.Tensor:
    """(m, size*size) periodic impulse responses of the basis filters on a size x size mesh, float64."""
    tau, alpha, gamma = basis_parameters(family, count, widths, size)
    return mesh_free_filter(impulse(size, len(tau)), tau, alpha, gamma).reshape(len(tau), -1)


def kernel_responses(weight: torch.Tensor, size: int) -> torch.Tensor:
    """(size*size, Cout*Cin) periodic impulse responses of every k x k kernel of a (Cout, Cin, k, k) weight."""
    cout, cin, k, _ = weight.shape
    out = F.conv2d(F.pad(impulse(size), (k // 2,) * 4, mode="circular"), weight.double().reshape(cout * cin, 1, k, k))
    return out.reshape(cout * cin, -1).T


def conv_response(kernel: torch.Tensor, size: int) -> torch.Tensor:
    """(size*size,) periodic impulse response of one k x k kernel (conv2d convention)."""
    return kernel_responses(kernel.view(1, 1, *kernel.shape), size)[:, 0]


def fit_kernels(weight: torch.Tensor, basis=DEFAULT_BASIS, size: int = 16, ridge: float = 1e-6):
    """Lemma 4 fit (Eq. 37, ridge `ridge` * mean diag of B B^T): coefficients (m, Cout, Cin), residual.

    The residual is ||B^T C - K||_F / ||K||_F over all kernels (0 = exact)."""
    family, count, widths = basis
    b = mfc_basis(size, family, count, widths)  # (m, N)
    targets = kernel_responses(weight, size)  # (N, P)
    gram = b @ b.T
    lam = ridge * gram.diagonal().mean()
    coef = torch.linalg.solve(gram + lam * torch.eye(len(b), dtype=b.dtype), b @ targets)  # (m, P)
    residual = float(torch.linalg.norm(b.T @ coef - targets) / torch.linalg.norm(targets).clamp_min(1e-300))
    return coef.reshape(len(b), weight.shape[0], weight.shape[1]), residual


def _cholesky_parameters(alpha: torch.Tensor) -> torch.Tensor:
    """(log l11, l21, log l22) with L L^T = alpha: the inverse of `MeshFreeConv2d.alpha`."""
    l11 = alpha[:, 0].sqrt()
    l21 = alpha[:, 1] / l11
    l22 = (alpha[:, 2] - l21 * l21).sqrt()
    return torch.stack((l11.log(), l21, l22.log()), -1)


class Lemma4MFC(nn.Module):
    """y = sum_k e_k * (C_k x) + bias: m MFC filters (7 parameters each: log_tau, the Cholesky factor
    of alpha and gamma, as in `MeshFreeConv2d`) after m channel maps C_k; the input is zero-padded by
    `pad` pixels and cropped back, mesh spacing h = 1/mesh. Starts from `basis`'s filters;
    `from_conv` fits the C_k to a 3x3 convolution."""

    tau = MeshFreeConv2d.tau  # exp(log_tau), shape (m,)
    alpha = MeshFreeConv2d.alpha  # (axx, axy, ayy) = L L^T from chol, shape (m, 3)

    def __init__(self, in_channels: int, out_channels: int, basis=DEFAULT_BASIS, mesh: int = 64, pad: int = 3,
                 bias: bool = False):
        super().__init__()
        tau, alpha, gamma = basis_parameters(*basis, mesh)
        self.in_channels, self.out_channels, self.mesh, self.pad = in_channels, out_channels, mesh, pad
        self.log_tau = nn.Parameter(tau.log().float())
        self.chol = nn.Parameter(_cholesky_parameters(alpha).float())
        self.gamma = nn.Parameter(gamma.float())
        self.coef = nn.Parameter(torch.zeros(len(tau), out_channels, in_channels))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        self.lemma4_residual = float("nan")

    @classmethod
    def from_conv(cls, conv: nn.Conv2d, basis=DEFAULT_BASIS, mesh: int = 64, pad: int = 3) -> "Lemma4MFC":
        """The MFC of one stride-1 'same' 3x3 conv, initialised by `fit_kernels`."""
        if conv.kernel_size != (3, 3) or conv.stride != (1, 1) or conv.padding != (1, 1) or conv.dilation != (1, 1) \
                or conv.groups != 1:
            raise ValueError(f"only stride-1, padding-1, ungrouped 3x3 convolutions convert, got {conv}")
        mfc = cls(conv.in_channels, conv.out_channels, basis, mesh, pad, bias=conv.bias is not None)
        coef, residual = fit_kernels(conv.weight.detach().cpu(), basis)
        with torch.no_grad():
            mfc.coef.copy_(coef.float())
            if conv.bias is not None:
                mfc.bias.copy_(conv.bias.detach())
        mfc.lemma4_residual = residual
        return mfc.to(conv.weight.device)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p, m = self.pad, self.coef.shape[0]
        x = F.pad(x, (p, p, p, p))
        batch, _, height, width = x.shape
        ky, kx = wavenumbers(height, width, 1.0 / self.mesh, device=x.device, dtype=torch.float32)
        symbol = mesh_free_symbol(self.tau(), self.alpha(), self.gamma, ky, kx)  # (m, H, Wr)
        x_hat = torch.view_as_real(torch.fft.rfft2(x.float())).reshape(batch, self.in_channels, -1)
        z = torch.matmul(self.coef.reshape(m * self.out_channels, self.in_channels), x_hat)  # real maps
        z = torch.view_as_complex(z.reshape(batch, m, self.out_channels, height, -1, 2).contiguous())
        y = torch.fft.irfft2((z * symbol[None, :, None]).sum(1), s=(height, width))[..., p:height - p, p:width - p]
        if self.bias is not None:
            y = y + self.bias[None, :, None, None]
        return y.to(x.dtype)

    def extra_repr(self) -> str:
        return f"{self.in_channels}, {self.out_channels}, m={self.coef.shape[0]}, mesh={self.mesh}, pad={self.pad}"
