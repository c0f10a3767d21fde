"""The mesh-free convolution layer `MeshFreeConv2d` (paper Section 3.1-3.2).

Its filters are `functional.py`'s mesh-free filter: parabolic-PDE filters in physical units, so one
set of weights is the same operator on every mesh. Pointwise mixing filters each output channel of a
1x1 channel map (`mesh_free_filter`); full mixing filters every channel pair (`full.py`, with its
step-scoped `symbol_cache`). Boundaries other than periodic pad by a physical width (`padding.py`).

`MeshFreeConv2d(in_channels, out_channels)` takes every other option by keyword. The arguments of
`nn.Conv2d` that an MFC has no use for (a kernel size, stride, pixel padding, groups, dilation) raise
a TypeError of one line naming what the MFC has instead.
"""

from __future__ import annotations

import inspect
import math

import torch
from torch import nn

from .full import full_mixing
from .functional import FFT_PATHS, mesh_free_filter, wavenumbers
from .padding import BOUNDARIES, DEFAULT_PAD_WIDTH, crop, pad

__all__ = ["MeshFreeConv2d"]

_MIXINGS = ("pointwise", "full")
# nn.Conv2d's arguments after (in_channels, out_channels), in its positional order, and what an MFC has instead
_CONV_ARGUMENTS = {
    "kernel_size": "its filter is a PDE operator with learned tau/alpha, the same on every mesh",
    "stride": "its output keeps H x W: downsample after it, e.g. mfcbench.restrict(y, 1)",
    "padding": ("its output keeps H x W, and non-periodic edges are boundary='zero' or 'reflect' padded by "
                "pad_width, a physical width in units of the image width"),
    "dilation": "the reach of its filter is learned, in physical units",
    "groups": "channels mix by mixing='pointwise' or mixing='full'",
    "bias": None,  # a real option: only its positional use is refused
    "padding_mode": "its edges are boundary='periodic', 'zero' or 'reflect'",
}


def _conv_style_error(in_channels, out_channels, args: tuple, options: dict, kept: dict) -> TypeError:
    """One line: the conv-style arguments an MFC has no use for, what it has instead, and the call to write."""
    call = ", ".join([repr(in_channels), repr(out_channels), *map(repr, args),
                      *(f"{k}={v!r}" for k, v in options.items())])
    if args and isinstance(args[0], str):  # an option given positionally, e.g. MeshFreeConv2d(3, 4, "full")
        word = next((name for name, choices in (("mixing", _MIXINGS), ("boundary", BOUNDARIES), ("fft_path", FFT_PATHS))
                     if args[0] in choices), "<option>")
        kept, problem = {word: args[0], **kept}, "options after out_channels are keyword-only"
    else:
        named = {**dict(zip(_CONV_ARGUMENTS, args)), **options}
        if "bias" in named and "bias" not in options:
            kept = {**kept, "bias": named["bias"]}
        if isinstance(named.get("padding"), float):  # a physical width meant: it is pad_width
            kept = {**kept, "pad_width": named["padding"]}
        problem = "an MFC has " + " and ".join(f"no {name} ({_CONV_ARGUMENTS[name]})" for name in named
                                               if _CONV_ARGUMENTS.get(name))
    fix = ", ".join([repr(in_channels), repr(out_channels), *(f"{k}={v!r}" for k, v in kept.items())])
    return TypeError(f"MeshFreeConv2d({call}): {problem}; write MeshFreeConv2d({fix})")


