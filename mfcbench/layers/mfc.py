"""Mesh-free convolutions (paper Section 3.1-3.2, Eq. 18-21, App. A).

An MFC is a parabolic-PDE filter: solve v_t = L(alpha) v for time tau from the input, then apply
(gamma0 + gamma . grad). Its Fourier symbol on the unit square is

    S(k) = (g0 + i kx gx + i ky gy) * exp(-tau (axx kx^2 + 2 axy kx ky + ayy ky^2)),

with k in physical units (2*pi*m for mode m when the mesh spacing is h = 1/n). Because k is
physical, one set of parameters is one continuous operator, whatever the mesh it is sampled on.

Boundaries: the FFT makes the filter periodic (what leaves one edge enters at the opposite one).
`boundary="zero"` or `"reflect"` pads the image by a fixed *physical* width (`padding`, in units of
the domain width, so the padded pixel count scales with 1/h and the operator stays mesh-free),
filters periodically on the larger domain and crops back.
"""

from __future__ import annotations

import contextlib
import functools
import math

import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["BOUNDARIES", "DEFAULT_PADDING", "mesh_free_filter", "mesh_free_symbol", "MeshFreeConv2d", "wavenumbers",
           "symbol_cache"]

BOUNDARIES = ("periodic", "zero", "reflect")
DEFAULT_PADDING = 0.125  # physical pad on each side for zero/reflect, in units of the domain width
FFT_PATHS = ("rfft", "packed")
DEFAULT_FFT_PATH = "rfft"  # "packed" is exact but was not faster on the 2-core CPU (see _PackedFilter)


def wavenumbers(height: int, width: int, h: float | None = None, *, device=None, dtype=torch.float32):
    """Physical wavenumbers (ky of shape (H, 1), kx of shape (1, W//2+1)) for an rfft2 grid of
    height x width pixels, on `device` in `dtype`.

    `h` is the mesh spacing on both axes; the default 1/width places the image on the unit square.
    Built once per (mesh, spacing, device, dtype) and shared (read-only): a multiscale step visits the
    same few meshes in every layer and every step.
    """
    return _wavenumbers(int(height), int(width), 1.0 / width if h is None else float(h),
                        str(torch.device(device) if device is not None else "cpu"), dtype)


@functools.lru_cache(maxsize=256)
def _wavenumbers(height: int, width: int, h: float, device: str, dtype):
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


def mesh_free_filter(x: torch.Tensor, tau, alpha, gamma, h: float | None = None, *, validate: bool = True,
                     fft_path: str | None = None, boundary: str = "periodic", padding: float = DEFAULT_PADDING):
    """Apply one MFC filter per channel to x of shape (B, C, H, W).

    x: the images; x is the width axis (last), y the height axis.
    tau (C,): diffusion time, > 0. alpha (C, 3): (axx, axy, ayy), elliptic (axx > 0, axx*ayy > axy^2).
    gamma (C, 3): (g0, gx, gy), the weights of the identity and the two first derivatives.
    h: mesh spacing in physical units on both axes; None (default) = 1/W, i.e. the image spans the
        unit width whatever its pixel count, so a restricted copy (W/2 pixels) gets h = 2/W and the
        same parameters give the same continuous operator. Give h when a mesh is not the whole domain.
    validate: raise ValueError for tau <= 0 or a non-elliptic alpha (the layer passes False because its
        parametrization guarantees validity and a check would force a device sync).
    fft_path: "rfft" (rfft2/irfft2) or "packed" (two channels per complex fft2/ifft2, _PackedFilter);
        both give the same filter to rounding. None means DEFAULT_FFT_PATH.
    boundary: "periodic" (default; the FFT's own wrap-around), "zero" or "reflect" (pad, filter, crop;
        reflect mirrors about the domain edge, half a pixel beyond the outer pixel centres).
    padding: for zero/reflect, the pad on each side in physical units (default 0.125 of the unit
        width: ceil(padding / h) pixels). A kernel wider than twice the pad still wraps partly.
    """
    if boundary not in BOUNDARIES:
        raise ValueError(f"boundary must be one of {BOUNDARIES}, got {boundary!r}")
    if boundary != "periodic":
        xp, pixels, h = _pad(x, h, boundary, padding)
        out = mesh_free_filter(xp, tau, alpha, gamma, h, validate=validate, fft_path=fft_path)
        return _crop(out, pixels)
    fft_path = DEFAULT_FFT_PATH if fft_path is None else fft_path
    if fft_path not in FFT_PATHS:
        raise ValueError(f"fft_path must be one of {FFT_PATHS}, got {fft_path!r}")
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
    if fft_path == "packed":
        return _packed_filter(x.to(real_dtype), symbol).to(x.dtype)
    x_hat = torch.fft.rfft2(x.to(real_dtype))
    return torch.fft.irfft2(x_hat * symbol, s=(height, width)).to(x.dtype)


