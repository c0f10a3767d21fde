"""`celeba`: aligned CelebA faces read by torchvision's CelebA class, center-cropped to a square
and resized to `image_size` (64 in the paper's Table 13).

train = CelebA "train" partition, val = its "valid" partition (list_eval_partition.txt).
Raw files live in `<root>/raw/celeba/celeba/` (img_align_celeba/ plus the list_*.txt files).
The download goes through torchvision (Google Drive, needs `gdown`, often over quota); when it
fails the message lists the files to place by hand. `verify_md5` as in stl10.
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .base import DATASETS, NetworkDataset
from .fetch import TIMEOUT_S, ManualDownloadRequired, is_offline, safe_extract
from .transforms import center_square, hwc_to_chw, resize

SOURCE = "https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html"


def _celeba_class(verify_md5: bool):
    from torchvision.datasets import CelebA

    if verify_md5:
        return CelebA

    class CelebAUnverified(CelebA):
        """CelebA that checks the files exist but not their md5 (they are not the published files)."""

        def _check_integrity(self) -> bool:
            return _files_ok(Path(self.root) / self.base_folder, verify_md5=False)

    return CelebAUnverified


def _files_ok(folder: Path, verify_md5: bool) -> bool:
    """The check torchvision's CelebA makes (md5 of the .txt files, img_align_celeba/ present)."""
    from torchvision.datasets import CelebA
    from torchvision.datasets.utils import check_integrity

    for _, md5, name in CelebA.file_list:
        if name.endswith((".zip", ".7z")):
            continue
        if not check_integrity(str(folder / name), md5 if verify_md5 else None):
            return False
    return (folder / "img_align_celeba").is_dir()


@DATASETS.register("celeba")
class CelebADataset(NetworkDataset):
    name = "celeba"
    channels = 3
    defaults = {"crop": "center", "verify_md5": True}

    def folder(self, root: Path) -> Path:
        return self.raw_dir(root) / "celeba"

    def _hint(self, root: Path) -> str:
        from torchvision.datasets import CelebA

        names = ", ".join(f for _, _, f in CelebA.file_list)
        return f"place {names} in {self.folder(root)}/ (from {SOURCE}); img_align_celeba.zip may be unpacked there"

    def fetch(self, root: Path, options: dict[str, Any]) -> None:
        if options["crop"] not in ("center", "none"):
            raise ValueError(f"celeba: unknown crop {options['crop']!r}; valid choices: center, none")
        cls = _celeba_class(bool(options["verify_md5"]))
        folder = self.folder(root)
        archive = folder / "img_align_celeba.zip"
        if not (folder / "img_align_celeba").is_dir() and archive.is_file():
            safe_extract(archive, folder)
        if _files_ok(folder, bool(options["verify_md5"])):
            return
        if is_offline():
            raise ManualDownloadRequired(f"celeba: raw files missing and MFCBENCH_OFFLINE is set: {self._hint(root)}")
        previous = socket.getdefaulttimeout()
        socket.setdefaulttimeout(TIMEOUT_S)
        try:
            cls(str(self.raw_dir(root)), split="train", target_type=[], download=True)
        except Exception as exc:  # gdown missing, Drive quota, no network: all end in the same advice
            raise ManualDownloadRequired(f"celeba: download failed ({exc}); {self._hint(root)}") from exc
        finally:
            socket.setdefaulttimeout(previous)

    def build_split(self, split: str, image_size: int, root: Path, options: dict[str, Any]) -> torch.Tensor:
        cls = _celeba_class(bool(options["verify_md5"]))
        try:
            ds = cls(str(self.raw_dir(root)), split="train" if split == "train" else "valid", target_type=[])
        except RuntimeError as exc:
            raise ManualDownloadRequired(f"celeba: {exc}; {self._hint(root)}") from exc
        out = []
        for index in range(len(ds)):
            image, _ = ds[index]
            x = hwc_to_chw(np.asarray(image.convert("RGB")), 3)
            if options["crop"] == "center":
                x = center_square(x)
            out.append(resize(x[None], image_size)[0])
        if not out:
            raise ValueError(f"celeba: the {split} partition is empty in {self.folder(root)}/list_eval_partition.txt")
        return torch.stack(out).contiguous()
