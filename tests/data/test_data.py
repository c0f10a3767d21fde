"""Embedded datasets, the registry, load_split/dataset_checksum contracts and the prepare step."""

from __future__ import annotations

import json

import pytest
import torch

from mfcbench.data import CorruptPreparedDataError, DatasetNotPreparedError, build_splits, dataset_checksum, dataset_names, get_dataset, load_split, prepare, prepared_dir
from mfcbench.data.fields import random_fields
from mfcbench.cli.prepare import main as prepare_main
from mfcbench.data.skimage_images import TRAIN_IMAGES, VAL_IMAGES, load_image
from mfcbench.data.transforms import tile
from mfcbench.core.registry import UnknownNameError

EMBEDDED = ["digits", "fields", "lfw", "skimage"]


def test_registry_lists_every_dataset():
    assert set(dataset_names()) == {"celeba", "digits", "fields", "lfw", "mnist", "skimage", "stl10", "urban100"}
    assert [n for n in dataset_names() if get_dataset(n).embedded] == EMBEDDED


def test_unknown_names_and_options_list_the_choices(tmp_path):
    with pytest.raises(UnknownNameError, match="valid choices: .*fields"):
        load_split("nope", "train", 16, tmp_path)
    with pytest.raises(ValueError, match="valid choices: train, val"):
        load_split("fields", "test", 16, tmp_path)
    with pytest.raises(ValueError, match="valid options: .*n_train"):
        load_split("fields", "train", 16, tmp_path, n_tr=3)
    with pytest.raises(ValueError, match="positive integer"):
        load_split("fields", "train", 0, tmp_path)


@pytest.mark.parametrize("name", EMBEDDED)
def test_embedded_contract(name, tmp_path):
    ds = get_dataset(name)
    opts = ds.test_options
    size = 32
    train = load_split(name, "train", size, tmp_path, **opts)
    val = load_split(name, "val", size, tmp_path, **opts)
    for x in (train, val):
        assert x.dtype == torch.float32 and x.ndim == 4
        assert x.shape[1] == ds.channels and x.shape[-2:] == (size, size)
        assert x.shape[0] > 0 and 0.0 <= x.min() and x.max() <= 1.0 and x.std() > 0.01
    # deterministic: a second build is bit-identical, and the checksum is stable
    assert torch.equal(train, load_split(name, "train", size, tmp_path, **opts))
    assert dataset_checksum(name, size, tmp_path, **opts) == dataset_checksum(name, size, tmp_path, **opts)
    # train and val share no image
    flat_train = {tuple(r) for r in train.flatten(1).numpy().round(6).tolist()}
    assert not any(tuple(r) in flat_train for r in val.flatten(1).numpy().round(6).tolist())
    assert not (tmp_path / "prepared").exists()  # embedded on-the-fly builds write nothing


def test_limit_keeps_the_first_images(tmp_path):
    full = load_split("fields", "train", 16, tmp_path, n_train=5)
    assert torch.equal(load_split("fields", "train", 16, tmp_path, n_train=5, limit=2), full[:2])


def test_fields_are_seeded_periodic_and_resolution_consistent():
    a = random_fields(2, 64, seed=3)
    assert torch.equal(a, random_fields(2, 64, seed=3))
    assert not torch.equal(a, random_fields(2, 64, seed=4))
    assert a.amin(dim=(1, 2, 3)).eq(0).all() and a.amax(dim=(1, 2, 3)).eq(1).all()
    # periodic: the jump across the wrap-around edge is like an interior jump, not a seam
    interior = (a[..., 1:, :] - a[..., :-1, :]).abs().mean()
    wrap = (a[..., 0, :] - a[..., -1, :]).abs().mean()
    assert wrap < 3 * interior
    # the GMRF correlation length is in physical units: the mean neighbour difference at 128^2 is
    # about half that at 64^2 (a smooth field), unlike white noise where it would not change
    def roughness(n):
        f = random_fields(16, n, seed=0)
        return (f[..., 1:, :] - f[..., :-1, :]).abs().mean()
    ratio = roughness(64) / roughness(128)
    assert 1.4 < ratio < 2.8, ratio
    with pytest.raises(ValueError, match="valid choices: gmrf, powerlaw"):
        random_fields(1, 8, seed=0, kind="bogus")


def test_fields_train_and_val_streams_differ(tmp_path):
    tr = load_split("fields", "train", 16, tmp_path, n_train=3, n_val=3)
    va = load_split("fields", "val", 16, tmp_path, n_train=3, n_val=3)
    assert not torch.equal(tr, va)


def test_skimage_split_is_by_image_and_images_load_offline():
    assert not set(TRAIN_IMAGES) & set(VAL_IMAGES)
    for name in TRAIN_IMAGES + VAL_IMAGES:  # every listed image ships in the wheel
        assert load_image(name).ndim in (2, 3), name
    with pytest.raises(ValueError, match="both train and val"):
        get_dataset("skimage").resolve({"train_images": ["camera"], "val_images": ["camera"]})