def pad_pixels(width: int, h: float | None, padding: float) -> int:
    """Pixels of a physical pad `padding` on a mesh of spacing h (None: 1/width): ceil(padding / h)."""
    spacing = 1.0 / width if h is None else float(h)
    return max(1, math.ceil(padding / spacing - 1e-9))


def _pad(x: torch.Tensor, h: float | None, boundary: str, padding: float) -> tuple[torch.Tensor, int, float]:
    """x padded by `padding` physical units per side, the pixel count, and the spacing to filter with:
    the unpadded mesh's (the padded image is a larger physical domain, not a finer mesh).

    "zero" pads zeros; "reflect" mirrors about the domain's edge, which lies half a pixel beyond the
    outer pixel centres (the edge pixel is repeated, numpy's "symmetric"): the mirror that restricts
    consistently by average pooling. torch's own "reflect" mirrors about the edge pixel's centre, a
    boundary that moves with h."""
    if not padding > 0:
        raise ValueError(f"padding must be > 0 for boundary={boundary!r}, got {padding}")
    height, width = x.shape[-2:]
    spacing = 1.0 / width if h is None else float(h)
    pixels = pad_pixels(width, spacing, padding)
    if boundary == "zero":
        return F.pad(x, (pixels,) * 4), pixels, spacing
    if pixels > min(height, width):
        raise ValueError(f"boundary='reflect' needs a pad ({pixels} pixels) no larger than the image "
                         f"({height}x{width}): lower padding or use boundary='zero'")
    x = torch.cat((x[..., :pixels].flip(-1), x, x[..., -pixels:].flip(-1)), dim=-1)
    x = torch.cat((x[..., :pixels, :].flip(-2), x, x[..., -pixels:, :].flip(-2)), dim=-2)
    return x, pixels, spacing


def _crop(y: torch.Tensor, pixels: int) -> torch.Tensor:
    return y[..., pixels:-pixels, pixels:-pixels] if pixels else y


