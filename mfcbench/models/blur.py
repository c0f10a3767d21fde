"""Blur-estimation models (Section 5, Table 3): recover a blur kernel as one linear layer.

`blur_conv` is a 7x7 conv (49 weights, no bias, circular padding so it commutes with the periodic
blur); `blur_mfc` is one full-mixing MFC without bias (7 parameters for 1 -> 1 channel).
"""

from __future__ import annotations

from torch import nn

from ..layers import MeshFreeConv2d
from . import MODELS
from .common import reject_cond


class LinearBlur(nn.Module):
    size_divisor = 1
    upscale = 1

    def __init__(self, layer: nn.Module):
        super().__init__()
        self.layer = layer

    def forward(self, x, cond=None):
        return self.layer(x)


def _check(name: str, cond: bool, upscale: int) -> None:
    reject_cond(name, cond)
    if upscale != 1:
        raise ValueError(f"model {name!r}: upscale must be 1, got {upscale}")


@MODELS.register("blur_conv")
def blur_conv(in_channels=1, out_channels=1, *, cond=False, upscale=1, kernel_size=7):
    """Table 3's convolution: one 7x7 conv (49 weights, no bias, circular padding) as the blur kernel."""
    _check("blur_conv", cond, upscale)
    if kernel_size % 2 != 1:
        raise ValueError(f"kernel_size must be odd, got {kernel_size}")
    conv = nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2, padding_mode="circular", bias=False)
    return LinearBlur(conv)


@MODELS.register("blur_mfc")
def blur_mfc(in_channels=1, out_channels=1, *, cond=False, upscale=1, init_resolution=64):
    """Table 3's MFC: one full-mixing mesh-free convolution without bias (7 parameters) as the blur kernel."""
    _check("blur_mfc", cond, upscale)
    return LinearBlur(MeshFreeConv2d(in_channels, out_channels, mixing="full", bias=False, init_resolution=init_resolution))
