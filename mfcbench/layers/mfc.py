"""Mesh-free convolutions (paper Section 3.1-3.2, Eq. 18-21, App. A).

An MFC is a parabolic-PDE filter: solve v_t = L(alpha) v for time tau from the input, then apply
(gamma0 + gamma . grad). Its Fourier symbol on the unit square is

    S(k) = (g0 + i kx gx + i ky gy) * exp(-tau (axx kx^2 + 2 axy kx ky + ayy ky^2)),

with k in physical units (2*pi*m for mode m when the mesh spacing is h = 1/n). Because k is
physical, one set of parameters is one continuous operator, whatever the mesh it is sampled on.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["mesh_free_filter", "mesh_free_symbol", "MeshFreeConv2d", "wavenumbers"]


def wavenumbers(height: int, width: int, h: float | None = None, *, device=None, dtype=torch.float32):
    """Physical wavenumbers (ky of shape (H, 1), kx of shape (1, W//2+1)) for an rfft2 grid.

    `h` is the mesh spacing on both axes; the default 1/width places the image on the unit square.
    """
    if h is None:
        h = 1.0 / width
    ky = 2 * math.pi * torch.fft.fftfreq(height, d=h, device=device, dtype=dtype)
    kx = 2 * math.pi * torch.fft.rfftfreq(width, d=h, device=device, dtype=dtype)
    return ky[:, None], kx[None, :]


def mesh_free_symbol(tau, alpha, gamma, ky, kx):
    """The complex symbol S(k) for parameters with any leading shape P: returns (*P, H, W//2+1).

    tau (*P), alpha (*P, 3) = (axx, axy, ayy), gamma (*P, 3) = (g0, gx, gy).
    """
    tau = tau[..., None, None]
    axx, axy, ayy = (alpha[..., i, None, None] for i in range(3))
    g0, gx, gy = (gamma[..., i, None, None] for i in range(3))
    quad = axx * kx * kx + 2 * axy * kx * ky + ayy * ky * ky
    decay = torch.exp(-tau * quad)
    return torch.complex(g0 * decay, (gx * kx + gy * ky) * decay)


def _check_parameters(tau, alpha) -> None:
    if bool((tau <= 0).any()):
        raise ValueError("mesh_free_filter: tau must be > 0 for every channel")
    axx, axy, ayy = alpha[..., 0], alpha[..., 1], alpha[..., 2]
    if bool((axx <= 0).any()) or bool((axx * ayy - axy * axy <= 0).any()):
        raise ValueError(
            "mesh_free_filter: alpha must be elliptic (axx > 0 and axx*ayy - axy^2 > 0) for every channel"
        )


def mesh_free_filter(x: torch.Tensor, tau, alpha, gamma, h: float | None = None, *, validate: bool = True):
    """Apply one MFC filter per channel to x of shape (B, C, H, W) with periodic boundaries.

    tau (C,), alpha (C, 3), gamma (C, 3). x is the width axis (last), y the height axis.
    Raises ValueError for tau <= 0 or a non-elliptic alpha (unless validate=False, which the
    layer uses because its parametrization guarantees validity and a check would force a sync).
    """
    if x.dim() != 4:
        raise ValueError(f"mesh_free_filter expects (B, C, H, W), got shape {tuple(x.shape)}")
    channels = x.shape[1]
    for name, value, shape in (("tau", tau, (channels,)), ("alpha", alpha, (channels, 3)), ("gamma", gamma, (channels, 3))):
        if tuple(value.shape) != shape:
            raise ValueError(f"mesh_free_filter: {name} must have shape {shape}, got {tuple(value.shape)}")
    if validate:
        _check_parameters(tau, alpha)
    height, width = x.shape[-2:]
    real_dtype = x.dtype if x.dtype in (torch.float32, torch.float64) else torch.float32
    ky, kx = wavenumbers(height, width, h, device=x.device, dtype=real_dtype)
    symbol = mesh_free_symbol(tau.to(real_dtype), alpha.to(real_dtype), gamma.to(real_dtype), ky, kx)
    x_hat = torch.fft.rfft2(x.to(real_dtype))
    return torch.fft.irfft2(x_hat * symbol, s=(height, width)).to(x.dtype)


class MeshFreeConv2d(nn.Module):
    """Mesh-free convolution layer: a channel map followed by parabolic-PDE filters.

    mixing="pointwise": a trainable 1x1 convolution in->out, then one 7-parameter filter per output
        channel; cost O(C n log n).
    mixing="full": 7 parameters per (input, output) channel pair (the count Table 13's MFC models
        imply); computed as rfft2 of the inputs, a per-frequency channel contraction, and irfft2
        of the outputs, so there is no FFT per pair: cost (Cin + Cout) n log n + Cin Cout n.

    Parameters are unconstrained: tau = exp(log_tau) > 0 and alpha = L L^T with a Cholesky factor
    whose diagonal is exp(.), so alpha is symmetric positive definite by construction.
    `init_resolution` and `init_width` set the initial kernel width in pixels at the training mesh,
    so kernels start local (like a learned 3x3-7x7 kernel).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        mixing: str = "pointwise",
        bias: bool = True,
        h: float | None = None,
        init_resolution: int = 64,
        init_width: tuple[float, float] = (0.5, 1.5),
    ):
        super().__init__()
        if mixing not in ("pointwise", "full"):
            raise ValueError(f"mixing must be 'pointwise' or 'full', got {mixing!r}")
        self.in_channels, self.out_channels, self.mixing, self.h = in_channels, out_channels, mixing, h
        shape = (out_channels,) if mixing == "pointwise" else (out_channels, in_channels)
        self.log_tau = nn.Parameter(torch.empty(shape))
        self.chol = nn.Parameter(torch.empty(*shape, 3))  # (log l11, l21, log l22)
        self.gamma = nn.Parameter(torch.empty(*shape, 3))
        self.mix = nn.Conv2d(in_channels, out_channels, 1, bias=False) if mixing == "pointwise" else None
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        self.init_resolution, self.init_width = init_resolution, init_width
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        n = self.init_resolution
        lo, hi = self.init_width
        # Gaussian std in pixels = sqrt(2 tau) * n with alpha ~ I  =>  tau = (width / n)^2 / 2.
        width = torch.empty_like(self.log_tau).uniform_(lo, hi)
        self.log_tau.copy_(torch.log((width / n) ** 2 / 2))
        self.chol.zero_()
        self.chol[..., 1].normal_(0.0, 0.3)  # a little anisotropy and tilt
        self.chol[..., (0, 2)] = self.chol[..., (0, 2)].normal_(0.0, 0.2)
        fan_in = self.in_channels if self.mixing == "full" else 1
        std = 1.0 / math.sqrt(fan_in)
        if self.mixing == "pointwise":
            self.mix.reset_parameters()
            self.gamma[..., 0].normal_(1.0, 0.2)
        else:
            self.gamma[..., 0].normal_(0.0, std)
        # First-derivative weights scaled by the mesh spacing so they start comparable to g0.
        self.gamma[..., 1:].normal_(0.0, std / (2 * math.pi * n) * 4)

    def tau(self) -> torch.Tensor:
        return torch.exp(self.log_tau)

    def alpha(self) -> torch.Tensor:
        l11, l21, l22 = torch.exp(self.chol[..., 0]), self.chol[..., 1], torch.exp(self.chol[..., 2])
        return torch.stack((l11 * l11, l11 * l21, l21 * l21 + l22 * l22), dim=-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.mixing == "pointwise":
            out = mesh_free_filter(self.mix(x), self.tau(), self.alpha(), self.gamma, self.h, validate=False)
        else:
            out = self._full(x)
        if self.bias is not None:
            out = out + self.bias[None, :, None, None]
        return out

    def _full(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[-2:]
        ky, kx = wavenumbers(height, width, self.h, device=x.device, dtype=x.dtype)
        x_hat = torch.fft.rfft2(x)  # (B, Ci, H, Wr)
        y_hat = _PairwiseSymbolContraction.apply(x_hat, self.tau(), self.alpha(), self.gamma, ky, kx)
        return torch.fft.irfft2(y_hat, s=(height, width))

    def extra_repr(self) -> str:
        return f"{self.in_channels}, {self.out_channels}, mixing={self.mixing!r}, bias={self.bias is not None}"


def _frequency_basis(ky: torch.Tensor, kx: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per-frequency monomials (F, 3) and (F, 2) the symbol and its parameter gradients are built from."""
    kyf = ky.expand(ky.shape[0], kx.shape[1]).reshape(-1)
    kxf = kx.expand(ky.shape[0], kx.shape[1]).reshape(-1)
    return {"quad": torch.stack((kxf * kxf, 2 * kxf * kyf, kyf * kyf), dim=1), "lin": torch.stack((kxf, kyf), dim=1)}


def _pair_symbol(tau, alpha, gamma, basis):
    """Frequency-major decay exp(-tau q) and odd factor gx kx + gy ky, each (F, P) for P pairs."""
    decay = torch.exp_((basis["quad"] @ alpha.T).mul_(-tau))
    odd = basis["lin"] @ gamma[:, 1:].T
    return decay, odd


def _complex_symbol(g0, decay, odd):
    """(g0 + i odd) * decay written straight into an interleaved buffer: one pass, no temporaries."""
    out = torch.empty(*decay.shape, 2, dtype=decay.dtype, device=decay.device)
    torch.mul(decay, g0, out=out[..., 0])
    torch.mul(decay, odd, out=out[..., 1])
    return torch.view_as_complex(out)


_CHUNK_ELEMENTS = 1 << 23  # pair-symbol entries built at once: bounds memory at ~100 MB


def _frequency_chunks(num_freqs: int, num_pairs: int):
    step = max(1, _CHUNK_ELEMENTS // max(1, num_pairs))
    return [slice(start, min(start + step, num_freqs)) for start in range(0, num_freqs, step)]


def _chunk_basis(basis: dict[str, torch.Tensor], rows: slice) -> dict[str, torch.Tensor]:
    return {key: value[rows] for key, value in basis.items()}


class _PairwiseSymbolContraction(torch.autograd.Function):
    """y_hat[b, o, f] = sum_i S[o, i, f] x_hat[b, i, f] with S the MFC symbol of pair (o, i).

    Autograd through the symbol would keep half a dozen (Cout, Cin, F) temporaries and reduce
    each of them; here the symbol is never stored: it is built frequency-major, a chunk of
    frequencies at a time (bounded memory at any mesh), in forward and again in backward, and the
    7 parameter gradients come from one complex batched matmul plus small real matmuls against
    frequency monomials: dL/dp = sum_f Re(conj(G) dS/dp) with G = grad_y x_hat^H per frequency.
    """

    @staticmethod
    def forward(ctx, x_hat, tau, alpha, gamma, ky, kx):
        cout, cin = tau.shape
        batch, _, height, wr = x_hat.shape
        basis = _frequency_basis(ky, kx)
        t, a, g = tau.reshape(-1), alpha.reshape(-1, 3), gamma.reshape(-1, 3)
        xf = x_hat.reshape(batch, cin, -1).permute(2, 1, 0).contiguous()  # (F, Ci, B)
        y = torch.empty(xf.shape[0], cout, batch, dtype=x_hat.dtype, device=x_hat.device)
        for rows in _frequency_chunks(xf.shape[0], t.numel()):
            decay, odd = _pair_symbol(t, a, g, _chunk_basis(basis, rows))
            symbol = _complex_symbol(g[:, 0], decay, odd).reshape(-1, cout, cin)  # (f, Co, Ci)
            torch.matmul(symbol, xf[rows], out=y[rows])
        ctx.save_for_backward(x_hat, tau, alpha, gamma, ky, kx)
        return y.permute(2, 1, 0).reshape(batch, cout, height, wr)

    @staticmethod
    def backward(ctx, grad_y):
        x_hat, tau, alpha, gamma, ky, kx = ctx.saved_tensors
        cout, cin = tau.shape
        batch, _, height, wr = x_hat.shape
        basis = _frequency_basis(ky, kx)
        t, a, g = tau.reshape(-1), alpha.reshape(-1, 3), gamma.reshape(-1, 3)
        gy = grad_y.reshape(batch, cout, -1).permute(2, 1, 0).contiguous()  # (F, Co, B)
        xh = x_hat.reshape(batch, cin, -1).permute(2, 0, 1).conj().resolve_conj()  # (F, B, Ci)
        want_x = ctx.needs_input_grad[0]
        grad_x = torch.empty(gy.shape[0], cin, batch, dtype=gy.dtype, device=gy.device) if want_x else None
        sums = torch.zeros(6, t.numel(), dtype=t.dtype, device=t.device)  # gamma (3) and quadratic (3) moments
        for rows in _frequency_chunks(gy.shape[0], t.numel()):
            chunk = _chunk_basis(basis, rows)
            decay, odd = _pair_symbol(t, a, g, chunk)
            if want_x:
                symbol_h = _complex_symbol(g[:, 0], decay, odd.neg()).reshape(-1, cout, cin).transpose(1, 2)
                torch.matmul(symbol_h, gy[rows], out=grad_x[rows])  # conj(S)^T grad_y
            G = torch.matmul(gy[rows], xh[rows]).reshape(-1, cout * cin)  # grad_y x^H: (f, P)
            w_re = G.real * decay  # Re(conj(G) decay)
            w_im = G.imag.neg().mul_(decay)  # Im(conj(G) decay)
            sums[0] += w_re.sum(0)
            sums[1:3] -= chunk["lin"].T @ w_im
            r = w_re.mul_(g[:, 0]).sub_(w_im.mul_(odd))  # Re(conj(G) S)
            sums[3:] += chunk["quad"].T @ r  # sums of r kx^2, 2 r kx ky, r ky^2
        m = sums[3:].T
        grad_alpha = -t[:, None] * m
        grad_tau = -(a * m).sum(-1)
        if want_x:
            grad_x = grad_x.permute(2, 1, 0).reshape(batch, cin, height, wr)
        return (grad_x, grad_tau.reshape(cout, cin), grad_alpha.reshape(cout, cin, 3),
                sums[:3].T.reshape(cout, cin, 3), None, None)
