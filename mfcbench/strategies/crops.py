"""Random crops (App. D.8): torchvision's RandomResizedCrop on the clean images before the task's
corruption, then single-scale SGD with the sgd batch.

Defaults and why: the paper names the transform but not its arguments, so we keep torchvision's
own defaults (scale (0.08, 1), ratio (3/4, 4/3)) and output at the training size (`crop_size`
null = image_size): the model trains on the validation mesh and #WU equals SGD's, so the comparison
isolates the augmentation. Set `crop_size` smaller for a cheaper (fewer #WU) variant.
The transform draws from torch's global RNG; we fork it and seed it from the cell's "crops"
generator so crops are reproducible and resumable.
"""

from __future__ import annotations

from fractions import Fraction

import torch

from . import STRATEGIES
from .base import Draw, Phase, Sampler, Strategy
from .sgd import single_scale_batch


@STRATEGIES.register("crops")
class Crops(Strategy):
    name = "crops"

    def __init__(self, config: dict):
        super().__init__(config)
        self.image_size = config.get("image_size")
        self.crop_size = config.get("crop_size") or self.image_size
        self.scale = tuple(config.get("crop_scale", (0.08, 1.0)))
        self.ratio = tuple(config.get("crop_ratio", (3 / 4, 4 / 3)))
        self.transform = None  # built on first use: torchvision is imported only by cells that crop

    def phases(self) -> list[Phase]:
        fraction = Fraction(self.crop_size, self.image_size) ** 2 if self.crop_size else Fraction(1)
        n = single_scale_batch(self.config)
        return [Phase(0, its, (Draw(n, (0,), fraction),)) for _, its in self.phase_iterations()]

    def prepare_images(self, images: torch.Tensor, sampler: Sampler) -> torch.Tensor:
        if self.transform is None:
            from torchvision.transforms import v2

            self.crop_size = self.crop_size or images.shape[-1]
            self.transform = v2.RandomResizedCrop(self.crop_size, scale=self.scale, ratio=self.ratio, antialias=True)
        seed = int(torch.randint(0, 2**62, (1,), generator=sampler.generator("crops")))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return torch.stack([self.transform(image) for image in images])
