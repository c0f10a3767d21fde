"""Figure 8 (App. D.9): the DDPM's sample grids and the Frechet distance per seed against its floor.

Drawn from the files `mfcbench.experiments.ddpm.run_fig8(out_dir)` writes: samples.pt (seed -> run ->
images in [-1, 1]) and fig8.json (the rows). `draw_fig8(out_dir)` writes there <run>.png (every image of
the first seed's grid of each run) and figure8.png: ground truth | single scale | Full-Multiscale (the
first SHOWN images of the first seed), each titled with its numbers, and the Frechet distance per seed of
each trained run against the same-distribution floor (a band over the seeds' floors). Redrawing never
retrains.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from ..core.atomic import atomic_path, torch_load
from .save import pyplot, save_png

PANEL_TITLES = {"ground_truth": "Ground truth (held-out {dataset})", "single_scale": "Single scale (SGD)",
                "full_multiscale": "Full-Multiscale (FMSGD)"}
SHOWN = 64  # images per panel of figure8.png (the PNG per run holds all n; every number uses all n)


def save_grid_png(path: str | Path, images: torch.Tensor, nrow: int = 8) -> None:
    """Atomically save images in [-1, 1] as one PNG grid (one pixel per image pixel)."""
    from torchvision.utils import save_image

    with atomic_path(path) as tmp:
        save_image(images.add(1).div(2), tmp, nrow=nrow, padding=2, pad_value=1.0, format="PNG")


def panel_title(row: dict[str, Any]) -> str:
    """A panel's title: its name, then #WU and training seconds (trained runs), then the grid's numbers
    (the ground truth's Frechet distance is the same-distribution floor at the same count)."""
    lines = [PANEL_TITLES.get(row["run"], row["run"]).format(dataset=row.get("dataset", "digits"))
             + f", seed {row.get('seed', '?')}"]
    if row["run"] != "ground_truth":
        lines.append(f"#WU {row['wu_executed']:,.6g}   training {row['train_seconds']:.1f} s")
    lines.append(f"classifier confidence {row['mean_confidence']:.3f} ({row['confident_fraction']:.0%} >= "
                 f"{row.get('confident', 0.9):g})")
    floor = " = the FD floor" if row["run"] == "ground_truth" else ""
    lines.append(f"Frechet distance {row['frechet_distance']:.3g}{floor} (n={row.get('n_samples', '?')})")
    return "\n".join(lines)


def draw_fd_panel(ax, rows: list[dict]) -> None:
    """Frechet distance per seed of each trained run (points, in the rows' order of runs), against the
    floor: the band spans the seeds' floors (n held-out real images vs the same reference), the line is
    their mean."""
    floors = [r["frechet_distance"] for r in rows if r["run"] == "ground_truth"]
    if floors:
        ax.axhspan(min(floors), max(floors), color="0.85", label=f"same-distribution floor ({len(floors)} seeds)")
        ax.axhline(sum(floors) / len(floors), color="0.5", lw=1)
    runs = list(dict.fromkeys(r["run"] for r in rows if r["run"] != "ground_truth"))
    highest = max(floors, default=0.0)
    for x, run in enumerate(runs):  # the x tick names the run: no legend entry over the points
        values = [r["frechet_distance"] for r in rows if r["run"] == run]
        ax.plot([x] * len(values), values, "o", ms=6, alpha=0.8)
        highest = max([highest, *values])
    ax.set_xticks(range(len(runs)), [PANEL_TITLES.get(run, run).split(" (")[0] + " (per seed)" for run in runs])
    ax.set_xlim(-0.6, len(runs) - 0.4)
    ax.set_ylim(0, highest * 1.08 or 1.0)
    n = rows[0].get("n_samples", "?") if rows else "?"
    ax.set_ylabel(f"Frechet distance\nof classifier features (n={n})")
    ax.set_title("Frechet distance per seed vs the floor", fontsize=10)
    if floors:  # below the axes, off the data
        ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.08), frameon=False)


def draw_figure8(grids: dict[str, torch.Tensor], path: str | Path, rows: list[dict] | None = None,
                 nrow: int = 8) -> None:
    """Figure 8: ground truth | single scale | Full-Multiscale sample grids (the first SHOWN of the first
    seed) titled with their numbers, and, given `rows` (all seeds, as run_fig8 returns them), a panel of
    the Frechet distance per seed against the same-distribution floor band."""
    from torchvision.utils import make_grid

    plt = pyplot()
    first = rows[0]["seed"] if rows else None
    by_run = {row["run"]: row for row in rows or [] if row.get("seed") == first}
    panels = {run: make_grid(images[:SHOWN].add(1).div(2).clamp(0, 1), nrow=nrow, padding=2, pad_value=1.0)
              for run, images in grids.items()}
    aspect = max(p.shape[1] / p.shape[2] for p in panels.values())
    count = len(panels) + bool(rows)
    # constrained layout keeps the four-line titles and the Frechet panel's labels inside the figure; the
    # floor on the height leaves that panel room to read when a grid of few samples is short
    fig, axes = plt.subplots(1, count, figsize=(4.6 * count, max(4.6 * aspect, 3.4) + 1.6), squeeze=False,
                             layout="constrained")
    for ax, (run, panel) in zip(axes[0], panels.items()):
        ax.imshow(panel[0].numpy(), cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
        ax.set_title(panel_title(by_run[run]) if run in by_run else PANEL_TITLES.get(run, run), fontsize=10)
        ax.axis("off")
    if rows:
        draw_fd_panel(axes[0][-1], rows)
    save_png(fig, path)


def draw_fig8(out_dir: str | Path) -> Path:
    """From `out_dir`'s samples.pt and fig8.json: <run>.png of the first seed (16 a row) and figure8.png."""
    out = Path(out_dir)
    samples = torch_load(out / "samples.pt", "Figure 8 samples", fix="rerun `python -m mfcbench experiment ddpm`")
    rows = json.loads((out / "fig8.json").read_text())["rows"]
    first = samples[rows[0]["seed"]]
    for run, images in first.items():
        save_grid_png(out / f"{run}.png", images, nrow=16)
    draw_figure8(first, out / "figure8.png", rows)
    return out / "figure8.png"
