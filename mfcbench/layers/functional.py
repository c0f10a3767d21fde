"""The mesh-free filter as a function (paper Section 3.1-3.2, Eq. 18-21, App. A).

An MFC is a parabolic-PDE filter: solve v_t = L(alpha) v for time tau from the input, then apply
(gamma0 + gamma . grad). Its Fourier symbol on the unit square is

    S(k) = (g0 + i kx gx + i ky gy) * exp(-tau (axx kx^2 + 2 axy kx ky + ayy ky^2)),

with k in physical units (2*pi*m for mode m when the mesh spacing is h = 1/n). Because k is
physical, one set of parameters is one continuous operator, whatever the mesh it is sampled on.

Boundaries: the FFT makes the filter periodic; `boundary="zero"` or `"reflect"` pads by a physical
width, filters and crops (`padding.py`). The transforms: rfft2/irfft2, or two channels per complex
transform (`packed.py`).
"""

from __future__ import annotations

import functools
import math

import torch

from .packed import packed_filter
from .padding import BOUNDARIES, DEFAULT_PAD_WIDTH, crop, pad

__all__ = ["DEFAULT_FFT_PATH", "FFT_PATHS", "mesh_free_filter", "mesh_free_symbol", "wavenumbers"]

FFT_PATHS = ("rfft", "packed")
# The default is the plain rfft2/irfft2 path. "packed" gives the same filter to rounding; make it a
# layer's fft_path where `measure bench`'s packed_fft comparison shows it faster on the device at hand.
DEFAULT_FFT_PATH = "rfft"


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


def _check_shapes(x: torch.Tensor, tau, alpha, gamma) -> None:
    if x.dim() != 4:
        raise ValueError(f"mesh_free_filter expects (B, C, H, W), got shape {tuple(x.shape)}")
    channels = x.shape[1]
    for name, value, shape in (("tau", tau, (channels,)), ("alpha", alpha, (channels, 3)),
                               ("gamma", gamma, (channels, 3))):
        if tuple(value.shape) != shape:
            raise ValueError(f"mesh_free_filter: {name} must have shape {shape}, got {tuple(value.shape)}")


def mesh_free_filter(x: torch.Tensor, tau, alpha, gamma, h: float | None = None, *, validate: bool = True,
                     fft_path: str | None = None, boundary: str = "periodic", pad_width: float = DEFAULT_PAD_WIDTH):
    """Apply one MFC filter per channel to x of shape (B, C, H, W).

    x: the images; x is the width axis (last), y the height axis.
    tau (C,): diffusion time, > 0. alpha (C, 3): (axx, axy, ayy), elliptic (axx > 0, axx*ayy > axy^2).
    gamma (C, 3): (g0, gx, gy), the weights of the identity and the two first derivatives.
    h: mesh spacing in physical units on both axes; None (default) = 1/W, i.e. the image spans the
        unit width whatever its pixel count, so a restricted copy (W/2 pixels) gets h = 2/W and the
        same parameters give the same continuous operator. Give h when a mesh is not the whole domain.
    validate: raise ValueError for tau <= 0 or a non-elliptic alpha (the layer passes False because its
        parametrization guarantees validity and a check would force a device sync).
    fft_path: "rfft" (rfft2/irfft2) or "packed" (two channels per complex fft2/ifft2, `packed.py`);
        both give the same filter to rounding. None means DEFAULT_FFT_PATH.
    boundary: "periodic" (default; the FFT's own wrap-around), "zero" or "reflect" (pad, filter, crop;
        reflect mirrors about the domain edge, half a pixel beyond the outer pixel centres).
    pad_width: for zero/reflect, the pad on each side in physical units (default 0.125 of the unit
        width: ceil(pad_width / h) pixels). A kernel wider than twice the pad still wraps partly.
    """
    if boundary not in BOUNDARIES:
        raise ValueError(f"boundary must be one of {BOUNDARIES}, got {boundary!r}")
    if boundary != "periodic":
        xp, pixels, h = pad(x, h, boundary, pad_width)
        out = mesh_free_filter(xp, tau, alpha, gamma, h, validate=validate, fft_path=fft_path)
        return crop(out, pixels)
    fft_path = DEFAULT_FFT_PATH if fft_path is None else fft_path
    if fft_path not in FFT_PATHS:
        raise ValueError(f"fft_path must be one of {FFT_PATHS}, got {fft_path!r}")
    _check_shapes(x, tau, alpha, gamma)
    if validate:
        _check_parameters(tau, alpha)
    height, width = x.shape[-2:]
    real_dtype = x.dtype if x.dtype in (torch.float32, torch.float64) else torch.float32
    ky, kx = wavenumbers(height, width, h, device=x.device, dtype=real_dtype)
    symbol = mesh_free_symbol(tau.to(real_dtype), alpha.to(real_dtype), gamma.to(real_dtype), ky, kx)
    if fft_path == "packed":
        return packed_filter(x.to(real_dtype), symbol).to(x.dtype)
    x_hat = torch.fft.rfft2(x.to(real_dtype))
    return torch.fft.irfft2(x_hat * symbol, s=(height, width)).to(x.dtype)