def test_skimage_channels_and_patch_counts(tmp_path):
    opts = dict(max_side=128, train_images=["camera", "astronaut"], val_images=["coins"])
    rgb = load_split("skimage", "train", 32, tmp_path, **opts)
    assert rgb.shape == (2 * 16, 3, 32, 32)  # 128x128 -> 4x4 non-overlapping patches each
    gray_image = rgb[:16]  # camera is grayscale: replicated channels
    assert torch.equal(gray_image[:, 0], gray_image[:, 1])
    one = load_split("skimage", "train", 32, tmp_path, channels=1, **opts)
    assert one.shape[1] == 1
    capped = load_split("skimage", "train", 32, tmp_path, max_patches_per_image=3, **opts)
    assert capped.shape[0] == 6
    with pytest.raises(ValueError, match="no 256x256 patch fits"):
        load_split("skimage", "val", 256, tmp_path, max_side=128, val_images=["coins"],
                   train_images=["camera"])


def test_tile_grid_and_evenly_spaced_cap():
    img = torch.arange(64.0).view(1, 8, 8)
    p = tile(img, 4)
    assert p.shape == (4, 1, 4, 4) and torch.equal(p[1, 0], img[0, :4, 4:])
    assert tile(img, 4, stride=2).shape[0] == 9
    assert tile(img, 16).shape[0] == 0
    assert torch.equal(tile(img, 4, max_patches=2), p[[0, 3]])


def test_digits_split_and_range(tmp_path):
    tr = load_split("digits", "train", 8, tmp_path)
    va = load_split("digits", "val", 8, tmp_path)
    assert tr.shape[0] + va.shape[0] == 1797 and va.shape[0] == 359
    assert tr.max() == 1.0  # 16/16


def test_prepare_cli_writes_atomically_and_load_split_reads_it(tmp_path, capsys):
    rc = prepare_main(["--dataset", "fields", "--image-size", "16", "--root", str(tmp_path),
                       "--limit-train", "3", "-o", "n_train=5", "-o", "n_val=2"])
    assert rc == 0 and "sha256" in capsys.readouterr().out
    d = prepared_dir(tmp_path, "fields", 16)
    assert sorted(p.name for p in d.iterdir()) == ["checksum.txt", "meta.json", "train.pt", "val.pt"]
    assert [p.name for p in d.parent.iterdir()] == ["16"]  # no temporaries left
    train = load_split("fields", "train", 16, tmp_path)
    assert train.shape == (3, 1, 16, 16)
    in_memory = build_splits("fields", 16, tmp_path, n_train=5, n_val=2)
    assert torch.equal(train, in_memory["train"][:3])
    checksum = dataset_checksum("fields", 16, tmp_path)
    assert checksum == (d / "checksum.txt").read_text().strip()
    assert json.loads((d / "meta.json").read_text())["options"]["n_train"] == 5
    with pytest.raises(ValueError, match="prepared with different options"):
        load_split("fields", "train", 16, tmp_path, n_train=7)
    # preparing again gives the same checksum (deterministic) and replaces the folder
    assert prepare_main(["--dataset", "fields", "--image-size", "16", "--root", str(tmp_path),
                         "--limit-train", "3", "-o", "n_train=5", "-o", "n_val=2"]) == 0
    assert dataset_checksum("fields", 16, tmp_path) == checksum


def test_corrupt_prepared_data_is_detected(tmp_path):
    d = prepare("fields", 16, tmp_path, n_train=2, n_val=2)
    torch.save(torch.zeros(2, 1, 16, 16), d / "val.pt")
    with pytest.raises(CorruptPreparedDataError, match="prepare again"):
        load_split("fields", "val", 16, tmp_path)
    with pytest.raises(CorruptPreparedDataError):
        dataset_checksum("fields", 16, tmp_path)


def test_failed_prepare_leaves_nothing(tmp_path, monkeypatch):
    from mfcbench.data import store

    def boom(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(store.torch, "save", boom)
    with pytest.raises(RuntimeError, match="disk full"):
        prepare("fields", 16, tmp_path, n_train=2, n_val=2)
    assert not prepared_dir(tmp_path, "fields", 16).exists()
    assert list(prepared_dir(tmp_path, "fields", 16).parent.iterdir()) == []


def test_network_dataset_not_prepared_names_the_command(tmp_path):
    with pytest.raises(DatasetNotPreparedError, match="python -m mfcbench prepare --dataset stl10 --image-size 64"):
        load_split("stl10", "train", 64, tmp_path)
    with pytest.raises(DatasetNotPreparedError):
        dataset_checksum("urban100", 64, tmp_path)
