"""Super-resolution models (Tables 5, 8, 14): ESPCN, SRResNet, and their MFC / FNO versions.

They take the low-resolution image and return `upscale` times larger output through a pixel
shuffle (Shi et al. 2016), so every conv runs on the coarse mesh; upscale=1 gives the same network
for an input that is already upsampled. SR models default to upscale=2 (the paper's factor).
MFC versions default to mixing="pointwise" (a 1x1 channel map then one PDE filter per output
channel, the structure of Lemma 4 and the cheaper one, App. D.3); `mixing="full"` is an option.
"""

from __future__ import annotations

from typing import Callable

from torch import nn

from ..core.optional import require
from . import MODELS
from .common import reject_cond, scaled
from .convert import to_mfc


def _conv(cin: int, cout: int, k: int) -> nn.Module:
    return nn.Conv2d(cin, cout, k, padding=k // 2)


class ESPCN(nn.Module):
    """conv5x5 64 -> tanh -> conv3x3 32 -> tanh -> conv3x3 out*r^2 -> PixelShuffle(r), linear output."""

    size_divisor = 1

    def __init__(self, in_channels, out_channels, upscale=2, width=1.0, layer: Callable[[int, int, int], nn.Module] = _conv):
        super().__init__()
        if upscale < 1:
            raise ValueError(f"upscale must be >= 1, got {upscale}")
        self.upscale = upscale
        c1, c2 = scaled(64, width), scaled(32, width)
        self.body = nn.Sequential(
            layer(in_channels, c1, 5), nn.Tanh(), layer(c1, c2, 3), nn.Tanh(),
            layer(c2, out_channels * upscale**2, 3), nn.PixelShuffle(upscale),
        )

    def forward(self, x, cond=None):
        return self.body(x)


class SRBlock(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.conv1, self.act, self.conv2 = _conv(channels, channels, 3), nn.PReLU(), _conv(channels, channels, 3)

    def forward(self, x):
        return x + self.conv2(self.act(self.conv1(x)))


class SRResNet(nn.Module):
    """SRResNet (Ledig et al. 2017) with `blocks` residual blocks (Table 14: 5) and no BatchNorm.

    BatchNorm is dropped (as in EDSR): its batch statistics would mix meshes in a multiscale batch
    and it is known to hurt SR. Upsampling is a pixel shuffle at the end (no bicubic pre-upsampling),
    so the residual blocks run on the coarse mesh.
    """

    size_divisor = 1

    def __init__(self, in_channels, out_channels, upscale=2, width=1.0, blocks=5):
        super().__init__()
        if upscale < 1:
            raise ValueError(f"upscale must be >= 1, got {upscale}")
        self.upscale = upscale
        c = scaled(64, width)
        self.head = nn.Sequential(_conv(in_channels, c, 9), nn.PReLU())
        self.blocks = nn.Sequential(*(SRBlock(c) for _ in range(blocks)), _conv(c, c, 3))
        up = [_conv(c, c * upscale**2, 3), nn.PixelShuffle(upscale), nn.PReLU()] if upscale > 1 else []
        self.tail = nn.Sequential(*up, _conv(c, out_channels, 9))

    def forward(self, x, cond=None):
        h = self.head(x)
        return self.tail(h + self.blocks(h))


@MODELS.register("espcn")
def espcn(in_channels, out_channels, *, cond=False, upscale=2, width=1.0):
    """ESPCN (Shi et al. 2016; Tables 5, 8, 14): conv5x5 64, conv3x3 32, conv3x3 to out x r^2, pixel shuffle."""
    reject_cond("espcn", cond)
    return ESPCN(in_channels, out_channels, upscale, width)


@MODELS.register("mfc_espcn")
def mfc_espcn(in_channels, out_channels, *, cond=False, upscale=2, width=1.0, mixing="pointwise", init_resolution=64):
    """MFC-ESPCN (Tables 5, 8, 14): ESPCN with every spatial conv a mesh-free convolution (pointwise mixing)."""
    reject_cond("mfc_espcn", cond)
    return to_mfc(ESPCN(in_channels, out_channels, upscale, width), mixing, init_resolution)


@MODELS.register("fno_espcn")
def fno_espcn(in_channels, out_channels, *, cond=False, upscale=2, width=1.0, modes=16):
    """FNO-ESPCN (App. D.3): every spatial conv is neuraloperator's SpectralConv keeping `modes` modes per axis."""
    reject_cond("fno_espcn", cond)
    require("neuralop.layers.spectral_convolution", "paper")  # a missing package names its extra
    from neuralop.layers.spectral_convolution import SpectralConv

    def spectral(cin: int, cout: int, k: int) -> nn.Module:
        return SpectralConv(cin, cout, n_modes=(modes, modes))

    return ESPCN(in_channels, out_channels, upscale, width, layer=spectral)


@MODELS.register("srresnet")
def srresnet(in_channels, out_channels, *, cond=False, upscale=2, width=1.0, blocks=5):
    """SRResNet (Ledig et al. 2017; Tables 5, 8, 14): 5 residual blocks without BatchNorm, then a pixel shuffle."""
    reject_cond("srresnet", cond)
    return SRResNet(in_channels, out_channels, upscale, width, blocks)


@MODELS.register("mfc_srresnet")
def mfc_srresnet(in_channels, out_channels, *, cond=False, upscale=2, width=1.0, blocks=5, mixing="pointwise",
                 init_resolution=64):
    """MFC-SRResNet (Tables 5, 8, 14): SRResNet with every spatial conv a mesh-free convolution (pointwise mixing)."""
    reject_cond("mfc_srresnet", cond)
    return to_mfc(SRResNet(in_channels, out_channels, upscale, width, blocks), mixing, init_resolution)
