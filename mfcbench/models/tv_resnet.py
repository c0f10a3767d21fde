"""ResNet-18 / ResNet-50 as image-to-image denoisers (Table 7), from torchvision's blocks.

torchvision's BasicBlock / Bottleneck stages with its layer widths (x `width`), but no stride and no
max-pool anywhere (a conv3x3 stem), so every layer stays on the input mesh; a 1x1 conv maps to the
output. With cond=True the noise embedding (as the UNet's) is added before every stage.
MFC versions convert every spatial conv, mixing="pointwise" by default (cheap at 256-2048 channels).
Normalisation defaults to GroupNorm (norm="group"): BatchNorm's running statistics average over
every mesh a multiscale trainer visits, so in eval mode they fit none of them (measured: Table 7's
Multiscale-SGD cells reached MSE ~1e5 with norm="batch"). norm="batch" remains an option.
"""

from __future__ import annotations

from torch import nn

from . import MODELS
from .common import MLPEmbedding, check_cond, group_norm, scaled, with_upscale
from .convert import to_mfc

NORMS = {"batch": nn.BatchNorm2d, "group": lambda channels: group_norm(channels, 32)}


class ImageResNet(nn.Module):
    size_divisor = 1
    upscale = 1

    def __init__(self, block, layers, in_channels, out_channels, *, cond=False, width=1.0, norm="group"):
        super().__init__()
        if norm not in NORMS:
            raise ValueError(f"norm must be one of {sorted(NORMS)}, got {norm!r}")
        norm_layer = NORMS[norm]
        self.conditioned = bool(cond)
        widths = [scaled(c, width) for c in (64, 128, 256, 512)]
        inplanes = widths[0]
        self.stem = nn.Sequential(nn.Conv2d(in_channels, inplanes, 3, padding=1, bias=False), norm_layer(inplanes), nn.ReLU())
        self.embed = MLPEmbedding(32, 128) if cond else None
        self.stages, self.inject = nn.ModuleList(), nn.ModuleList()
        for planes, n in zip(widths, layers):
            down = None
            if inplanes != planes * block.expansion:
                down = nn.Sequential(nn.Conv2d(inplanes, planes * block.expansion, 1, bias=False), norm_layer(planes * block.expansion))
            if cond:
                self.inject.append(nn.Linear(128, inplanes))
            blocks = [block(inplanes, planes, downsample=down, norm_layer=norm_layer)]
            inplanes = planes * block.expansion
            blocks += [block(inplanes, planes, norm_layer=norm_layer) for _ in range(n - 1)]
            self.stages.append(nn.Sequential(*blocks))
        self.head = nn.Conv2d(inplanes, out_channels, 1)

    def forward(self, x, cond=None):
        cond = check_cond(self, x, cond)
        emb = nn.functional.silu(self.embed(cond)) if self.embed is not None else None
        h = self.stem(x)
        for i, stage in enumerate(self.stages):
            if emb is not None:
                h = h + self.inject[i](emb)[:, :, None, None]
            h = stage(h)
        return self.head(h)


def _build(block_name, layers, in_channels, out_channels, *, cond, upscale, width, norm):
    from torchvision.models import resnet as tv  # imported when a model is built: registering stays cheap

    block = getattr(tv, block_name)
    return with_upscale(ImageResNet(block, layers, in_channels, out_channels, cond=cond, width=width, norm=norm), upscale)


@MODELS.register("resnet18")
def resnet18(in_channels, out_channels, *, cond=False, upscale=1, width=1.0, norm="group"):
    """ResNet-18 as a denoiser (Table 7): torchvision's BasicBlock stages (2, 2, 2, 2) on the input mesh."""
    return _build("BasicBlock", (2, 2, 2, 2), in_channels, out_channels,
                  cond=cond, upscale=upscale, width=width, norm=norm)


@MODELS.register("resnet50")
def resnet50(in_channels, out_channels, *, cond=False, upscale=1, width=1.0, norm="group"):
    """ResNet-50 as a denoiser (Table 7): torchvision's Bottleneck stages (3, 4, 6, 3) on the input mesh."""
    return _build("Bottleneck", (3, 4, 6, 3), in_channels, out_channels,
                  cond=cond, upscale=upscale, width=width, norm=norm)


@MODELS.register("mfc_resnet18")
def mfc_resnet18(in_channels, out_channels, *, cond=False, upscale=1, width=1.0, norm="group", mixing="pointwise",
                 init_resolution=64):
    """MFC-ResNet-18 (Table 7): resnet18 with every spatial conv a mesh-free convolution (pointwise mixing)."""
    model = resnet18(in_channels, out_channels, cond=cond, upscale=upscale, width=width, norm=norm)
    return to_mfc(model, mixing, init_resolution)


@MODELS.register("mfc_resnet50")
def mfc_resnet50(in_channels, out_channels, *, cond=False, upscale=1, width=1.0, norm="group", mixing="pointwise",
                 init_resolution=64):
    """MFC-ResNet-50 (Table 7): resnet50 with every spatial conv a mesh-free convolution (pointwise mixing)."""
    model = resnet50(in_channels, out_channels, cond=cond, upscale=upscale, width=width, norm=norm)
    return to_mfc(model, mixing, init_resolution)
