"""The library checks its inputs where the mistake is made (one line naming the argument and the fix), and
`fit` talks while it trains, takes a DataLoader, and has the batch a user expects."""

from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn
from torch.nn import functional as F

import mfcbench as mfc
from mfcbench.core.restrict import restrict
from mfcbench.train import config as config_mod

QUIET = {"levels": 2, "iterations": 2, "val_size": 4, "log": None}


def _pairs(n: int = 8, size: int = 16, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return torch.rand(n, 1, size, size, generator=gen), torch.rand(n, 1, size, size, generator=gen)


def _conv(out_channels: int = 1) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, out_channels, 3, padding=1))


def _batchnorm_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.Conv2d(4, 1, 1))


def test_batchnorm_is_warned_about_in_multiscale_loss_and_fit():
    x, y = _pairs(7)
    with pytest.warns(UserWarning, match=r"multiscale_loss: .*BatchNorm: 1\).*once per term.*GroupNorm"):
        mfc.multiscale_loss(_batchnorm_net(), x, y, F.mse_loss, levels=3)
    with pytest.warns(UserWarning, match=r"fit: .*batch statistics.*once per term"):
        mfc.fit(_batchnorm_net(), (x, y), (x, y), **QUIET)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        mfc.multiscale_loss(_conv(), x, y, F.mse_loss, levels=3)  # no BatchNorm: nothing to say
        mfc.multiscale_loss(_batchnorm_net().eval(), x, y, F.mse_loss, levels=3)  # frozen statistics


@pytest.mark.parametrize("where", ["train inputs", "train targets", "val inputs", "val targets"])
def test_nan_or_inf_in_the_data_is_refused_naming_the_tensor(where):
    split, kind = where.split()
    data = {"train": list(_pairs()), "val": list(_pairs(seed=1))}
    bad = data[split][0 if kind == "inputs" else 1].clone()
    bad[0, 0, 0, 0] = float("nan") if kind == "inputs" else float("inf")
    data[split][0 if kind == "inputs" else 1] = bad
    with pytest.raises(ValueError, match=f"fit: {where} hold 1 NaN or inf"):
        mfc.fit(_conv(), tuple(data["train"]), tuple(data["val"]), **QUIET)


def test_float64_model_is_refused_with_the_fix():
    x, y = _pairs()
    with pytest.raises(ValueError, match=r"fit: the model's parameters are float64.*model\.float\(\)"):
        mfc.fit(_conv().double(), (x.double(), y.double()), (x.double(), y.double()), **QUIET)


def test_prediction_of_another_shape_than_the_target_is_refused():
    x, y = _pairs()
    with pytest.raises(ValueError, match=r"fit: the model's prediction has shape \(\d+, 4, 8, 8\) but the target "
                                         r"has shape \(\d+, 1, 8, 8\)"):
        mfc.fit(_conv(4), (x, y), (x, y), **QUIET)
    with pytest.raises(ValueError, match=r"multiscale_loss: the model's prediction has shape \(1, 4, 16, 16\)"):
        mfc.multiscale_loss(_conv(4), x[:7], y[:7], F.mse_loss, levels=3)
    own = mfc.fit(_conv(4), (x, y), (x, y), loss_fn=lambda p, t: (p.mean(1, keepdim=True) - t).pow(2).mean(), **QUIET)
    assert own[1]["status"] == "ok"  # your own loss owns the shapes


def test_denoise_with_a_model_without_cond_trains_and_says_so():
    lines: list[str] = []
    clean = _pairs(8)[0]
    _, result = mfc.fit(_conv(), clean, clean, task="denoise", levels=2, iterations=2, val_size=4, log=lines.append)
    assert result["status"] == "ok"
    assert any("Sequential.forward takes no `cond`" in line and "cond=None" in line for line in lines)