# ---------------------------------------------------------------------------------------------
# Packed path: two real channel planes a, b as one complex plane z = a + i b.
def _full_grid_symbol(s_half: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """The full fft2-grid symbol (C, H, W) that irfft2(rfft2(x) * s_half) applies.

    irfft2 keeps only the Hermitian part of the self-conjugate columns (kx = 0 and, for even W,
    the Nyquist column), i.e. S_eff(l) = (S(l) + conj(S(-l))) / 2 there; the columns with kx < 0
    are conj(S(-l, -m)). The result is Hermitian, S(-k) = conj(S(k)): a real kernel.
    """
    rev_h = (-torch.arange(height, device=s_half.device)) % height
    last = width // 2

    def hermitian(col):
        return ((col + col[:, rev_h].conj()) / 2)[..., None]

    cols = [hermitian(s_half[..., 0]), s_half[..., 1:last + (width % 2)]]
    if width % 2 == 0:
        cols.append(hermitian(s_half[..., last]))
    cols.append(s_half[..., 1:width - last].flip(-1)[:, rev_h].conj())
    return torch.cat(cols, dim=-1)


def _reverse(z: torch.Tensor) -> torch.Tensor:
    """z(-k) on an fft grid (last two axes): index i -> (-i) mod n."""
    out = torch.empty_like(z)
    out[..., 1:, 1:] = z[..., 1:, 1:].flip(-2, -1)
    out[..., 0, 1:] = z[..., 0, 1:].flip(-1)
    out[..., 1:, 0] = z[..., 1:, 0].flip(-1)
    out[..., 0, 0] = z[..., 0, 0]
    return out


def _pack(y: torch.Tensor) -> torch.Tensor:
    b, c, height, width = y.shape
    return torch.view_as_complex(y.reshape(b, c // 2, 2, height, width).permute(0, 1, 3, 4, 2).contiguous())


def _unpack(z: torch.Tensor) -> torch.Tensor:
    b, pairs, height, width = z.shape
    return torch.view_as_real(z).permute(0, 1, 4, 2, 3).reshape(b, 2 * pairs, height, width).contiguous()


def _packed_apply(zh: torch.Tensor, p: torch.Tensor, m: torch.Tensor):
    """ifft2(P Z + M conj(Z(-k))) and conj(Z(-k))."""
    zr = _reverse(zh).conj_physical_()
    w = zr * m
    w.addcmul_(zh, p)
    return torch.fft.ifft2(w), zr


class _PackedFilter(torch.autograd.Function):
    """out = per-channel filter of y (B, 2P, H, W) with full-grid Hermitian symbols s (2P, H, W).

    With Z = fft2(a + i b), A = (Z + conj(Z(-k)))/2 and B = (Z - conj(Z(-k)))/(2i), so
    S_a A + i S_b B = P Z + M conj(Z(-k)) with P = (S_a + S_b)/2, M = (S_a - S_b)/2, and one ifft2
    returns filtered a and b as its real and imaginary parts. Backward is the same map with
    (conj P, M(-k)) applied to fft2(g_a + i g_b); the symbol gradient is sum_b G conj(Z) / N split
    back by the same Hermitian identity. Four complex transforms of half the planes in all.
    """

    @staticmethod
    def forward(ctx, y, s):
        sa, sb = s[0::2], s[1::2]
        p, m = (sa + sb) / 2, (sa - sb) / 2
        zh = torch.fft.fft2(_pack(y))
        w, zr = _packed_apply(zh, p, m)
        ctx.save_for_backward(zh, zr, p, m)
        return _unpack(w)

    @staticmethod
    def backward(ctx, grad_out):
        zh, zr, p, m = ctx.saved_tensors
        gz = torch.fft.fft2(_pack(grad_out))
        grad_y = grad_s = None
        if ctx.needs_input_grad[0]:
            grad_y = _unpack(_packed_apply(gz, p.conj().resolve_conj(), _reverse(m))[0])
        if ctx.needs_input_grad[1]:
            scale = 2 * zh.shape[-1] * zh.shape[-2]
            gp = torch.linalg.vecdot(zh, gz, dim=0)  # sum_b G conj(Z)
            gm = torch.linalg.vecdot(zr, gz, dim=0)  # sum_b G Z(-k)
            grad_s = torch.stack(((gp + gm) / scale, (gp - gm) / scale), dim=1).reshape(-1, *gp.shape[1:])
        return grad_y, grad_s


def _packed_filter(x: torch.Tensor, s_half: torch.Tensor) -> torch.Tensor:
    """The rfft path's filter computed with complex transforms of channel pairs (odd C: a zero plane)."""
    batch, channels, height, width = x.shape
    s = _full_grid_symbol(s_half, height, width)
    if channels % 2:
        x = torch.cat((x, x.new_zeros(batch, 1, height, width)), 1)
        s = torch.cat((s, s[-1:]), 0)
    out = _PackedFilter.apply(x, s)
    return out[:, :channels] if channels % 2 else out


class MeshFreeConv2d(nn.Module):
    """Mesh-free convolution layer: a drop-in for `nn.Conv2d(in, out, k, padding=k // 2)` whose kernels
    are parabolic-PDE filters defined in physical units, so one set of weights is the same operator on
    every mesh (the property multiscale training relies on). Input (B, in_channels, H, W) with any H, W;
    output (B, out_channels, H, W).

    in_channels, out_channels: channels in and out.
    mixing: "pointwise" (default) = a trainable 1x1 convolution in->out, then one 7-parameter filter
        per output channel; cost O(C n log n). "full" = 7 parameters per (input, output) channel pair
        (the count Table 13's MFC models imply); computed as rfft2 of the inputs, a per-frequency
        channel contraction, and irfft2 of the outputs, so there is no FFT per pair: cost
        (Cin + Cout) n log n + Cin Cout n.
    bias: add a trainable per-output-channel bias.
    h: the mesh spacing in physical units. None (default) = 1/W of each input: the image always spans
        the unit width, so its W/2 restriction is filtered with h = 2/W and the layer applies the same
        continuous operator on both meshes. Give a number only when the physical size of a pixel is
        fixed (e.g. crops of a larger scene): then a bigger input is a bigger domain, not a finer mesh.
    init_resolution, init_width: kernels start as Gaussians init_width = (lo, hi) pixels wide (std,
        drawn uniformly) on a mesh of init_resolution pixels, i.e. local like a learned 3x3-7x7 kernel;
        set init_resolution to your training image size.
    fft_path: pointwise only: "rfft", "packed" (two channels per complex FFT) or None (DEFAULT_FFT_PATH).
    boundary: "periodic" (default: the paper's FFT; an impulse at one edge also appears at the
        opposite edge), "zero" or "reflect": pad `padding` physical units per side (ceil(padding / h)
        pixels, so the pad scales with the mesh), filter periodically, crop. A Gaussian kernel wider
        than about twice the pad still reaches the far side.
    padding: the physical pad per side for zero/reflect (default 0.125 of the unit width).

    Parameters are unconstrained: tau = exp(log_tau) > 0 and alpha = L L^T with a Cholesky factor
    whose diagonal is exp(.), so alpha is symmetric positive definite by construction.

    Speed: with mixing="full", wrap the forward *and* backward of each optimizer step in your own loop
    in `with symbol_cache():` (leave it before optimizer.step()): the per-pair symbol is then built once
    per step and sliced for the coarser meshes of a multiscale loss, instead of once per call.
    `mfcbench.fit` and the harness do this for you; pointwise mixing gains nothing from it.
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
        fft_path: str | None = None,
        boundary: str = "periodic",
        padding: float = DEFAULT_PADDING,
    ):
        super().__init__()
        if mixing not in ("pointwise", "full"):
            raise ValueError(f"mixing must be 'pointwise' or 'full', got {mixing!r}")
        if boundary not in BOUNDARIES:
            raise ValueError(f"boundary must be one of {BOUNDARIES}, got {boundary!r}")
        self.in_channels, self.out_channels, self.mixing, self.h = in_channels, out_channels, mixing, h
        self.boundary, self.padding = boundary, float(padding)
        shape = (out_channels,) if mixing == "pointwise" else (out_channels, in_channels)
        self.log_tau = nn.Parameter(torch.empty(shape))
        self.chol = nn.Parameter(torch.empty(*shape, 3))  # (log l11, l21, log l22)
        self.gamma = nn.Parameter(torch.empty(*shape, 3))
        self.mix = nn.Conv2d(in_channels, out_channels, 1, bias=False) if mixing == "pointwise" else None
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        self.init_resolution, self.init_width = init_resolution, init_width
        self.fft_path = fft_path  # pointwise only: "rfft", "packed" or None (DEFAULT_FFT_PATH)
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
        """Diffusion times exp(log_tau), shape (out,) or (out, in)."""
        return torch.exp(self.log_tau)

    def alpha(self) -> torch.Tensor:
        """Diffusion tensors (axx, axy, ayy) = L L^T, shape (..., 3), positive definite."""
        l11, l21, l22 = torch.exp(self.chol[..., 0]), self.chol[..., 1], torch.exp(self.chol[..., 2])
        return torch.stack((l11 * l11, l11 * l21, l21 * l21 + l22 * l22), dim=-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.mixing == "pointwise":
            out = mesh_free_filter(self.mix(x), self.tau(), self.alpha(), self.gamma, self.h, validate=False,
                                   fft_path=self.fft_path, boundary=self.boundary, padding=self.padding)
        else:
            out = self._full(x)
        if self.bias is not None:
            out = out + self.bias[None, :, None, None]
        return out

    def _full(self, x: torch.Tensor) -> torch.Tensor:
        h, pixels = self.h, 0
        if self.boundary != "periodic":
            x, pixels, h = _pad(x, h, self.boundary, self.padding)
        height, width = x.shape[-2:]
        ky, kx = wavenumbers(height, width, h, device=x.device, dtype=x.dtype)
        x_hat = torch.fft.rfft2(x)  # (B, Ci, H, Wr)
        tau, alpha = self.tau(), self.alpha()
        cached = _ACTIVE_CACHES[-1].lookup(self, tau, alpha, ky, kx) if _ACTIVE_CACHES else None
        y_hat = _PairwiseSymbolContraction.apply(x_hat, tau, alpha, self.gamma, ky, kx, cached)
        return _crop(torch.fft.irfft2(y_hat, s=(height, width)), pixels)

    def extra_repr(self) -> str:
        extra = "" if self.boundary == "periodic" else f", boundary={self.boundary!r}, padding={self.padding:g}"
        return f"{self.in_channels}, {self.out_channels}, mixing={self.mixing!r}, bias={self.bias is not None}{extra}"


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


def _chunk_symbol(t, a, g, basis, rows, cached):
    """(decay, odd) for a chunk of frequencies: rows of the cached tables, else built now."""
    if cached is not None:
        return cached[0][rows], cached[1][rows]
    return _pair_symbol(t, a, g, _chunk_basis(basis, rows))


# ---------------------------------------------------------------------------------------------
# Step-scoped symbol cache for full mixing.
_ACTIVE_CACHES: list["_SymbolCache"] = []


def _build_pair_symbol(tau, alpha, gamma, ky, kx):
    """(decay, odd), each (F, P) frequency-major, for the whole mesh (built chunk by chunk)."""
    basis = _frequency_basis(ky, kx)
    t, a, g = tau.reshape(-1), alpha.reshape(-1, 3), gamma.reshape(-1, 3)
    num_freqs = basis["quad"].shape[0]
    decay = torch.empty(num_freqs, t.numel(), dtype=t.dtype, device=t.device)
    odd = torch.empty_like(decay)
    for rows in _frequency_chunks(num_freqs, t.numel()):
        decay[rows], odd[rows] = _pair_symbol(t, a, g, _chunk_basis(basis, rows))
    return decay, odd


def _match(coarse: torch.Tensor, fine: torch.Tensor):
    """Indices i with fine[i] == coarse[j] for every j (physical wavenumbers), or None."""
    coarse, fine = coarse.reshape(-1).double(), fine.reshape(-1).double()
    diff = (coarse[:, None] - fine[None, :]).abs()
    best = diff.min(dim=1)
    if bool((best.values > 1e-6 * (1.0 + coarse.abs())).any()):
        return None
    return best.indices


class _SymbolCache:
    """Per layer: the full-mixing (decay, odd) tables of the meshes met inside one step.

    With physical wavenumbers a coarse mesh samples a subset of a finer mesh's frequencies
    (n/2 x n/2 inside n x n: modes |m| <= n/4, the rfft column kx = +n/4 included), so its
    tables are rows of the finer ones. A call first looks for a cached mesh containing its
    frequencies (any sizes, odd included: the match is on wavenumber values), slices the rows and
    keeps the slice; failing that it builds its own tables if they fit the byte budget, else
    returns None (the uncached chunked path). Tables are detached: gradients still come from
    _PairwiseSymbolContraction's own backward. A parameter change (version counter) drops the entry.
    """

    def __init__(self, max_bytes: int):
        self.max_bytes, self.used, self.entries = max_bytes, 0, {}

    def lookup(self, layer, tau, alpha, ky, kx):
        params = (layer.log_tau, layer.chol, layer.gamma)
        version = tuple((p._version, p.data_ptr()) for p in params)
        entry = self.entries.get(id(layer))
        if entry is None or entry["version"] != version:
            if entry is not None:
                self.used -= sum(d.numel() * 2 * d.element_size() for _, _, d, _ in entry["grids"])
            entry = self.entries[id(layer)] = {"version": version, "grids": [], "layer": layer}
        found = self._slice(entry, ky, kx)
        if found is not None:
            return found
        nbytes = ky.shape[0] * kx.shape[1] * tau.numel() * 2 * tau.element_size()
        if self.used + nbytes > self.max_bytes:
            return None
        with torch.no_grad():
            tables = _build_pair_symbol(tau.detach(), alpha.detach(), layer.gamma.detach(), ky, kx)
        self._store(entry, ky, kx, tables)
        return tables

    def _slice(self, entry, ky, kx):
        for fky, fkx, decay, odd in sorted(entry["grids"], key=lambda grid: grid[2].shape[0]):
            if fky.numel() == ky.numel() and fkx.numel() == kx.numel() and torch.equal(fky, ky) and torch.equal(fkx, kx):
                return decay, odd
            iy, ix = _match(ky, fky), _match(kx, fkx)
            if iy is None or ix is None:
                continue
            rows = (iy[:, None] * fkx.numel() + ix[None, :]).reshape(-1).to(decay.device)
            tables = decay.index_select(0, rows), odd.index_select(0, rows)
            if self.used + 2 * tables[0].numel() * tables[0].element_size() <= self.max_bytes:
                self._store(entry, ky, kx, tables)
            return tables
        return None

    def _store(self, entry, ky, kx, tables):
        entry["grids"].append((ky, kx, *tables))
        self.used += 2 * tables[0].numel() * tables[0].element_size()


@contextlib.contextmanager
def symbol_cache(max_bytes: int = 6 << 30):
    """Share full-mixing symbol tables between the model calls of one optimizer step.

    Enter it around forward *and* backward of one step (e.g. the telescoping Multiscale-SGD loss
    and its .backward()), and leave it before optimizer.step(). Outside it nothing is cached.
    `max_bytes` bounds the tables kept (8 bytes per (frequency, channel pair) in float32): at the
    Table 15 setting a 128x128-channel layer needs 1.09 GB at 128^2 and 4.3 GB at 256^2.
    """
    cache = _SymbolCache(max_bytes)
    _ACTIVE_CACHES.append(cache)
    try:
        yield cache
    finally:
        _ACTIVE_CACHES.remove(cache)
        cache.entries.clear()


class _PairwiseSymbolContraction(torch.autograd.Function):
    """y_hat[b, o, f] = sum_i S[o, i, f] x_hat[b, i, f] with S the MFC symbol of pair (o, i).

    Autograd through the symbol would keep half a dozen (Cout, Cin, F) temporaries and reduce
    each of them; here the symbol is never stored: it is built frequency-major, a chunk of
    frequencies at a time (bounded memory at any mesh), in forward and again in backward, and the
    7 parameter gradients come from one complex batched matmul plus small real matmuls against
    frequency monomials: dL/dp = sum_f Re(conj(G) dS/dp) with G = grad_y x_hat^H per frequency.
    """

    @staticmethod
    def forward(ctx, x_hat, tau, alpha, gamma, ky, kx, cached=None):
        cout, cin = tau.shape
        batch, _, height, wr = x_hat.shape
        basis = _frequency_basis(ky, kx)
        t, a, g = tau.reshape(-1), alpha.reshape(-1, 3), gamma.reshape(-1, 3)
        xf = x_hat.reshape(batch, cin, -1).permute(2, 1, 0).contiguous()  # (F, Ci, B)
        y = torch.empty(xf.shape[0], cout, batch, dtype=x_hat.dtype, device=x_hat.device)
        for rows in _frequency_chunks(xf.shape[0], t.numel()):
            decay, odd = _chunk_symbol(t, a, g, basis, rows, cached)
            symbol = _complex_symbol(g[:, 0], decay, odd).reshape(-1, cout, cin)  # (f, Co, Ci)
            torch.matmul(symbol, xf[rows], out=y[rows])
        ctx.save_for_backward(x_hat, tau, alpha, gamma, ky, kx)
        ctx.cached = cached
        return y.permute(2, 1, 0).reshape(batch, cout, height, wr)

    @staticmethod
    def backward(ctx, grad_y):
        x_hat, tau, alpha, gamma, ky, kx = ctx.saved_tensors
        cout, cin = tau.shape
        batch, _, height, wr = x_hat.shape
        basis = _frequency_basis(ky, kx)
        t, a, g = tau.reshape(-1), alpha.reshape(-1, 3), gamma.reshape(-1, 3)
        gy = grad_y.reshape(batch, cout, -1).permute(2, 1, 0).contiguous()  # (F, Co, B)
        # (F, B, Ci) dense per frequency: a strided x^H (stride F between channels) made the small-batch
        # grad_y x^H bmm 5-10x slower (measured at B3 64^2, 128x128 pairs: 4.5 s -> 0.45 s)
        xh = x_hat.reshape(batch, cin, -1).permute(2, 0, 1).contiguous().conj_physical_()
        want_x = ctx.needs_input_grad[0]
        grad_x = torch.empty(gy.shape[0], cin, batch, dtype=gy.dtype, device=gy.device) if want_x else None
        sums = torch.zeros(6, t.numel(), dtype=t.dtype, device=t.device)  # gamma (3) and quadratic (3) moments
        for rows in _frequency_chunks(gy.shape[0], t.numel()):
            chunk = _chunk_basis(basis, rows)
            decay, odd = _chunk_symbol(t, a, g, basis, rows, ctx.cached)
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
                sums[:3].T.reshape(cout, cin, 3), None, None, None)
