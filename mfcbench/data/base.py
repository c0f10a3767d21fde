"""The Dataset interface: one file per dataset, registered with `@DATASETS.register("name")`.

A dataset turns (split, image_size, options) into a float32 (N, C, H, W) tensor in [0, 1].
Embedded datasets need nothing but installed packages; network datasets first `fetch` raw files
into `<root>/raw/<name>/` and then read them with `build_split`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ..core.registry import Registry

# fills itself from this package's dataset modules; the helper modules register nothing
DATASETS: Registry = Registry("dataset", autoload=__package__, skip=("base", "fetch", "store", "tensors", "transforms"))
SPLITS = ("train", "val")


class Dataset:
    """Base class. Subclasses set `name`, `channels`, `defaults` (every option with its default)
    and `test_options` (a tiny configuration for tests), and implement `build_split`."""

    name: str = ""
    channels: int = 1
    embedded: bool = True
    defaults: dict[str, Any] = {}
    test_options: dict[str, Any] = {}

    def resolve(self, options: dict[str, Any] | None) -> dict[str, Any]:
        """Defaults overlaid with `options`; unknown keys raise listing the valid ones."""
        options = dict(options or {})
        unknown = sorted(set(options) - set(self.defaults))
        if unknown:
            valid = ", ".join(sorted(self.defaults)) or "(none)"
            raise ValueError(f"dataset {self.name!r}: unknown option(s) {unknown}; valid options: {valid}")
        return {**self.defaults, **options}

    def fetch(self, root: Path, options: dict[str, Any]) -> None:
        """Make the raw files available under `root/raw/<name>/` (network datasets only)."""

    def build_split(self, split: str, image_size: int, root: Path, options: dict[str, Any]) -> torch.Tensor:
        raise NotImplementedError


class NetworkDataset(Dataset):
    """A dataset whose raw files come from the network (or are placed there by hand)."""

    embedded = False

    def raw_dir(self, root: Path) -> Path:
        return Path(root) / "raw" / self.name


def check_split(split: str) -> str:
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; valid choices: {', '.join(SPLITS)}")
    return split


def check_image_size(image_size: int) -> int:
    if int(image_size) != image_size or image_size < 1:
        raise ValueError(f"image_size must be a positive integer, got {image_size!r}")
    return int(image_size)
