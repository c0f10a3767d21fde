"""Network datasets driven through the real torchvision loaders on tiny files in the real formats,
plus the fetch machinery: offline messages, checksums, corrupt archives, path traversal."""

from __future__ import annotations

import hashlib
import io as _io
import struct
import tarfile
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from mfcbench.data import ArchiveError, ManualDownloadRequired, dataset_checksum, load_split, prepare, prepared_dir
from mfcbench.data.fetch import download, safe_extract
from mfcbench.cli.prepare import main as prepare_main

RNG = np.random.default_rng(0)


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


# --- STL10 ------------------------------------------------------------------------------------
def write_stl10(root: Path, n_train=3, n_test=2) -> dict[str, np.ndarray]:
    """stl10_binary/*.bin as STL-10 ships them: uint8, per image 3 planes stored column-major."""
    folder = root / "raw" / "stl10" / "stl10_binary"
    folder.mkdir(parents=True)
    images = {}
    for split, n in (("train", n_train), ("test", n_test), ("unlabeled", 1)):
        x = RNG.integers(0, 256, size=(n, 3, 96, 96), dtype=np.uint8)
        x[:, :, :, :48] = 0  # left half black: an orientation check
        images[split] = x
        (folder / f"{split}_X.bin").write_bytes(np.ascontiguousarray(x.transpose(0, 1, 3, 2)).tobytes())
        if split != "unlabeled":
            (folder / f"{split}_y.bin").write_bytes(bytes(RNG.integers(1, 11, size=n, dtype=np.uint8)))
    return images


def test_stl10_real_loader_on_tiny_binary(tmp_path):
    images = write_stl10(tmp_path)
    d = prepare("stl10", 32, tmp_path, verify_md5=False)
    train, val = load_split("stl10", "train", 32, tmp_path), load_split("stl10", "val", 32, tmp_path)
    assert train.shape == (3, 3, 32, 32) and val.shape == (2, 3, 32, 32)
    assert train[..., :15].max() == 0 and train[..., 17:].mean() > 0.3  # left half stays left
    expected = torch.nn.functional.interpolate(torch.from_numpy(images["train"]).float() / 255, size=32,
                                               mode="bilinear", antialias=True, align_corners=False)
    torch.testing.assert_close(train, expected.clamp(0, 1))
    assert dataset_checksum("stl10", 32, tmp_path) == (d / "checksum.txt").read_text().strip()


def test_stl10_md5_check_rejects_files_that_are_not_the_published_ones(tmp_path):
    write_stl10(tmp_path)
    with pytest.raises(ManualDownloadRequired, match="place stl10_binary.tar.gz in .*raw/stl10/"):
        prepare("stl10", 32, tmp_path)  # verify_md5=True by default
    assert not prepared_dir(tmp_path, "stl10", 32).exists()


