"""Clean-image augmentations applied before the task's corruption (config key `augment`).

`crops`: torchvision's RandomResizedCrop (App. D.8). The paper names the transform but not its
arguments, so torchvision's defaults are kept (scale (0.08, 1), ratio (3/4, 4/3)) and the crop is
resized to the training size (`crop_size` null = image_size). The transform draws from torch's
global RNG; it runs in a forked RNG seeded from the cell's "crops" generator, so crops are
reproducible and resumable.
"""

from __future__ import annotations

from typing import Any

import torch

AUGMENTATIONS = ("none", "crops")


class RandomCrops:
    def __init__(self, config: dict[str, Any]):
        self.crop_size = config.get("crop_size") or config.get("image_size")
        self.scale = tuple(config.get("crop_scale", (0.08, 1.0)))
        self.ratio = tuple(config.get("crop_ratio", (3 / 4, 4 / 3)))
        self.transform = None  # built on first use: torchvision is imported only by cells that crop

    def __call__(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        if self.transform is None:
            from torchvision.transforms import v2

            self.crop_size = self.crop_size or images.shape[-1]
            self.transform = v2.RandomResizedCrop(self.crop_size, scale=self.scale, ratio=self.ratio, antialias=True)
        seed = int(torch.randint(0, 2**62, (1,), generator=generator))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return torch.stack([self.transform(image) for image in images])


def build_augmentation(config: dict[str, Any]):
    """None, or a callable (images, generator) -> images for config['augment']."""
    name = config.get("augment", "none")
    if name not in AUGMENTATIONS:
        raise ValueError(f"unknown augment {name!r}; valid choices: {', '.join(AUGMENTATIONS)}")
    return RandomCrops(config) if name == "crops" else None
