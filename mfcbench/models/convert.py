"""Turn a CNN into its MFC version: every spatial (k > 1) Conv2d becomes a MeshFreeConv2d.

One converter serves every `mfc_*` model (and any torchvision-style network), so "MFC-X" always
means "X with its spatial convolutions replaced", never a hand-written twin that could drift.
"""

from __future__ import annotations

import warnings
from typing import Callable

from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from ..layers import MeshFreeConv2d

MIXINGS = ("pointwise", "full")


class Subsample(nn.Module):
    """Injection x[..., ::s, ::s]: the stride of a strided conv, after its MFC (mesh spacing doubles)."""

    def __init__(self, stride: int):
        super().__init__()
        self.stride = stride

    def forward(self, x):
        return x[..., :: self.stride, :: self.stride]

    def extra_repr(self) -> str:
        return f"stride={self.stride}"


def mfc_like(conv: nn.Conv2d, mixing: str, init_resolution: int, boundary: str = "periodic") -> nn.Module:
    """The MFC replacing one spatial conv (same channels and bias; a stride becomes a Subsample).

    A conv initialised to zero (e.g. a residual branch's last conv) gives an MFC with zero output.
    """
    if conv.groups != 1:
        raise ValueError(f"cannot convert a grouped convolution ({conv}) to an MFC")
    mfc = MeshFreeConv2d(
        conv.in_channels, conv.out_channels, mixing=mixing, bias=conv.bias is not None,
        init_resolution=init_resolution, boundary=boundary,
    )
    if not bool(conv.weight.detach().any()):
        mfc.gamma.data.zero_()
    stride = conv.stride[0]
    if conv.stride[0] != conv.stride[1]:
        raise ValueError(f"cannot convert an anisotropic stride {conv.stride} to an MFC")
    return mfc if stride == 1 else nn.Sequential(mfc, Subsample(stride))


def to_mfc(
    module: nn.Module,
    mixing: str = "pointwise",
    init_resolution: int = 64,
    include: Callable[[str], bool] | None = None,
    boundary: str = "periodic",
    warn: bool = True,
) -> nn.Module:
    """Replace, in place, every Conv2d with a kernel larger than 1x1 by a `MeshFreeConv2d`; returns `module`.

    module: any network (a torchvision model, your own); 1x1 convolutions and other layers stay.
    mixing: "pointwise" (default: a 1x1 channel map, then one PDE filter per output channel) or
        "full" (one filter per channel pair); see `MeshFreeConv2d`. The registered paper models pass
        their own choice explicitly (mfcbench/__init__.py lists it per model).
    init_resolution: the mesh (pixels across) at which the new kernels start 0.5-1.5 pixels wide;
        use your training image size.
    include: `include(qualified_name) -> bool` restricts the replacement to some convs (default: all).
    boundary: "periodic" (the paper's FFT), "zero" or "reflect"; see `MeshFreeConv2d`.
    warn: warn (UserWarning, naming the module paths) about layers that break multiscale training:
        BatchNorm (batch statistics) and max pooling (a pixel window); see `multiscale_hazards`.

    Same channels and bias; a stride s becomes the MFC followed by `Subsample(s)`; a grouped or
    anisotropically strided conv raises ValueError. A conv whose weights are all zero (a residual
    branch initialised to zero) gives an MFC with zero output.
    """
    if mixing not in MIXINGS:
        raise ValueError(f"mixing must be one of {MIXINGS}, got {mixing!r}")
    targets = [
        name
        for name, child in module.named_modules()
        if isinstance(child, nn.Conv2d) and max(child.kernel_size) > 1 and (include is None or include(name))
    ]
    for name in targets:
        parent_name, _, attr = name.rpartition(".")
        parent = module.get_submodule(parent_name)
        setattr(parent, attr, mfc_like(getattr(parent, attr), mixing, init_resolution, boundary))
    if warn:
        for message in multiscale_hazards(module):
            warnings.warn(message, UserWarning, stacklevel=2)
    return module


HAZARDS = {
    "batch statistics": (
        (_BatchNorm,),
        "normalise with batch statistics: in a multiscale step the telescoping terms on different meshes are "
        "normalised with different statistics (a coarse batch is smoother), so fine - coarse no longer cancels "
        "and the running averages mix meshes; use GroupNorm (torchvision: norm_layer=lambda c: nn.GroupNorm(32, c)) "
        "or freeze them in eval mode. mfcbench then also runs a step draw by draw instead of one call per mesh",
    ),
    "max pooling": (
        (nn.MaxPool2d, nn.AdaptiveMaxPool2d, nn.FractionalMaxPool2d),
        "take the largest pixel of a window counted in pixels, whose physical size doubles on each coarser "
        "mesh: the same weights see another operator per mesh (not mesh-free); average pooling or a strided "
        "MFC keeps the operator",
    ),
}


def multiscale_hazards(module: nn.Module) -> list[str]:
    """One message per kind of layer in `module` that breaks multiscale training, naming its paths
    (module: any network; the checks are HAZARDS: batch statistics and max pooling)."""
    messages = []
    for kind, (types, why) in HAZARDS.items():
        paths = [name or "<root>" for name, child in module.named_modules() if isinstance(child, types)]
        if paths:
            shown = ", ".join(paths[:6]) + (f" and {len(paths) - 6} more" if len(paths) > 6 else "")
            messages.append(f"to_mfc: {len(paths)} layer(s) with {kind} ({shown}) {why}")
    return messages


CONVERSIONS = ("all", "first")


def conversion_rule(convert: str) -> Callable[[str], bool] | None:
    """`include` for to_mfc: "all" spatial convs, or only the "first" (`conv1`) of every residual block."""
    if convert == "all":
        return None
    if convert == "first":
        return lambda name: name.rsplit(".", 1)[-1] == "conv1"
    raise ValueError(f"convert must be one of {CONVERSIONS}, got {convert!r}")


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad)
