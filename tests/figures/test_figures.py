"""Figures 4 and 5: the data behind each PNG, facets per network, bands only with several seeds."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from mfcbench.figures import paper as F
from mfcbench.report.findings import all_findings, findings_markdown
from mfcbench.report.layout import load_results_dir

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "report"


def _draw(name: str, source: str, tmp_path: Path):
    out = F.render(name, [FIX / source], tmp_path / f"{name}.png")
    assert out.read_bytes()[:4] == b"\x89PNG"
    return pd.read_csv(out.with_suffix(".csv"))


def _facets(name: str, source: str):
    frame = pd.read_csv(FIX / source)
    fig, data = F.FIGURES.get(name)(frame)
    try:
        return [ax for ax in fig.axes if ax.axison], data
    finally:
        F.plt.close(fig)


def test_fig5_validation_metric_facets_per_arch_and_bands_only_with_seeds(tmp_path):
    data = _draw("fig5", "curves_table4_val.csv", tmp_path)
    assert {"arch", "strategy", "iteration", "wu_executed", "mean", "std", "lo", "hi", "n_seeds", "metric"} <= set(data.columns)
    assert set(data["metric"]) == {"val_metric"} and (data["wu_executed"] > 0).all()
    assert set(data["strategy"]) == {"sgd", "msgd", "fmsgd"}
    # validation every 5 iterations over 1..40 -> 8 points per line, the #WU=0 start left out; Full-Multiscale
    # keeps only its finest-mesh validations (a coarse level validates on its own mesh: not comparable)
    sizes = data.groupby(["arch", "strategy"]).size()
    assert sizes.drop("fmsgd", level="strategy").eq(8).all()
    assert (data["level"] == 0).all() and sizes.xs("fmsgd", level="strategy").lt(8).all()
    unet, mfc = data[data.arch == "unet"], data[data.arch == "mfc_resnet"]
    assert (unet["n_seeds"] == 2).all() and unet[["lo", "hi", "std"]].notna().all().all()
    assert (mfc["n_seeds"] == 1).all() and mfc[["lo", "hi", "std"]].isna().all().all()
    axes, _ = _facets("fig5", "curves_table4_val.csv")
    assert len(axes) == 2 and [ax.get_title() for ax in axes] == ["UNet", "MFC-ResNet"]
    assert all(len(ax.get_lines()) == 3 for ax in axes)          # one line per strategy
    assert [len(ax.collections) for ax in axes] == [3, 0]        # bands only where 2 seeds
    assert all(ax.get_xscale() == "log" for ax in axes)


def test_fig5_old_curves_fall_back_to_training_loss(tmp_path):
    data = _draw("fig5", "curves_table4.csv", tmp_path)  # val_metric empty, no train_seconds
    assert set(data["metric"]) == {"train_loss"} and set(data["arch"]) == {"resnet"}
    assert (data["n_seeds"] == 2).all() and len(data) == 3 * 9
    axes, _ = _facets("fig5", "curves_table4.csv")
    assert len(axes) == 1 and "training loss" in axes[0].get_ylabel()


def test_fig4_columns_per_conv_rows_grad_and_metric(tmp_path):
    data = _draw("fig4", "curves_table3_val.csv", tmp_path)
    assert set(data["panel"]) == {"grad_norm", "val_metric"} and set(data["strategy"]) == {"sgd", "fmsgd"}
    assert set(data["conv"]) == {"standard", "MFC"} and (data["n_seeds"] == 2).all()
    # iterations 1..40: the #WU=0 start is off the log axis
    assert data[data.panel == "grad_norm"].groupby(["arch", "strategy"]).size().eq(40).all()
    assert (data["wu_executed"] > 0).all() and (data[data.panel == "grad_norm"]["level"] > 0).any()
    # the validation row: SGD on the finest mesh, Full-Multiscale on every level (one continuous curve)
    val = data[data.panel == "val_metric"]
    assert (val[val.strategy == "sgd"]["level"] == 0).all()
    assert set(val[val.strategy == "fmsgd"]["level"]) == {0, 1, 2, 3}
    axes, _ = _facets("fig4", "curves_table3_val.csv")
    titles = [ax.get_title() for ax in axes]
    assert len(axes) == 4 and titles[0].startswith("(a) standard") and titles[1].startswith("(b) mesh-free")
    assert all(ax.collections for ax in axes)  # 2 seeds: bands everywhere


def test_fig4_x_is_executed_work_and_full_multiscale_is_one_curve_through_its_levels():
    """One unit for every strategy (a coarse iteration is cheap), Full-Multiscale's validation curve from
    its first level to the finest with its level changes marked, and no empty band under the title."""
    frame = pd.read_csv(FIX / "curves_table3_val.csv")
    fig, _ = F.FIGURES.get("fig4")(frame)
    try:
        axes = [ax for ax in fig.axes if ax.axison]
        assert all(ax.get_xscale() == "log" for ax in axes) and "#WU" in axes[-1].get_xlabel()
        fm = frame[(frame.strategy == "fmsgd") & (frame.arch == "blur_conv")]
        green = [line for line in axes[2].get_lines() if line.get_color() == F.STRATEGY_COLORS["fmsgd"]]
        xs = sorted(x for line in green for x in line.get_xdata())
        first_val = fm[fm.val_metric.notna() & (fm.wu_executed > 0)]["wu_executed"].min()
        assert xs[0] == first_val and xs[-1] == fm["wu_executed"].max()  # from the coarsest level to the end
        assert any(line.get_marker() == "|" and len(line.get_xdata()) == 3 for line in axes[2].get_lines())
        fig.canvas.draw()
        title = fig._suptitle.get_window_extent().y0
        top = max(ax.get_tightbbox().y1 for ax in axes)
        assert title - top < 0.3 * fig.dpi, "an empty band between the title and the panels"
    finally:
        F.plt.close(fig)


def test_fig4_single_seed_has_no_band(tmp_path):
    data = _draw("fig4", "curves_table3.csv", tmp_path)  # one seed, archs conv/mfc, val_metric empty
    assert set(data["panel"]) == {"grad_norm", "train_loss"} and data["lo"].isna().all()
    axes, _ = _facets("fig4", "curves_table3.csv")
    assert len(axes) == 4 and not any(ax.collections for ax in axes)


def test_fig4_draws_each_full_multiscale_seed_when_levels_end_apart():
    """Early stopping ends a level at a different iteration per seed: a mean over seeds would mix
    levels, so each seed is its own line with a marker at each level change."""
    frame = pd.read_csv(FIX / "curves_table3_val.csv")
    fm = frame["strategy"].astype(str) == "fmsgd"
    first_seed = frame["seed"] == frame["seed"].min()
    shifted = frame[fm & first_seed].assign(iteration=lambda f: f["iteration"] + 3)  # that seed's levels start later
    frame = pd.concat([frame[~(fm & first_seed)], shifted], ignore_index=True)
    fig, _ = F.FIGURES.get("fig4")(frame)
    seeds = frame.loc[fm, "seed"].nunique()
    for ax in fig.axes:
        green = [line for line in ax.get_lines() if line.get_color() == F.STRATEGY_COLORS["fmsgd"]]
        ticks = [line for line in ax.get_lines() if line.get_marker() == "|"]
        solid = [line for line in green if line.get_alpha() != 0.4]  # the lighter coarse levels aside
        assert len(solid) == seeds and len(ticks) == seeds, ax.get_title()
        assert not any(line.get_linestyle() == ":" for line in ax.get_lines())  # no shared level lines
    assert "each seed" in fig._suptitle.get_text()
    F.plt.close(fig)


def test_figures_need_their_columns(tmp_path):
    bad = tmp_path / "bad.csv"
    pd.read_csv(FIX / "curves_table4.csv").drop(columns=["arch"]).to_csv(bad, index=False)
    with pytest.raises(ValueError, match="arch"):
        F.render("fig5", [bad], tmp_path / "x.png")
    empty = tmp_path / "empty.csv"
    pd.read_csv(FIX / "curves_table4.csv").drop(columns=["train_loss"]).to_csv(empty, index=False)
    with pytest.raises(ValueError, match="val_metric"):
        F.render("fig5", [empty], tmp_path / "y.png")


def test_findings_numbers():
    found = {f["id"]: f for f in all_findings(load_results_dir(FIX))}
    assert "1/32" in found["table1_noisy_below_smooth"]["statement"]
    assert "68x" in found["table3_wu_ratio"]["statement"] and "6.5x" in found["table3_wu_ratio"]["statement"]
    assert "7,187.5" in found["table13_fmsgd_schedule"]["statement"] and "28,750" in found["table13_fmsgd_schedule"]["statement"]
    assert "x2.0" in found["table1_plain_norm"]["statement"]
    text = findings_markdown({})
    assert text.startswith("## Findings about the paper") and text.count("**") == 8


def test_fig7_one_panel_per_channel_count_readable_labels_no_average_over_channels():
    rows = [{"op": op, "k": k, "n": n, "channels": c, "device": "cpu", "ms_median": c * n * (2 if op != "conv" else 1),
             "ms_iqr": 0.1} for c in (3, 32) for n in (32, 64) for op, k in (("conv", 3), ("conv", 13), ("mfc_pointwise", ""))]
    fig, data = F.FIGURES.get("fig7")(pd.DataFrame(rows))
    try:
        axes = [ax for ax in fig.axes if ax.axison]
        assert [ax.get_title() for ax in axes] == ["cpu, 3 channels", "cpu, 32 channels"]
        assert set(data["operation"]) == {"conv 3x3", "conv 13x13", "MFC (pointwise mixing)"}
        for ax, c in zip(axes, (3, 32)):  # each line is that channel count's own measurements
            lines = {line.get_label(): list(line.get_ydata()) for line in ax.get_lines()}
            assert lines["conv 3x3"] == [c * 32, c * 64] and lines["MFC (pointwise mixing)"] == [2 * c * 32, 2 * c * 64]
    finally:
        F.plt.close(fig)
