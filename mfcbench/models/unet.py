"""Guided-diffusion style UNets (Table 13 UNet, Table 7 five-level UNet) and their MFC versions.

Per level: one residual block (GroupNorm(16) -> SiLU -> conv3x3, + noise embedding, GroupNorm ->
SiLU -> dropout -> conv3x3, skip 1x1 when channels change); a strided conv3x3 down, nearest x2 + conv3x3
up; in the middle res-block -> self-attention -> res-block. With base 32, multipliers (1, 2, 4) and
3 in/out channels it has 2,537,187 parameters, the count in Table 13.

MFC-UNet follows the rule that gives MFC-ResNet's exact count (`convert="first"`): the first 3x3
conv of every residual block becomes a full-mixing MeshFreeConv2d (7 parameters per channel pair).
That gives 2,287,331 parameters, 20,080 (0.8%) below Table 13's 2,307,411, which no MFC-for-conv
substitution reaches: a full-mixing MFC replacing a 3x3 conv removes 2*Cin*Cout parameters, a
multiple of 64 for every conv here, while 2,537,187 - 2,307,411 = 229,776 is not (229,776 / 64 =
3590.25); an exhaustive search over subsets of the 28 spatial convs with pointwise MFCs (1x1 mix +
7 per output channel, with or without bias) finds none either. The published MFC-UNet must differ
in ways the paper does not describe. `convert="all"` makes every spatial conv an MFC (a strided conv
becomes MFC + injection): 2,041,187 parameters.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from . import MODELS
from .common import MLPEmbedding, check_cond, group_norm, scaled, with_upscale
from .convert import conversion_rule, to_mfc


def _zero(module: nn.Module) -> nn.Module:
    for p in module.parameters():
        nn.init.zeros_(p)
    return module


class ResBlock(nn.Module):
    def __init__(self, cin: int, cout: int, emb_dim: int | None, dropout: float):
        super().__init__()
        self.norm1, self.conv1 = group_norm(cin), nn.Conv2d(cin, cout, 3, padding=1)
        self.emb = nn.Linear(emb_dim, cout) if emb_dim else None
        self.norm2, self.dropout = group_norm(cout), nn.Dropout(dropout)
        self.conv2 = _zero(nn.Conv2d(cout, cout, 3, padding=1))
        self.skip = nn.Identity() if cin == cout else nn.Conv2d(cin, cout, 1)

    def forward(self, x, emb=None):
        h = self.conv1(F.silu(self.norm1(x)))
        if self.emb is not None:
            h = h + self.emb(F.silu(emb))[:, :, None, None]
        return self.skip(x) + self.conv2(self.dropout(F.silu(self.norm2(h))))


class Attention(nn.Module):
    """Single-head self-attention over all pixels: no resolution-tied parameters."""

    def __init__(self, channels: int):
        super().__init__()
        self.norm = group_norm(channels)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.proj = _zero(nn.Conv2d(channels, channels, 1))

    def forward(self, x, emb=None):
        b, c, h, w = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(b, 3, c, h * w).transpose(-1, -2).unbind(1)
        out = F.scaled_dot_product_attention(q, k, v)  # (B, HW, C)
        return x + self.proj(out.transpose(-1, -2).reshape(b, c, h, w))


class Down(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, stride=2, padding=1)

    def forward(self, x, emb=None):
        return self.conv(x)


class Up(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x, size):
        return self.conv(F.interpolate(x, size=size, mode="nearest"))


class UNet(nn.Module):
    """Noise-conditioned UNet; `channel_mult` sets the levels.

    Any size runs (coarse levels round up, the decoder upsamples to each skip's size), so
    size_divisor is 1 and a 5-level UNet still trains on the 4x4 coarsest mesh of a 32px image.
    """

    def __init__(self, in_channels, out_channels, *, cond=False, base=32, channel_mult=(1, 2, 4), dropout=0.5):
        super().__init__()
        self.conditioned, self.upscale = bool(cond), 1
        self.size_divisor = 1
        emb_dim = 4 * base if cond else None
        self.embed = MLPEmbedding(base, emb_dim) if cond else None
        self.stem = nn.Conv2d(in_channels, base, 3, padding=1)
        ch, skips = base, [base]
        self.down = nn.ModuleList()
        for level, mult in enumerate(channel_mult):
            self.down.append(ResBlock(ch, base * mult, emb_dim, dropout))
            ch = base * mult
            skips.append(ch)
            if level < len(channel_mult) - 1:
                self.down.append(Down(ch))
                skips.append(ch)
        self.middle = nn.ModuleList(
            [ResBlock(ch, ch, emb_dim, dropout), Attention(ch), ResBlock(ch, ch, emb_dim, dropout)]
        )
        self.up = nn.ModuleList()
        for level, mult in reversed(list(enumerate(channel_mult))):
            for i in range(2):
                self.up.append(ResBlock(ch + skips.pop(), base * mult, emb_dim, dropout))
                ch = base * mult
                if level and i == 1:
                    self.up.append(Up(ch))
        self.head = nn.Sequential(group_norm(ch), nn.SiLU(), _zero(nn.Conv2d(ch, out_channels, 3, padding=1)))

    def forward(self, x, cond=None):
        cond = check_cond(self, x, cond)
        emb = self.embed(cond) if self.embed is not None else None
        h = self.stem(x)
        skips = [h]
        for block in self.down:
            h = block(h, emb)
            skips.append(h)
        for block in self.middle:
            h = block(h, emb)
        for block in self.up:
            if isinstance(block, Up):
                h = block(h, skips[-1].shape[-2:])
            else:
                h = block(torch.cat([h, skips.pop()], dim=1), emb)
        return self.head(h)


@MODELS.register("unet")
def unet(in_channels, out_channels, *, cond=False, upscale=1, width=1.0, dropout=0.5, channel_mult=(1, 2, 4)):
    """Table 13 UNet: base 32 (x width), multipliers 1, 2, 4; 2,537,187 parameters at 3 channels, cond."""
    net = UNet(in_channels, out_channels, cond=cond, base=scaled(32, width), channel_mult=tuple(channel_mult), dropout=dropout)
    return with_upscale(net, upscale)


@MODELS.register("mfc_unet")
def mfc_unet(in_channels, out_channels, *, cond=False, upscale=1, width=1.0, dropout=0.5, channel_mult=(1, 2, 4),
             mixing="full", init_resolution=64, convert="first"):
    """Table 13 MFC-UNet (see the module docstring on its count and the `convert` choice)."""
    model = unet(in_channels, out_channels, cond=cond, upscale=upscale, width=width, dropout=dropout, channel_mult=channel_mult)
    return to_mfc(model, mixing, init_resolution, include=conversion_rule(convert))


@MODELS.register("unet5")
def unet5(in_channels, out_channels, *, cond=False, upscale=1, width=1.0, dropout=0.5,
          channel_mult=(1, 2, 2, 4, 4)):
    """Table 7's 5-level UNet: Table 13's design, multipliers 1, 2, 2, 4, 4 (its 128-channel bottom, 2 levels deeper)."""
    return unet(in_channels, out_channels, cond=cond, upscale=upscale, width=width, dropout=dropout, channel_mult=channel_mult)


@MODELS.register("mfc_unet5")
def mfc_unet5(in_channels, out_channels, *, cond=False, upscale=1, width=1.0, dropout=0.5,
              channel_mult=(1, 2, 2, 4, 4), mixing="full", init_resolution=64, convert="first"):
    """Table 7's MFC-UNet (5 levels): the same conversion rule as mfc_unet."""
    model = unet5(in_channels, out_channels, cond=cond, upscale=upscale, width=width, dropout=dropout, channel_mult=channel_mult)
    return to_mfc(model, mixing, init_resolution, include=conversion_rule(convert))

