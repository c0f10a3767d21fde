"""Random crops (App. D.8): single-scale SGD on RandomResizedCrop'd clean images (the sgd batch).

The crop itself lives in `_augment.py` (config `augment: crops` adds it to any strategy, which
is how Table 12 pairs crops with Multiscale- and Full-Multiscale-SGD); this strategy is SGD with
crops always on. With the default `crop_size` (null = image_size) the model trains on the
validation mesh and #WU equals SGD's, so the comparison isolates the augmentation; a smaller
`crop_size` gives a cheaper variant whose #WU shrinks by (crop_size / image_size)^2.
"""

from __future__ import annotations

from fractions import Fraction

from ..core.workunits import single_scale_batch
from . import STRATEGIES
from ._augment import RandomCrops
from .base import Draw, Phase, Strategy
from .sgd import SGD_OPTIONS


@STRATEGIES.register("crops")
class Crops(Strategy):
    name = "crops"
    options = SGD_OPTIONS

    def __init__(self, config: dict):
        super().__init__(config)
        self.image_size = config.get("image_size")
        self.crop_size = config.get("crop_size") or self.image_size
        self.augmentation = RandomCrops(self.config)

    def phases(self) -> list[Phase]:
        fraction = Fraction(self.crop_size, self.image_size) ** 2 if self.crop_size else Fraction(1)
        n = single_scale_batch(self.config)
        return [Phase(0, its, (Draw(n, (0,), fraction),)) for _, its in self.phase_iterations()]
