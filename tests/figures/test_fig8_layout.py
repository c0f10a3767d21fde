"""Figure 8's layout with few samples, and one label per network in every figure."""

from __future__ import annotations

import torch

from mfcbench.core import labels
from mfcbench.figures import fig8


def test_figure8_keeps_its_titles_and_labels_inside_with_few_samples(monkeypatch):
    """16 samples make a short grid: the panels' four-line titles and the y-label still fit the figure."""
    drawn = {}
    monkeypatch.setattr(fig8, "save_png", lambda fig, path: drawn.setdefault("fig", fig))
    g = torch.Generator().manual_seed(0)
    grids = {run: torch.rand(16, 1, 16, 16, generator=g) * 2 - 1 for run in fig8.PANEL_TITLES}
    rows = [{"run": run, "seed": seed, "wu_executed": 1.0, "train_seconds": 1.0, "mean_confidence": 0.9,
             "confident_fraction": 0.8, "frechet_distance": 3.0 + seed, "n_samples": 16}
            for seed in (0, 1) for run in grids]
    fig8.draw_figure8(grids, "unused.png", rows)
    fig = drawn["fig"]
    fig.canvas.draw()  # the layout engine runs at draw time, as when saved
    renderer = fig.canvas.get_renderer()
    box = fig.bbox
    for ax in fig.axes:
        for text in (ax.title, ax.yaxis.label):
            if text.get_text():
                extent = text.get_window_extent(renderer)
                assert extent.y1 <= box.y1 + 1 and extent.x0 >= box.x0 - 1, text.get_text()
    fig8.pyplot().close(fig)


def test_no_two_networks_share_a_label():
    names = [k for k in labels.ARCH_LABELS if k not in ("conv", "mfc")]  # op names: aliases of blur_conv/blur_mfc
    shown = [labels.arch_label(k) for k in names]
    assert len(set(shown)) == len(shown), sorted(shown)
    assert labels.arch_label("srresnet") != labels.arch_label("resnet")
