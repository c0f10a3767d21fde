"""`lfw`: the embedded face stand-in for CelebA (Table 6), from scikit-image's lfw_subset()."""

from __future__ import annotations

import pytest
import torch

from mfcbench.data import build_splits, dataset_checksum, dataset_names, get_dataset, load_split
from mfcbench.data.faces import FACES, lfw_images


def _rows(x: torch.Tensor) -> set[tuple]:
    return {tuple(r) for r in x.flatten(1).numpy().round(6).tolist()}


def test_registered_embedded_grayscale():
    assert "lfw" in dataset_names()
    ds = get_dataset("lfw")
    assert ds.embedded and ds.channels == 1


@pytest.mark.parametrize("size", [32, 64])
def test_shapes_range_and_split_sizes(size, tmp_path):
    train = load_split("lfw", "train", size, tmp_path)
    val = load_split("lfw", "val", size, tmp_path)
    assert train.shape == (80, 1, size, size) and val.shape == (20, 1, size, size)
    for x in (train, val):
        assert x.dtype == torch.float32 and float(x.min()) >= 0.0 and float(x.max()) <= 1.0
        assert float(x.std()) > 0.05  # real faces, not a constant
    assert not (tmp_path / "prepared").exists()  # embedded: built in memory, nothing written


def test_deterministic_and_disjoint(tmp_path):
    first = build_splits("lfw", 32, tmp_path, fetch=False)
    second = build_splits("lfw", 32, tmp_path, fetch=False)
    assert all(torch.equal(first[s], second[s]) for s in ("train", "val"))
    assert dataset_checksum("lfw", 32, tmp_path) == dataset_checksum("lfw", 32, tmp_path)
    assert not _rows(first["train"]) & _rows(first["val"])


def test_faces_only_by_default_and_non_faces_on_request(tmp_path):
    faces, others = lfw_images(include_non_faces=False)
    assert faces.shape == (FACES, 1, 25, 25) and others is None
    # the val split is the last 20 faces, upsampled from 25 px: at 25 px it is the raw crops
    assert torch.allclose(load_split("lfw", "val", 25, tmp_path), faces[-20:])
    both = build_splits("lfw", 32, tmp_path, fetch=False, include_non_faces=True, val_count=10)
    assert both["train"].shape[0] == 180 and both["val"].shape[0] == 20
    assert not _rows(both["train"]) & _rows(both["val"])


def test_channels_and_bad_options(tmp_path):
    rgb = load_split("lfw", "train", 32, tmp_path, channels=3)
    assert rgb.shape == (80, 3, 32, 32) and torch.equal(rgb[:, 0], rgb[:, 2])
    with pytest.raises(ValueError, match="val_count"):
        load_split("lfw", "val", 32, tmp_path, val_count=100)
    with pytest.raises(ValueError, match="channels"):
        load_split("lfw", "val", 32, tmp_path, channels=2)
    with pytest.raises(ValueError, match="valid options: .*val_count"):
        load_split("lfw", "val", 32, tmp_path, flips=True)