def test_levels_below_one_and_a_restriction_below_one_pixel_say_so():
    x, y = _pairs(4, 32)
    with pytest.raises(ValueError, match=r"^multiscale_loss: levels must be >= 1, got 0$"):
        mfc.multiscale_loss(_conv(), x, y, F.mse_loss, levels=0)
    with pytest.raises(ValueError, match=r"^fit: levels must be an int >= 1, got 0$"):
        mfc.fit(_conv(), (x, y), (x, y), levels=0, log=None)
    with pytest.raises(ValueError, match=r"^fmsgd_schedule: levels must be >= 1, got 0$"):
        list(mfc.fmsgd_schedule(levels=0))
    assert restrict(x, 5).shape[-2:] == (1, 1)
    with pytest.raises(ValueError, match=r"^restrict: level 6 would make a 32x32 mesh smaller than one pixel "
                                         r"\(at most level 5\)$"):
        restrict(x, 6)


@pytest.mark.skipif(torch.cuda.is_available(), reason="the message is for a machine without CUDA")
def test_cuda_without_cuda_in_the_library_s_words():
    x, y = _pairs()
    with pytest.raises(ValueError, match=r"^fit: device='cuda' but CUDA is not available here; use device='auto'"):
        mfc.fit(_conv(), (x, y), (x, y), device="cuda", **QUIET)


def test_image_size_other_than_the_data_is_refused():
    x, y = _pairs()
    with pytest.raises(ValueError, match=r"fit: image_size=64 but the train images are 16 pixels across"):
        mfc.fit(_conv(), (x, y), (x, y), image_size=64, **QUIET)


def test_a_dataloader_trains_as_its_tensors_and_is_announced():
    x, y = _pairs(12)
    _, direct = mfc.fit(_conv(), (x, y), (x, y), **QUIET)
    lines: list[str] = []
    pairs = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=5)
    _, loaded = mfc.fit(_conv(), pairs, (x, y), levels=2, iterations=2, val_size=4, log=lines.append)
    def losses(result):
        return [(row["train_loss"], row["val_metric"]) for row in result["curve"]]

    assert loaded["metrics"] == direct["metrics"] and losses(loaded) == losses(direct)
    assert any("read 3 batches of train into memory: 12 images of 1x16x16" in line for line in lines)
    clean = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x), batch_size=4)  # batches are [images]
    _, denoised = mfc.fit(_conv(), clean, x, task="denoise", **QUIET)
    assert denoised["status"] == "ok"
    with pytest.raises(ValueError, match=r"fit: batch 0 of train is a dict; each batch must be a tensor"):
        mfc.fit(_conv(), [{"x": x}], (x, y), **QUIET)


def test_fit_prints_progress_by_default_and_log_none_silences_it(capsys):
    x, y = _pairs()
    mfc.fit(_conv(), (x, y), (x, y), levels=2, iterations=20, val_size=4, progress=False)
    err = capsys.readouterr().err
    assert "phase 1/2" in err and "iteration 3/30 (level 1): train loss" in err and "fit: ok:" in err
    mfc.fit(_conv(), (x, y), (x, y), **QUIET)
    assert capsys.readouterr().err == ""


def test_fit_batch_is_what_a_user_passes():
    x, y = _pairs()
    _, sgd = mfc.fit(_conv(), (x, y), (x, y), strategy="sgd", batch_size=3, **QUIET)
    assert sgd["config"]["sgd_batch"] == 3 and sgd["wu_executed"] == pytest.approx(2 * 3)  # 2 steps of 3 images
    _, default_sgd = mfc.fit(_conv(), (x, y), (x, y), strategy="sgd", **QUIET)
    assert default_sgd["wu_executed"] == pytest.approx(2 * 4)
    _, msgd = mfc.fit(_conv(), (x, y), (x, y), strategy="msgd", **QUIET)
    assert msgd["config"]["batch_size"] == 1  # N0 = 1: 1 + 2 images a step at 2 levels
    assert msgd["wu_executed"] == pytest.approx(2 * (1 * (1 + 1 / 4) + 2 / 4))


def test_iterations_as_an_int_in_a_config_is_n_per_level():
    assert config_mod.resolve({"levels": 3}, ["iterations=5"])["iterations"] == [5, 5, 5]
    listed = config_mod.resolve({"levels": 3, "iterations": [5, 5, 5]})
    assert config_mod.resolve({"levels": 3, "iterations": 5}) == listed
    assert config_mod.config_hash(config_mod.resolve({"levels": 3, "iterations": 5})) == config_mod.config_hash(listed)
    with pytest.raises(ValueError, match="iterations: 0 is less than the minimum of 1"):
        config_mod.resolve({}, ["iterations=0"])
