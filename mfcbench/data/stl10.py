"""`stl10`: STL-10 (96x96 RGB) read by torchvision's STL10 class, resized to `image_size` (64 in
the paper's Table 13) with antialiased bilinear interpolation.

train = STL-10 "train" (5,000 labelled images; `train_split` may add the 100,000 unlabelled ones),
val = STL-10 "test" (8,000 images). Raw files live in `<root>/raw/stl10/`: the archive
stl10_binary.tar.gz (md5-checked) is downloaded and safely extracted to `stl10_binary/`.
torchvision verifies each .bin file's md5 when `verify_md5` is true (the default); false keeps
only its existence check (for small files written in the real format, e.g. in tests).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from .base import DATASETS, NetworkDataset
from .fetch import ManualDownloadRequired, ensure_archive, safe_extract
from .transforms import resize, to_unit_float

TRAIN_SPLITS = ("train", "unlabeled", "train+unlabeled")


def _stl10_class(verify_md5: bool):
    from torchvision.datasets import STL10

    if verify_md5:
        return STL10

    class STL10Unverified(STL10):
        """STL10 that checks the files exist but not their md5 (they are not the published files)."""

        def _check_integrity(self) -> bool:
            names = [f for f, _ in self.train_list + self.test_list]
            return all((Path(self.root) / self.base_folder / f).is_file() for f in names)

    return STL10Unverified


@DATASETS.register("stl10")
class STL10Dataset(NetworkDataset):
    name = "stl10"
    channels = 3
    defaults = {"train_split": "train", "verify_md5": True}

    def _files_present(self, root: Path) -> bool:
        from torchvision.datasets import STL10

        folder = self.raw_dir(root) / STL10.base_folder
        return all((folder / f).is_file() for f, _ in STL10.train_list + STL10.test_list)

    def fetch(self, root: Path, options: dict[str, Any]) -> None:
        from torchvision.datasets import STL10

        if options["train_split"] not in TRAIN_SPLITS:
            raise ValueError(f"stl10: unknown train_split {options['train_split']!r}; valid: {', '.join(TRAIN_SPLITS)}")
        if self._files_present(root):
            return
        raw = self.raw_dir(root)
        archive = ensure_archive(STL10.url, raw / STL10.filename, md5=STL10.tgz_md5)
        safe_extract(archive, raw)
        if not self._files_present(root):
            raise ManualDownloadRequired(f"{archive} did not contain {STL10.base_folder}/ with the .bin files")

    def build_split(self, split: str, image_size: int, root: Path, options: dict[str, Any]) -> torch.Tensor:
        stl_split = options["train_split"] if split == "train" else "test"
        cls = _stl10_class(bool(options["verify_md5"]))
        try:
            ds = cls(str(self.raw_dir(root)), split=stl_split, download=False)
        except RuntimeError as exc:
            raise ManualDownloadRequired(
                f"stl10: {exc}; place stl10_binary.tar.gz in {self.raw_dir(root)}/ (from {cls.url})"
            ) from exc
        # ds.data is (N, 3, 96, 96) uint8 in CHW order, the same images __getitem__ returns
        return resize(to_unit_float(ds.data), image_size).contiguous()
