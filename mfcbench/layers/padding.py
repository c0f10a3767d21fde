"""Boundaries of a mesh-free convolution: pad by a physical width, filter periodically, crop.

The FFT makes an MFC periodic (what leaves one edge enters at the opposite one). `boundary="zero"`
or `"reflect"` pads the image by a fixed *physical* width (`pad_width`, in units of the domain
width), so the padded pixel count scales with 1/h and the operator stays mesh-free; the padded image
is a larger physical domain on the same mesh, filtered periodically and cropped back.
"""

from __future__ import annotations

import math

import torch
from torch.nn import functional as F

__all__ = ["BOUNDARIES", "DEFAULT_PAD_WIDTH", "crop", "pad", "pad_pixels"]

BOUNDARIES = ("periodic", "zero", "reflect")
DEFAULT_PAD_WIDTH = 0.125  # physical pad on each side for zero/reflect, in units of the domain width


def pad_pixels(width: int, h: float | None, pad_width: float) -> int:
    """Pixels of a physical pad `pad_width` on a mesh of spacing h (None: 1/width): ceil(pad_width / h)."""
    spacing = 1.0 / width if h is None else float(h)
    return max(1, math.ceil(pad_width / spacing - 1e-9))


def pad(x: torch.Tensor, h: float | None, boundary: str, pad_width: float) -> tuple[torch.Tensor, int, float]:
    """x padded by `pad_width` physical units per side, the pixel count, and the spacing to filter
    with: the unpadded mesh's (the padded image is a larger physical domain, not a finer mesh).

    "zero" pads zeros; "reflect" mirrors about the domain's edge, which lies half a pixel beyond the
    outer pixel centres (the edge pixel is repeated, numpy's "symmetric"): the mirror that restricts
    consistently by average pooling. torch's own "reflect" mirrors about the edge pixel's centre, a
    boundary that moves with h."""
    if not pad_width > 0:
        raise ValueError(f"pad_width must be > 0 for boundary={boundary!r}, got {pad_width}")
    height, width = x.shape[-2:]
    spacing = 1.0 / width if h is None else float(h)
    pixels = pad_pixels(width, spacing, pad_width)
    if boundary == "zero":
        return F.pad(x, (pixels,) * 4), pixels, spacing
    if pixels > min(height, width):
        raise ValueError(f"boundary='reflect' needs a pad ({pixels} pixels) no larger than the image "
                         f"({height}x{width}): lower pad_width or use boundary='zero'")
    x = torch.cat((x[..., :pixels].flip(-1), x, x[..., -pixels:].flip(-1)), dim=-1)
    x = torch.cat((x[..., :pixels, :].flip(-2), x, x[..., -pixels:, :].flip(-2)), dim=-2)
    return x, pixels, spacing


def crop(y: torch.Tensor, pixels: int) -> torch.Tensor:
    """The image inside a pad of `pixels` per side (y itself when there is no pad)."""
    return y[..., pixels:-pixels, pixels:-pixels] if pixels else y
