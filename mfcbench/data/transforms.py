"""Image helpers shared by the datasets: uint8/float -> [0, 1] float32, resizing, cropping, tiling."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def to_unit_float(images: torch.Tensor | np.ndarray) -> torch.Tensor:
    """uint8 (0..255) or float images -> float32 in [0, 1]."""
    x = torch.as_tensor(images)
    if x.dtype == torch.uint8:
        return x.float().div_(255.0)
    if x.dtype == torch.bool:
        return x.float()
    return x.float().clamp_(0.0, 1.0)


def hwc_to_chw(image: np.ndarray, channels: int) -> torch.Tensor:
    """One image (H, W) or (H, W, C) -> (channels, H, W) float in [0, 1]; drops alpha, replicates
    grayscale to 3 channels, or converts RGB to luminance (ITU-R 601) for channels=1."""
    image = np.ascontiguousarray(image)
    x = to_unit_float(image if image.flags.writeable else image.copy())
    if x.ndim == 2:
        x = x[None]
    else:
        x = x[..., :3].permute(2, 0, 1)
    if channels == x.shape[0]:
        return x.contiguous()
    if channels == 3 and x.shape[0] == 1:
        return x.expand(3, -1, -1).contiguous()
    if channels == 1 and x.shape[0] == 3:
        weights = torch.tensor([0.299, 0.587, 0.114]).view(3, 1, 1)
        return (x * weights).sum(0, keepdim=True)
    raise ValueError(f"cannot convert a {x.shape[0]}-channel image to {channels} channels; valid: 1, 3")


def resize(images: torch.Tensor, size: int | tuple[int, int], chunk: int = 512) -> torch.Tensor:
    """Antialiased bilinear resize of (N, C, H, W) float images, in chunks to bound memory."""
    size = (size, size) if isinstance(size, int) else tuple(size)
    if tuple(images.shape[-2:]) == size:
        return images
    out = [
        F.interpolate(images[i : i + chunk], size=size, mode="bilinear", align_corners=False, antialias=True)
        for i in range(0, images.shape[0], chunk)
    ]
    return torch.cat(out).clamp_(0.0, 1.0) if out else images.new_zeros(0, images.shape[1], *size)


def center_square(images: torch.Tensor) -> torch.Tensor:
    """Crop (..., H, W) to the central min(H, W) square."""
    h, w = images.shape[-2:]
    s = min(h, w)
    top, left = (h - s) // 2, (w - s) // 2
    return images[..., top : top + s, left : left + s]


def limit_side(image: torch.Tensor, max_side: int | None) -> torch.Tensor:
    """Shrink a (C, H, W) image so its longer side is at most `max_side` (keeps the aspect ratio)."""
    h, w = image.shape[-2:]
    if not max_side or max(h, w) <= max_side:
        return image
    scale = max_side / max(h, w)
    return resize(image[None], (max(1, round(h * scale)), max(1, round(w * scale))))[0]


def tile(image: torch.Tensor, size: int, stride: int | None = None, max_patches: int | None = None) -> torch.Tensor:
    """Cut a (C, H, W) image into (N, C, size, size) patches on a regular grid (row-major).

    `max_patches` keeps that many patches evenly spaced over the grid, so a large image does not
    dominate the dataset. An image smaller than `size` gives no patches.
    """
    stride = stride or size
    c, h, w = image.shape
    if h < size or w < size:
        return image.new_zeros(0, c, size, size)
    patches = image.unfold(1, size, stride).unfold(2, size, stride)  # C, nh, nw, size, size
    patches = patches.permute(1, 2, 0, 3, 4).reshape(-1, c, size, size)
    if max_patches is not None and patches.shape[0] > max_patches:
        keep = np.linspace(0, patches.shape[0] - 1, max_patches).round().astype(np.int64)
        patches = patches[torch.from_numpy(keep)]
    return patches.contiguous()
