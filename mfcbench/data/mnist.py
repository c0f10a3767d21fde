"""`mnist`: MNIST (28x28 grayscale) read by torchvision's MNIST class, resized to `image_size`.

train = the 60,000 training digits, val = the 10,000 test digits. Raw idx files live in
`<root>/raw/mnist/MNIST/raw/` (the layout torchvision expects); each .gz is fetched from
torchvision's mirrors, md5-checked, and unpacked.
"""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path
from typing import Any

import torch

from ..core import atomic
from .base import DATASETS, NetworkDataset
from .fetch import ArchiveError, ManualDownloadRequired, download, is_offline, manual_hint, verify_file
from .transforms import resize, to_unit_float


@DATASETS.register("mnist")
class MNISTDataset(NetworkDataset):
    name = "mnist"
    channels = 1
    defaults = {}

    def idx_dir(self, root: Path) -> Path:
        return self.raw_dir(root) / "MNIST" / "raw"

    def fetch(self, root: Path, options: dict[str, Any]) -> None:
        from torchvision.datasets import MNIST

        folder = self.idx_dir(root)
        for gz_name, md5 in MNIST.resources:
            target = folder / gz_name[: -len(".gz")]
            if target.is_file():
                continue
            gz_path = folder / gz_name
            if not gz_path.is_file():
                errors = []
                for mirror in MNIST.mirrors:
                    try:
                        download(mirror + gz_name, gz_path, md5=md5)
                        break
                    except ManualDownloadRequired as exc:
                        errors.append(exc.reason)
                        if is_offline():
                            break
                if not gz_path.is_file():
                    raise ManualDownloadRequired(
                        f"mnist: {manual_hint(gz_name, folder, MNIST.mirrors[0] + gz_name)} "
                        f"(or its unpacked {target.name}); tried: {'; '.join(errors)}"
                    )
            else:
                verify_file(gz_path, md5=md5)  # placed by hand: check it is the published file
            try:
                with atomic.atomic_path(target) as tmp, gzip.open(gz_path, "rb") as src, open(tmp, "wb") as dst:
                    shutil.copyfileobj(src, dst)
            except (OSError, EOFError) as exc:
                raise ArchiveError(f"bad archive {gz_path}: {exc}") from exc

    def build_split(self, split: str, image_size: int, root: Path, options: dict[str, Any]) -> torch.Tensor:
        from torchvision.datasets import MNIST

        try:
            ds = MNIST(str(self.raw_dir(root)), train=(split == "train"), download=False)
        except RuntimeError as exc:
            raise ManualDownloadRequired(
                f"mnist: {exc}; place the idx files (train-images-idx3-ubyte.gz, ...) in {self.idx_dir(root)}/"
            ) from exc
        images = to_unit_float(ds.data)[:, None]  # (N, 1, 28, 28)
        return resize(images, image_size).contiguous()
