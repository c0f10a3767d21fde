"""Gradient-discrepancy experiment (Example 1, Tables 1-2): rows, reproducibility, gradients."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
import torch

from mfcbench.core.registry import UnknownNameError
from mfcbench.experiments.discrepancy import RESTRICTIONS_1D, conv_loss, gradient, mfc_loss, run_discrepancy

RESOLUTIONS = ["1/1024", "1/512", "1/256", "1/128", "1/64", "1/32"]


@pytest.fixture(scope="module")
def result():
    start = time.perf_counter()
    out = run_discrepancy({}, seed=0)
    out["seconds"] = time.perf_counter() - start
    return out


def test_rows_complete(result):
    rows = result["rows"]
    assert len(rows) == 2 * 2 * 6
    keys = {(r["conv"], r["input"], r["resolution"]) for r in rows}
    assert keys == {(c, i, res) for c in ("standard", "mfc") for i in ("smooth", "noisy") for res in RESOLUTIONS}
    for r in rows:
        assert r["resolution"] == f"1/{r['n']}"
        assert math.isfinite(r["discrepancy"]) and r["discrepancy"] >= 0
    assert result["options"]["restriction"] == "full_weighting" and result["options"]["noise"] == "finest"
    assert result["seconds"] > 0  # recorded; its speed is the bench's business, not a unit test's


def test_reproducible_and_seeded(result):
    again = run_discrepancy({}, seed=0)
    assert again["rows"] == result["rows"]
    other = {(r["conv"], r["input"], r["n"]): r["discrepancy"] for r in run_discrepancy({}, seed=1)["rows"]}
    for r in result["rows"]:
        same = other[r["conv"], r["input"], r["n"]] == r["discrepancy"]
        assert same == (r["input"] == "smooth")  # only the noisy rows depend on the draw


def test_smooth_standard_gradients_differ_by_order_h(result):
    # Lemma 1: ||g^h - g^2h|| = O(h) for smooth data, so the squared discrepancy falls like h^2.
    slope = result["metrics"]["standard_smooth_slope"]
    assert -2.2 < slope < -1.8


def test_mfc_is_exact_for_band_limited_samples():
    # With injection, every mesh samples the same smooth function; the MFC's symbol is defined on
    # physical wavenumbers, so its gradient does not change with the mesh (up to aliasing of the bump).
    out = run_discrepancy({"restriction": "injection"}, seed=0)
    mfc_smooth = [r["discrepancy"] for r in out["rows"] if r["conv"] == "mfc" and r["input"] == "smooth"]
    assert max(mfc_smooth) < 1e-9


def test_both_norms_reported_and_the_plain_one_halves_per_level(result):
    """Eq. 16 squares the norm (quarters per level for smooth data); Table 1's smooth row halves per
    level, which is what the plain norm gives. Both are in every row; `norm` picks the headline."""
    smooth = [r for r in result["rows"] if r["conv"] == "standard" and r["input"] == "smooth"]
    for r in smooth:
        assert r["norm"] == "squared" and r["discrepancy"] == r["discrepancy_squared"]
    for fine, coarse in zip(smooth, smooth[1:]):
        assert 1.8 < coarse["discrepancy_plain"] / fine["discrepancy_plain"] < 2.2
        assert 3.6 < coarse["discrepancy_squared"] / fine["discrepancy_squared"] < 4.4
    plain = run_discrepancy({"norm": "plain", "repeats": 2}, seed=0)
    assert all(r["discrepancy"] == r["discrepancy_plain"] for r in plain["rows"])
    assert -1.1 < plain["metrics"]["standard_smooth_slope"] < -0.9
    with pytest.raises(ValueError, match="norm must be one of"):
        run_discrepancy({"norm": "l1"})


def test_cli_writes_one_table(tmp_path):
    from mfcbench.cli import experiment

    out = tmp_path / "table2.csv"
    assert experiment.main(["discrepancy", "--conv", "mfc", "--options", "{repeats: 2}", "--out", str(out)]) == 0
    import pandas as pd

    frame = pd.read_csv(out)
    assert set(frame["conv"]) == {"mfc"} and len(frame) == 12 and {"discrepancy_plain", "git_commit"} <= set(frame)
    assert experiment.main(["discrepancy", "--options", "[1, 2]", "--out", str(out)]) == 2


def test_noise_modes_differ():
    per_mesh = run_discrepancy({"noise": "per_mesh", "repeats": 4}, seed=0)
    finest = run_discrepancy({"repeats": 4}, seed=0)
    assert per_mesh["metrics"]["standard_noisy_finest"] > 100 * finest["metrics"]["standard_noisy_finest"]


def test_bad_options():
    with pytest.raises(ValueError, match="unknown options"):
        run_discrepancy({"restrict": "average"})
    with pytest.raises(UnknownNameError, match="full_weighting"):
        run_discrepancy({"restriction": "cubic"})
    with pytest.raises(ValueError, match="per_mesh"):
        run_discrepancy({"noise": "sometimes"})
    with pytest.raises(ValueError, match="divisible"):
        run_discrepancy({"finest": 100})


def test_restrictions():
    v = torch.arange(8, dtype=torch.float64)
    assert torch.equal(RESTRICTIONS_1D.get("injection")(v), v[::2])
    assert torch.equal(RESTRICTIONS_1D.get("average")(v), v[::2] + 0.5)
    fw = RESTRICTIONS_1D.get("full_weighting")(v)
    assert fw[1].item() == pytest.approx(2.0) and fw[0].item() == pytest.approx(0.25 * 7 + 0.25 * 1)  # periodic
    assert torch.allclose(RESTRICTIONS_1D.get("full_weighting")(torch.ones(8, dtype=torch.float64)), torch.ones(4, dtype=torch.float64))


def _signals(n=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, generator=g, dtype=torch.float64), torch.randn(n, generator=g, dtype=torch.float64)


def test_conv_gradient_matches_closed_form():
    u, y = _signals()
    grad = gradient(conv_loss, u, y, torch.tensor([0.3, -1.0, 2.0], dtype=torch.float64)).numpy()
    un, yn, n = u.numpy(), y.numpy(), u.numel()
    # (u * theta)_j = sum_k theta_k u_{j+k-1}  =>  dl/dtheta_k = (1/n) sum_j y_j u_{j+k-1}  (Eq. 31)
    closed = np.array([yn @ np.roll(un, -(k - 1)) / n for k in range(3)])
    np.testing.assert_allclose(grad, closed, rtol=1e-12, atol=1e-14)


def test_mfc_gradient_matches_closed_form():
    u, y = _signals()
    g0, gx, tau, a = 0.7, 0.02, 2e-3, 1.3
    grad = gradient(mfc_loss, u, y, torch.tensor([g0, gx, tau, a], dtype=torch.float64)).numpy()
    n = u.numel()
    k = 2 * np.pi * np.fft.fftfreq(n, d=1.0 / n)
    u_hat, decay = np.fft.fft(u.numpy()), np.exp(-tau * a * k**2)
    symbol = (g0 + 1j * k * gx) * decay

    def l_of(multiplier):  # (1/n) y^T F^-1 (multiplier * u_hat): the derivative of the symbol (Eq. 34)
        return float(y.numpy() @ np.fft.ifft(multiplier * u_hat).real / n)

    closed = [l_of(decay), l_of(1j * k * decay), l_of(-a * k**2 * symbol), l_of(-tau * k**2 * symbol)]
    np.testing.assert_allclose(grad, closed, rtol=1e-9, atol=1e-12)
