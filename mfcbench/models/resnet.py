"""Table 13 ResNet denoiser and MFC-ResNet.

1x1 conv in -> 2 residual blocks -> 1x1 conv out, 128 hidden channels. A block is
conv3x3 -> + noise embedding (per block: half sin/cos, half a small MLP of t) -> layer norm over
(C, H, W) -> leaky ReLU(0.2) -> conv3x3, added to its input. 597,699 parameters at 3 channels, cond.

The layer norm has no affine parameters (as in the authors' code, whose count 597,699 includes
none): normalising over (C, H, W) with a per-pixel affine would tie the weights to one mesh, while
the parameter-free normalisation uses per-image statistics that are the same integrals on every
mesh.

MFC-ResNet: Table 13's 532,163 is 65,536 = 2 * 128*128 * (9 - 7) below ResNet, i.e. two of the four
3x3 convs become full-mixing MFCs (7 parameters per channel pair). The paper does not say which;
we make the first conv of each block an MFC (`convert="first"`, the rule mfc_unet shares);
`convert="all"` converts all four (466,627 parameters).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from . import MODELS
from .common import HybridEmbedding, check_cond, scaled, with_upscale
from .convert import conversion_rule, to_mfc


class Block(nn.Module):
    def __init__(self, channels: int, cond: bool):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.embed = HybridEmbedding(channels) if cond else None
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x, cond=None):
        h = self.conv1(x)
        if self.embed is not None:
            h = h + self.embed(cond)[:, :, None, None]
        h = F.leaky_relu(F.layer_norm(h, h.shape[1:]), 0.2)
        return x + self.conv2(h)


class DenoiseResNet(nn.Module):
    size_divisor = 1
    upscale = 1

    def __init__(self, in_channels, out_channels, *, cond=False, hidden=128, blocks=2):
        super().__init__()
        self.conditioned = bool(cond)
        self.open = nn.Conv2d(in_channels, hidden, 1)
        self.blocks = nn.ModuleList(Block(hidden, cond) for _ in range(blocks))
        self.close = nn.Conv2d(hidden, out_channels, 1)
        with torch.no_grad():
            self.close.weight.mul_(1e-3)  # start near the zero residual: a small, stable first step

    def forward(self, x, cond=None):
        cond = check_cond(self, x, cond)
        h = self.open(x)
        for block in self.blocks:
            h = block(h, cond)
        return self.close(h)


@MODELS.register("resnet")
def resnet(in_channels, out_channels, *, cond=False, upscale=1, width=1.0, blocks=2):
    """Table 13 ResNet: 128 (x width) hidden channels, 2 blocks; 597,699 parameters at 3 channels, cond."""
    return with_upscale(DenoiseResNet(in_channels, out_channels, cond=cond, hidden=scaled(128, width), blocks=blocks), upscale)


@MODELS.register("mfc_resnet")
def mfc_resnet(in_channels, out_channels, *, cond=False, upscale=1, width=1.0, blocks=2, mixing="full",
               init_resolution=64, convert="first"):
    """Table 13 MFC-ResNet: the first 3x3 conv of every block is an MFC; 532,163 parameters by default."""
    model = resnet(in_channels, out_channels, cond=cond, upscale=upscale, width=width, blocks=blocks)
    return to_mfc(model, mixing, init_resolution, include=conversion_rule(convert))
