"""FLOP counting: fvcore's conv convention, FFT/complex handles, and no model op left uncounted."""

from __future__ import annotations

import math
import sys
import warnings

import pytest
import torch
from torch import nn

pytest.importorskip("fvcore")

from mfcbench.layers import MeshFreeConv2d  # noqa: E402
from mfcbench.measure import flop_handles, flops, suites  # noqa: E402
from mfcbench.models import build_model, model_names  # noqa: E402


def test_conv_matches_fvcore_convention():
    result = flops.count_flops(nn.Conv2d(32, 32, 5, padding=2), (torch.randn(1, 32, 32, 32),), strict=True)
    assert result.total == 26_214_400 == 32**2 * 5**2 * 1024


@pytest.mark.parametrize("fn, complex_input, points", [
    (lambda x: torch.fft.rfft2(x), False, 64),
    (lambda x: torch.fft.irfft2(torch.fft.rfft2(x), s=(8, 8)), False, 64),
    (lambda x: torch.fft.fft2(x.to(torch.complex64)), True, 64),
    (lambda x: torch.fft.ifft2(x.to(torch.complex64)), True, 64),
    (lambda x: torch.fft.rfftn(x, dim=(-2, -1)), False, 64),
    (lambda x: torch.fft.rfft(x), False, 8),
])
def test_fft_handles(fn, complex_input, points):
    class Wrap(nn.Module):
        def forward(self, x):
            return fn(x)

    x = torch.randn(3, 2, 8, 8)
    result = flops.count_flops(Wrap(), (x,), strict=True)
    fft_ops = {k: v for k, v in result.by_operator.items() if k.startswith("fft_")}
    per = flop_handles.fft_cost(points, complex_input)
    transforms = x.numel() // points
    assert sum(fft_ops.values()) in (round(transforms * per), round(2 * transforms * per))
    assert min(fft_ops.values()) == round(transforms * per)
    assert flop_handles.fft_cost(1024, True) == 5 * 1024 * 10 == 2 * flop_handles.fft_cost(1024, False)


def test_complex_einsum_and_multiply_count_four_real_macs():
    class Mix(nn.Module):
        def forward(self, a, b):
            return torch.einsum("bihw,oihw->bohw", a, b) * b[:1, :1]

    a = torch.randn(2, 3, 4, 5, dtype=torch.complex64)
    b = torch.randn(6, 3, 4, 5, dtype=torch.complex64)
    result = flops.count_flops(Mix(), (a, b), strict=True)
    assert result.by_operator["einsum"] == 4 * 2 * 3 * 6 * 4 * 5
    assert result.by_operator["mul"] == 4 * 2 * 6 * 4 * 5
    real = flops.count_flops(Mix(), (a.real.contiguous(), b.real.contiguous()), strict=True)
    assert real.by_operator["einsum"] * 4 == result.by_operator["einsum"]


@pytest.mark.parametrize("mixing", ["pointwise", "full"])
def test_mfc_fully_counted_and_scales_like_n_log_n(mixing):
    def total(n):
        return flops.count_flops(MeshFreeConv2d(8, 8, mixing=mixing), (torch.randn(1, 8, n, n),), strict=True).total

    small, large = total(16), total(32)
    assert small > 0
    # 4x the pixels: between 4x (linear terms) and 4x * log2(32^2)/log2(16^2) (FFT terms).
    assert 4 * small * 0.99 < large < 4 * small * math.log2(1024) / math.log2(256) * 1.01


def test_strict_flags_an_uncounted_op():
    class Odd(nn.Module):
        def forward(self, x):
            return torch.cholesky_inverse(x)

    with pytest.raises(ValueError, match="uncounted"):
        flops.count_flops(Odd(), (torch.eye(3),), strict=True)