class MeshFreeConv2d(nn.Module):
    """Mesh-free convolution layer: a drop-in for `nn.Conv2d(in, out, k, padding=k // 2)` whose kernels
    are parabolic-PDE filters defined in physical units, so one set of weights is the same operator on
    every mesh (the property multiscale training relies on). Input (B, in_channels, H, W) with any H, W;
    output (B, out_channels, H, W). `MeshFreeConv2d(16, 32)` replaces `nn.Conv2d(16, 32, 3, padding=1)`:
    a kernel size, stride, pixel padding, groups or dilation raise a TypeError saying what to write.

    in_channels, out_channels: channels in and out (positional; every other option is keyword-only).
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
        opposite edge), "zero" or "reflect": pad `pad_width` physical units per side (ceil(pad_width / h)
        pixels, so the pad scales with the mesh), filter periodically, crop. A Gaussian kernel wider
        than about twice the pad still reaches the far side.
    pad_width: the physical pad per side for zero/reflect (default 0.125 of the unit width).
    conv_args, conv_options: what nn.Conv2d takes beyond its channels (kernel_size, stride, padding in
        pixels, dilation, groups, padding_mode) and an option given positionally are refused: a TypeError
        of one line names what an MFC has instead and the call to write.

    Parameters are unconstrained: tau = exp(log_tau) > 0 and alpha = L L^T with a Cholesky factor
    whose diagonal is exp(.), so alpha is symmetric positive definite by construction.

    Speed: with mixing="full", wrap the forward *and* backward of each optimizer step in your own loop
    in `with symbol_cache():` (leave it before optimizer.step()): the per-pair symbol is then built once
    per step and sliced for the coarser meshes of a multiscale loss, instead of once per call.
    `mfcbench.fit` and the harness do this for you; pointwise mixing gains nothing from it.
    """

    def __init__(self, in_channels: int, out_channels: int, *conv_args, mixing: str = "pointwise", bias: bool = True,
                 h: float | None = None, init_resolution: int = 64, init_width: tuple[float, float] = (0.5, 1.5),
                 fft_path: str | None = None, boundary: str = "periodic", pad_width: float = DEFAULT_PAD_WIDTH,
                 **conv_options):
        super().__init__()
        if conv_args or set(conv_options) & set(_CONV_ARGUMENTS):
            given = {"mixing": mixing, "bias": bias, "h": h, "init_resolution": init_resolution,
                     "init_width": init_width, "fft_path": fft_path, "boundary": boundary, "pad_width": pad_width}
            kept = {k: v for k, v in given.items() if v != _DEFAULTS[k]}
            raise _conv_style_error(in_channels, out_channels, conv_args, conv_options, kept)
        if conv_options:
            raise TypeError(f"MeshFreeConv2d got unexpected keyword arguments {sorted(conv_options)}; "
                            f"its options: {', '.join(_DEFAULTS)}")
        if mixing not in _MIXINGS:
            raise ValueError(f"mixing must be 'pointwise' or 'full', got {mixing!r}")
        if boundary not in BOUNDARIES:
            raise ValueError(f"boundary must be one of {BOUNDARIES}, got {boundary!r}")
        self.in_channels, self.out_channels, self.mixing, self.h = in_channels, out_channels, mixing, h
        self.boundary, self.pad_width = boundary, float(pad_width)
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
                                   fft_path=self.fft_path, boundary=self.boundary, pad_width=self.pad_width)
        else:
            out = self._full(x)
        if self.bias is not None:
            out = out + self.bias[None, :, None, None]
        return out

    def _full(self, x: torch.Tensor) -> torch.Tensor:
        h, pixels = self.h, 0
        if self.boundary != "periodic":
            x, pixels, h = pad(x, h, self.boundary, self.pad_width)
        height, width = x.shape[-2:]
        ky, kx = wavenumbers(height, width, h, device=x.device, dtype=x.dtype)
        x_hat = torch.fft.rfft2(x)  # (B, Ci, H, Wr)
        return crop(torch.fft.irfft2(full_mixing(self, x_hat, ky, kx), s=(height, width)), pixels)

    def extra_repr(self) -> str:
        extra = "" if self.boundary == "periodic" else f", boundary={self.boundary!r}, pad_width={self.pad_width:g}"
        return f"{self.in_channels}, {self.out_channels}, mixing={self.mixing!r}, bias={self.bias is not None}{extra}"


# The keyword options' defaults, read from the signature: the conv-style error repeats only the options
# a caller changed.
_DEFAULTS = {name: parameter.default for name, parameter in
             inspect.signature(MeshFreeConv2d.__init__).parameters.items()
             if parameter.kind is parameter.KEYWORD_ONLY}
