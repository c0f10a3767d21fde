"""Your own images (issue 30): image files are read at their real range (8- and 16-bit, palette, alpha,
CMYK, 1-bit), a mode without a known range is refused, files are opened one at a time with a pixel
budget checked before decoding, every image error is one line naming its file, and a tensor file that
is sparse or holds NaN/inf is refused naming the file."""

from __future__ import annotations

import os
import resource
import warnings

import numpy as np
import pytest
import torch
from PIL import Image, ImageFile

from mfcbench.data.tensors import MAX_PIXELS, read_path


def _one_line_naming(error: pytest.ExceptionInfo, path, *words: str) -> None:
    text = str(error.value)
    assert str(path) in text and "\n" not in text, text
    for word in words:
        assert word in text, text


def _folder(tmp_path, name="images"):
    folder = tmp_path / name
    folder.mkdir()
    return folder


RAMP16 = (np.arange(256, dtype=np.uint16) * 257).reshape(16, 16)  # 0..65535, one pixel at the top


def _wide(values: np.ndarray, mode: str) -> Image.Image:
    """A 16-bit image in Pillow's mode `mode` (its convert() clips to 8 bits, so built from the values)."""
    if mode == "I;16B":
        return Image.frombytes(mode, values.shape[::-1], values.astype(">u2").tobytes())
    return Image.fromarray(values.astype(np.int32) if mode == "I" else values)


@pytest.mark.parametrize("mode, suffix", [("I;16", ".png"), ("I;16B", ".tif"), ("I", ".tif")])
def test_16_bit_images_are_scaled_by_their_real_maximum(tmp_path, mode, suffix):
    folder = _folder(tmp_path)
    _wide(RAMP16, mode).save(folder / f"a{suffix}")
    _wide(RAMP16[::-1].copy(), mode).save(folder / f"b{suffix}")
    assert Image.open(folder / f"a{suffix}").mode == mode
    splits = read_path(folder, 16, val_fraction=0.5)
    expected = torch.from_numpy(RAMP16.astype(np.float32))[None, None] / 65535.0
    assert splits["val"].shape == (1, 1, 16, 16)  # grayscale: one channel
    assert torch.equal(splits["val"], expected)  # not clipped: one pixel of 256 is white
    assert float((splits["train"] == 1.0).float().mean()) == 1 / 256


def test_a_16_bit_image_beside_colour_images_is_scaled_then_repeated(tmp_path):
    folder = _folder(tmp_path)
    Image.fromarray(RAMP16).save(folder / "a.png")
    Image.new("RGB", (16, 16), (255, 0, 0)).save(folder / "b.png")
    splits = read_path(folder, 16, val_fraction=0.5)
    gray = torch.from_numpy(RAMP16.astype(np.float32)) / 65535.0
    assert torch.equal(splits["val"][0], gray.expand(3, 16, 16))


def _palette(transparency: bool) -> Image.Image:
    image = Image.fromarray(np.arange(64, dtype=np.uint8).reshape(8, 8) % 4, "P")
    image.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0, 10, 20, 30] + [0] * (3 * 252))
    if transparency:
        image.info["transparency"] = 1
    return image


def _rgba() -> Image.Image:
    rng = np.random.default_rng(1)
    return Image.fromarray(rng.integers(0, 256, (8, 8, 4), dtype=np.uint8), "RGBA")


@pytest.mark.parametrize("name, image, expected", [
    ("palette.png", _palette(False), lambda im: np.asarray(im.convert("RGB"))),
    ("palette_t.png", _palette(True), lambda im: np.asarray(im.convert("RGBA"))[..., :3]),  # colour, not alpha
    ("rgba.png", _rgba(), lambda im: np.asarray(im)[..., :3]),  # alpha dropped, not composited
    ("la.png", _rgba().convert("LA"), lambda im: np.repeat(np.asarray(im)[..., :1], 3, axis=2)),
    ("cmyk.tif", _rgba().convert("CMYK"), lambda im: np.asarray(im.convert("RGB"))),
    ("rgb.png", _rgba().convert("RGB"), lambda im: np.asarray(im)),
])
def test_8_bit_colour_modes_are_read_at_their_range(tmp_path, name, image, expected):
    folder = _folder(tmp_path)
    image.save(folder / name, **({"transparency": 1} if "transparency" in image.info else {}))
    image.save(folder / ("z" + name), **({"transparency": 1} if "transparency" in image.info else {}))
    reopened = Image.open(folder / name)
    assert reopened.mode == image.mode
    want = torch.from_numpy(expected(reopened).copy()).permute(2, 0, 1).float() / 255.0
    assert torch.equal(read_path(folder, 8, val_fraction=0.5)["val"][0], want)


@pytest.mark.parametrize("mode", ["1", "L"])
def test_8_bit_and_1_bit_grayscale_give_one_channel_in_0_1(tmp_path, mode):
    folder = _folder(tmp_path)
    ramp = np.arange(64, dtype=np.uint8).reshape(8, 8) * 4
    ramp[-1, -1] = 255
    for name in ("a.png", "b.png"):
        Image.fromarray(ramp).convert(mode).save(folder / name)
    val = read_path(folder, 8, val_fraction=0.5)["val"]
    want = np.asarray(Image.fromarray(ramp).convert(mode).convert("L"), dtype=np.float32) / 255.0
    assert val.shape == (1, 1, 8, 8) and torch.equal(val[0, 0], torch.from_numpy(want))
    assert float(val.max()) == 1.0 and float(val.min()) == 0.0