def test_fvcore_jit_script_warning_is_silenced_and_no_other(monkeypatch):
    """Importing fvcore.nn scripts a loss with torch.jit.script, deprecated by torch: counting must not
    pass that FutureWarning on to the user, and must let every other warning through."""
    for name in [m for m in sys.modules if m == "fvcore.nn" or m.startswith("fvcore.nn.")]:
        monkeypatch.delitem(sys.modules, name)  # the next count imports fvcore.nn afresh
    monkeypatch.setattr(sys.modules["fvcore"], "nn", sys.modules["fvcore"].nn)  # restored afterwards too
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert flops.count_flops(nn.Conv2d(2, 2, 3), (torch.randn(1, 2, 8, 8),)).total > 0
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        with flops.quiet_fvcore():
            warnings.warn("`torch.jit.script` is deprecated. Please switch to `torch.compile`", FutureWarning, stacklevel=1)
            warnings.warn("some other deprecation", FutureWarning, stacklevel=1)
    assert [str(w.message) for w in seen] == ["some other deprecation"]


def test_uncounted_ok_entries_all_give_a_reason():
    assert all(isinstance(why, str) and len(why) > 5 for why in flop_handles.UNCOUNTED_OK.values())
    assert "N log2 N" in flop_handles.CONVENTION and "multiply-add" in flop_handles.CONVENTION


def test_table11_conv_column_is_n2_k2_1024_and_mfc_independent_of_k():
    rows = suites.table11_rows(sizes=(32, 64), kernels=(5, 7, 15))
    assert {r["op"] for r in rows} == {"conv2d", "mfc_pointwise", "mfc_full"}
    assert len(rows) == 2 * 3 * 3
    for row in rows:
        if row["op"] == "conv2d":
            assert row["flops"] == row["n"] ** 2 * row["k"] ** 2 * 1024
    for op in ("mfc_pointwise", "mfc_full"):
        for n in (32, 64):
            assert len({r["flops"] for r in rows if r["op"] == op and r["n"] == n}) == 1
    at64 = {r["op"]: r["flops"] for r in rows if r["n"] == 64 and r["k"] == 15}
    assert at64["mfc_pointwise"] < at64["mfc_full"] < at64["conv2d"]


def _small_input(model, channels=3):
    divisor = getattr(model, "size_divisor", 1)
    n = max(16, divisor)
    n = -(-n // divisor) * divisor
    return torch.randn(1, channels, n, n)


@pytest.mark.parametrize("name", model_names())
def test_every_registered_model_is_fully_counted(name):
    torch.manual_seed(0)
    model = build_model(name, 3, 3)
    result = flops.count_flops(model, (_small_input(model),))
    left = {op: n for op, n in result.unsupported.items() if op not in flop_handles.UNCOUNTED_OK}
    assert not left, f"{name}: ops left uncounted (add a handle or an UNCOUNTED_OK entry with a why): {left}"
    assert result.total > 0


def test_a_user_can_read_the_count():
    """Per-module table, readable operation names, and a training step whose backward is a labelled
    convention (2x forward), never a silent guess."""
    model = nn.Sequential(MeshFreeConv2d(3, 4, mixing="full"), nn.ReLU(), MeshFreeConv2d(4, 4), nn.Conv2d(4, 2, 3, padding=1))
    result = flops.count_flops(model, (torch.randn(1, 3, 16, 16),), strict=True, max_depth=2)
    assert result.forward == result.total > 0
    assert result.backward == flops.BACKWARD_FACTOR * result.forward == 2 * result.forward
    assert result.training_step == 3 * result.forward
    assert "mfc symbol contraction" in result.by_operation and "rfft2" in result.by_operation
    assert not any(name.startswith("PythonOp") for name in result.by_operation)
    assert sum(result.by_operation.values()) == sum(result.by_operator.values())
    assert result.by_module[""] == result.total
    assert result.by_module["0"] + result.by_module["2"] + result.by_module["3"] == result.total  # ReLU: one of fvcore's ignored ops
    text = result.table()
    assert "| module" in text and "#flops" in text and "2.mix" in text
    assert "convention: 2x forward, not counted" in text and f"{result.training_step:,}" in text
    assert "2x the forward" in flops.TRAINING_CONVENTION