def test_stl10_offline_message_is_fast_and_names_the_file(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MFCBENCH_OFFLINE", "1")
    start = time.perf_counter()
    rc = prepare_main(["--dataset", "stl10", "--image-size", "64", "--root", str(tmp_path)])
    assert rc == 1 and time.perf_counter() - start < 5
    err = capsys.readouterr().err
    assert "place stl10_binary.tar.gz in" in err and str(tmp_path / "raw" / "stl10") in err
    assert "http://ai.stanford.edu/~acoates/stl10/stl10_binary.tar.gz" in err
    assert not (tmp_path / "prepared").exists()


# --- MNIST ------------------------------------------------------------------------------------
def idx_bytes(array: np.ndarray) -> bytes:
    """IDX format: magic (0, 0, dtype 0x08 = ubyte, ndim), big-endian dims, raw bytes."""
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(np.uint8).tobytes()


def write_mnist(root: Path, n_train=4, n_test=2) -> dict[str, np.ndarray]:
    folder = root / "raw" / "mnist" / "MNIST" / "raw"
    folder.mkdir(parents=True)
    out = {}
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        x = RNG.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        x[:, :14] = 255  # top half white
        out[prefix] = x
        (folder / f"{prefix}-images-idx3-ubyte").write_bytes(idx_bytes(x))
        (folder / f"{prefix}-labels-idx1-ubyte").write_bytes(idx_bytes(np.arange(n) % 10))
    return out


def test_mnist_real_loader_on_idx_files(tmp_path):
    images = write_mnist(tmp_path)
    prepare("mnist", 28, tmp_path)
    train, val = load_split("mnist", "train", 28, tmp_path), load_split("mnist", "val", 28, tmp_path)
    assert train.shape == (4, 1, 28, 28) and val.shape == (2, 1, 28, 28)
    assert torch.equal(train[:, 0], torch.from_numpy(images["train"]).float() / 255)
    prepare("mnist", 56, tmp_path)
    up = load_split("mnist", "train", 56, tmp_path)
    assert up.shape == (4, 1, 56, 56) and up[..., :26, :].min() == 1.0


def test_mnist_placed_gz_with_wrong_md5_is_rejected(tmp_path):
    folder = tmp_path / "raw" / "mnist" / "MNIST" / "raw"
    folder.mkdir(parents=True)
    (folder / "train-images-idx3-ubyte.gz").write_bytes(b"not the real file")
    with pytest.raises(ArchiveError, match="checksum mismatch"):
        prepare("mnist", 28, tmp_path)
    assert not (folder / "train-images-idx3-ubyte").exists()
    assert not (tmp_path / "prepared").exists()


def test_mnist_offline_names_the_idx_files(tmp_path, monkeypatch):
    monkeypatch.setenv("MFCBENCH_OFFLINE", "1")
    with pytest.raises(ManualDownloadRequired, match="place train-images-idx3-ubyte.gz in .*MNIST/raw"):
        prepare("mnist", 28, tmp_path)


# --- Urban100 ---------------------------------------------------------------------------------
def png_bytes(h: int, w: int, value: int) -> bytes:
    buf = _io.BytesIO()
    img = RNG.integers(0, 256, size=(h, w, 3), dtype=np.uint8)
    img[0, 0] = value  # identifies the image
    Image.fromarray(img).save(buf, format="PNG")
    return buf.getvalue()


def write_urban_zip(path: Path, n=5, h=40, w=72) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for i in range(1, n + 1):
            zf.writestr(f"Urban100_HR/img_{i:03d}.png", png_bytes(h, w, i))
    return path


def urban_options(archive: Path, **extra):
    return {"url": archive.as_uri(), "md5": md5(archive), "n_train_images": 3, **extra}


def test_urban100_download_checksum_extract_and_patch_split(tmp_path, monkeypatch):
    monkeypatch.setenv("MFCBENCH_OFFLINE", "0")  # file:// stands in for the server
    archive = write_urban_zip(tmp_path / "Urban100_HR.zip")
    root = tmp_path / "data"
    d = prepare("urban100", 16, root, **urban_options(archive))
    assert (root / "raw" / "urban100" / "Urban100_HR.zip").is_file()
    train, val = load_split("urban100", "train", 16, root), load_split("urban100", "val", 16, root)
    assert train.shape == (3 * 2 * 4, 3, 16, 16) and val.shape == (2 * 2 * 4, 3, 16, 16)  # 40x72 -> 2x4 grid
    # split by image: the first patch of each image carries its id in pixel (0, 0)
    ids = lambda x: sorted({round(float(v) * 255) for v in x[::8, 0, 0, 0]})  # noqa: E731
    assert ids(train) == [1, 2, 3] and ids(val) == [4, 5]
    assert dataset_checksum("urban100", 16, root) == (d / "checksum.txt").read_text().strip()


def test_urban100_checksum_mismatch_leaves_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("MFCBENCH_OFFLINE", "0")
    archive = write_urban_zip(tmp_path / "Urban100_HR.zip")
    root = tmp_path / "data"
    with pytest.raises(ArchiveError, match="checksum mismatch"):
        prepare("urban100", 16, root, **urban_options(archive, md5="0" * 32))
    assert not prepared_dir(root, "urban100", 16).exists()
    assert not list((root / "raw" / "urban100").glob("*.zip*"))  # no partial download kept


def test_urban100_truncated_archive_is_rejected(tmp_path, monkeypatch):
    monkeypatch.setenv("MFCBENCH_OFFLINE", "0")
    archive = write_urban_zip(tmp_path / "full.zip")
    cut = tmp_path / "Urban100_HR.zip"
    cut.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    root = tmp_path / "data"
    with pytest.raises(ArchiveError, match="bad archive"):
        prepare("urban100", 16, root, **urban_options(cut))  # checksum of the cut file: passes, archive bad
    assert not prepared_dir(root, "urban100", 16).exists()
    assert not (root / "raw" / "urban100" / "extracted" / "Urban100_HR").exists()


def test_urban100_placed_by_hand_offline(tmp_path, monkeypatch):
    monkeypatch.setenv("MFCBENCH_OFFLINE", "1")
    root = tmp_path / "data"
    options = {"url": "https://example.invalid/x/Urban100_HR.zip", "n_train_images": 3}
    with pytest.raises(ManualDownloadRequired, match=r"place Urban100_HR.zip in .*raw/urban100/ \(from https"):
        prepare("urban100", 16, root, md5="0" * 32, **options)
    (root / "raw" / "urban100").mkdir(parents=True)
    placed = write_urban_zip(root / "raw" / "urban100" / "Urban100_HR.zip")
    prepare("urban100", 16, root, md5=md5(placed), **options)
    assert load_split("urban100", "val", 16, root).shape[0] == 16


def test_urban100_refuses_an_unchecked_url(tmp_path):
    with pytest.raises(ValueError, match="md5 or sha256"):
        prepare("urban100", 16, tmp_path, md5=None)


# --- safe extraction --------------------------------------------------------------------------
def test_zip_path_traversal_is_refused(tmp_path):
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("ok.txt", "fine")
        zf.writestr("../evil", "escaped")
    target = tmp_path / "out"
    with pytest.raises(ArchiveError, match="escapes the target folder"):
        safe_extract(archive, target)
    assert not (tmp_path / "evil").exists() and not (target / "ok.txt").exists()


@pytest.mark.parametrize("name", ["../evil", "/abs/evil", "a/../../evil"])
def test_tar_path_traversal_is_refused(tmp_path, name):
    archive = tmp_path / "evil.tar.gz"
    with tarfile.open(archive, "w:gz") as tf:
        data = b"escaped"
        info = tarfile.TarInfo(name)
        info.size = len(data)
        tf.addfile(info, _io.BytesIO(data))
    with pytest.raises(ArchiveError, match="escapes the target folder"):
        safe_extract(archive, tmp_path / "out")
    assert not (tmp_path / "evil").exists()


def test_tar_symlink_is_refused_and_good_tar_extracts(tmp_path):
    bad = tmp_path / "link.tar"
    with tarfile.open(bad, "w") as tf:
        info = tarfile.TarInfo("link")
        info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tf.addfile(info)
    with pytest.raises(ArchiveError, match="not a file or folder"):
        safe_extract(bad, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    good = tmp_path / "good.tar.gz"
    with tarfile.open(good, "w:gz") as tf:
        info = tarfile.TarInfo("dir/a.txt")
        info.size = 2
        tf.addfile(info, _io.BytesIO(b"hi"))
    safe_extract(good, tmp_path / "out")
    assert (tmp_path / "out" / "dir" / "a.txt").read_text() == "hi"
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["dir"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["good.tar.gz", "link.tar", "out"]  # no temporaries


def test_not_an_archive_is_rejected(tmp_path):
    junk = tmp_path / "junk.tar.gz"
    junk.write_bytes(b"\x00" * 100)
    with pytest.raises(ArchiveError, match="bad archive"):
        safe_extract(junk, tmp_path / "out")


# --- download ---------------------------------------------------------------------------------
def test_unreachable_server_fails_fast_with_placement_advice(tmp_path, monkeypatch):
    monkeypatch.setenv("MFCBENCH_OFFLINE", "0")
    start = time.perf_counter()
    with pytest.raises(ManualDownloadRequired, match=r"place x.tar.gz in .*dl/ \(from http://127.0.0.1:9/x.tar.gz\)"):
        download("http://127.0.0.1:9/x.tar.gz", tmp_path / "dl" / "x.tar.gz", md5="0" * 32, timeout=2)
    assert time.perf_counter() - start < 5
    assert list((tmp_path / "dl").iterdir()) == []


def test_offline_env_skips_the_attempt(tmp_path, monkeypatch):
    monkeypatch.setenv("MFCBENCH_OFFLINE", "1")
    src = tmp_path / "src.bin"
    src.write_bytes(b"data")
    with pytest.raises(ManualDownloadRequired, match="MFCBENCH_OFFLINE is set"):
        download(src.as_uri(), tmp_path / "dst.bin")  # reachable, but never tried
    assert not (tmp_path / "dst.bin").exists()


# --- CelebA -----------------------------------------------------------------------------------
def write_celeba(root: Path, partitions=(0, 0, 0, 1, 1, 2)) -> None:
    """The aligned-CelebA layout torchvision reads: JPEGs plus five space-separated list files."""
    folder = root / "raw" / "celeba" / "celeba"
    (folder / "img_align_celeba").mkdir(parents=True)
    names = [f"{i:06d}.jpg" for i in range(1, len(partitions) + 1)]
    for name in names:
        Image.fromarray(RNG.integers(0, 256, size=(218, 178, 3), dtype=np.uint8)).save(
            folder / "img_align_celeba" / name)
    n = len(names)
    (folder / "list_eval_partition.txt").write_text("".join(f"{f} {p}\n" for f, p in zip(names, partitions)))
    (folder / "identity_CelebA.txt").write_text("".join(f"{f} {i + 1}\n" for i, f in enumerate(names)))
    (folder / "list_attr_celeba.txt").write_text(
        f"{n}\n5_o_Clock_Shadow Smiling \n" + "".join(f"{f} -1  1\n" for f in names))
    (folder / "list_bbox_celeba.txt").write_text(
        f"{n}\nimage_id x_1 y_1 width height\n" + "".join(f"{f} 1 2 3 4\n" for f in names))
    (folder / "list_landmarks_align_celeba.txt").write_text(
        f"{n}\nlefteye_x lefteye_y righteye_x righteye_y nose_x nose_y leftmouth_x leftmouth_y rightmouth_x "
        "rightmouth_y\n" + "".join(f"{f} 69 109 106 113 77 142 73 152 108 154\n" for f in names))


def test_celeba_offline_message_lists_the_files(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MFCBENCH_OFFLINE", "1")
    rc = prepare_main(["--dataset", "celeba", "--image-size", "64", "--root", str(tmp_path)])
    err = capsys.readouterr().err
    assert rc == 1 and "img_align_celeba.zip" in err and "list_eval_partition.txt" in err
    assert str(tmp_path / "raw" / "celeba" / "celeba") in err
    assert not (tmp_path / "prepared").exists()


def test_celeba_real_loader_on_tiny_fixture(tmp_path):
    write_celeba(tmp_path)
    prepare("celeba", 32, tmp_path, verify_md5=False)
    train, val = load_split("celeba", "train", 32, tmp_path), load_split("celeba", "val", 32, tmp_path)
    assert train.shape == (3, 3, 32, 32) and val.shape == (2, 3, 32, 32)
    with pytest.raises(ManualDownloadRequired):  # md5 of the list files is checked by default
        prepare("celeba", 32, tmp_path / "other")