def test_a_float_image_has_no_known_range_and_is_refused_naming_the_file(tmp_path):
    folder = _folder(tmp_path)
    Image.new("L", (8, 8)).save(folder / "a.png")
    Image.fromarray(np.full((8, 8), 3.5, dtype=np.float32), "F").save(folder / "depth.tif")
    with pytest.raises(ValueError) as error:
        read_path(folder, 8)
    _one_line_naming(error, folder / "depth.tif", "mode F", ".pt")


def test_a_32_bit_image_beyond_16_bits_is_refused_naming_the_file(tmp_path):
    folder = _folder(tmp_path)
    Image.fromarray(np.full((8, 8), 70000, dtype=np.int32), "I").save(folder / "big.tif")
    Image.new("L", (8, 8)).save(folder / "a.png")
    with pytest.raises(ValueError) as error:
        read_path(folder, 8)
    _one_line_naming(error, folder / "big.tif", "65535")


def test_train_and_val_folders_get_one_channel_count(tmp_path):
    for split, mode in (("train", "L"), ("val", "RGB")):
        _folder(tmp_path, split)
        Image.new(mode, (8, 8), 200 if mode == "L" else (200, 200, 200)).save(tmp_path / split / "a.png")
    splits = read_path(tmp_path, 8)
    assert splits["train"].shape == splits["val"].shape == (1, 3, 8, 8)
    assert torch.equal(splits["train"], splits["val"])


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="counts open files in /proc/self/fd")
def test_a_folder_of_more_images_than_open_files_allowed_is_read(tmp_path):
    folder = _folder(tmp_path)
    for i in range(48):
        Image.new("L", (4, 4), i).save(folder / f"{i:03d}.png")
    read_path(folder, 4)  # load Pillow's plugins before the limit
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    in_use = len(os.listdir("/proc/self/fd"))
    resource.setrlimit(resource.RLIMIT_NOFILE, (in_use + 24, hard))
    try:
        splits = read_path(folder, 4)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert splits["train"].shape[0] + splits["val"].shape[0] == 48


def test_an_image_over_the_pixel_budget_is_refused_before_any_decoding(tmp_path, monkeypatch):
    folder = _folder(tmp_path)
    Image.new("L", (10, 10)).save(folder / "a.png")
    Image.new("L", (40, 30)).save(folder / "huge.png")
    decoded = []
    real_load = ImageFile.ImageFile.load
    monkeypatch.setattr(ImageFile.ImageFile, "load", lambda self: decoded.append(self) or real_load(self))
    with pytest.raises(ValueError) as error:
        read_path(folder, 8, max_pixels=1000)
    _one_line_naming(error, folder / "huge.png", "40x30", "1,200", "1,000", "max_pixels")
    assert decoded == []
    assert read_path(folder, 8, max_pixels=1200)["train"].shape == (1, 1, 8, 8)
    assert MAX_PIXELS >= 1 << 24


@pytest.mark.parametrize("size", [(30, 20), (40, 30)])  # over Pillow's warning limit; over its error limit
def test_pillows_decompression_bomb_check_names_the_file(tmp_path, monkeypatch, size):
    folder = _folder(tmp_path)
    Image.new("L", size).save(folder / "bomb.png")
    Image.new("L", (8, 8)).save(folder / "a.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 500)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the refusal must not depend on the warnings filter
        with pytest.raises(ValueError) as error:
            read_path(folder, 8)
    _one_line_naming(error, folder / "bomb.png", "decompression bomb")


def test_a_truncated_png_names_the_file(tmp_path):
    folder = _folder(tmp_path)
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(folder / "cut.png")
    Image.new("RGB", (8, 8)).save(folder / "ok.png")
    data = (folder / "cut.png").read_bytes()
    (folder / "cut.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError) as error:
        read_path(folder, 8)
    _one_line_naming(error, folder / "cut.png", "truncated")


def test_a_file_that_is_not_an_image_names_the_file(tmp_path):
    folder = _folder(tmp_path)
    (folder / "notes.png").write_text("not an image\n")
    Image.new("RGB", (8, 8)).save(folder / "ok.png")
    with pytest.raises(ValueError) as error:
        read_path(folder, 8)
    _one_line_naming(error, folder / "notes.png")


@pytest.mark.filterwarnings("ignore:Validating sparse tensor invariants")
def test_a_sparse_tensor_file_is_refused_naming_the_file(tmp_path):
    path = tmp_path / "sparse.pt"
    torch.save(torch.rand(4, 1, 8, 8).to_sparse(), path)
    with pytest.raises(ValueError) as error:
        read_path(path, 8)
    _one_line_naming(error, path, "sparse", "to_dense()")


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_nan_or_inf_in_a_tensor_file_is_refused_naming_the_file(tmp_path, bad):
    path = tmp_path / "pair.pt"
    train = torch.rand(4, 1, 8, 8)
    train[2, 0, 3, 3] = bad
    torch.save({"train": train, "val": torch.rand(2, 1, 8, 8)}, path)
    with pytest.raises(ValueError) as error:
        read_path(path, 8)
    _one_line_naming(error, path, "NaN or infinite")
