"""Figures 3, 4, 5 and 7 from result CSVs only (seaborn, Agg backend); each writes its data beside it.

A figure is one registered function `(frame) -> (matplotlib Figure, tidy data)`. Restyling a
figure reruns only this module: it never imports training code and never retrains.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from ..atomic import atomic_path, write_csv  # noqa: E402
from ..registry import Registry  # noqa: E402
from .layout import harmonise  # noqa: E402

Plot = Callable[[pd.DataFrame], tuple[plt.Figure, pd.DataFrame]]
FIGURES: Registry[Plot] = Registry("figure")
REQUIRED = {
    "fig3": ["row", "panel", "x", "y", "value"],
    "fig4": ["arch", "strategy", "iteration", "level", "train_loss", "grad_norm"],
    "fig5": ["strategy", "wu_executed", "seconds", "train_loss"],
    "fig7": ["op", "k", "n", "ms_median"],
}


def conv_type(arch: str) -> str:
    """'MFC' for mesh-free architectures (name contains 'mfc'), else 'standard'."""
    return "MFC" if "mfc" in str(arch).lower() else "standard"


def check_columns(name: str, frame: pd.DataFrame) -> None:
    missing = [c for c in REQUIRED[name] if c not in frame.columns]
    if missing:
        raise ValueError(f"{name} needs columns {', '.join(REQUIRED[name])}; missing: {', '.join(missing)}")


@FIGURES.register("fig3")
def fig3(frame: pd.DataFrame) -> tuple[plt.Figure, pd.DataFrame]:
    """MFC kernels over the caption's parameter sweeps: one image per (row, panel)."""
    rows, panels = sorted(frame["row"].unique()), sorted(frame["panel"].unique())
    fig, axes = plt.subplots(len(rows), len(panels), figsize=(2.0 * len(panels), 2.0 * len(rows)), squeeze=False)
    params = [c for c in frame.columns if c not in {"row", "panel", "x", "y", "value"}]
    for i, r in enumerate(rows):
        for j, p in enumerate(panels):
            ax = axes[i][j]
            cell = frame[(frame["row"] == r) & (frame["panel"] == p)]
            ax.set_axis_off()
            if cell.empty:
                continue
            image = cell.pivot_table(index="y", columns="x", values="value", aggfunc="mean")
            ax.imshow(image.to_numpy(), cmap="RdBu_r", origin="lower")
            first = cell.iloc[0]
            ax.set_title(", ".join(f"{c}={first[c]:.2g}" for c in params[:3] if pd.api.types.is_number(first[c])), fontsize=6)
    fig.suptitle("Mesh-free convolution kernels")
    fig.tight_layout()
    return fig, frame


@FIGURES.register("fig4")
def fig4(frame: pd.DataFrame) -> tuple[plt.Figure, pd.DataFrame]:
    """Blur estimation: gradient norm across levels for standard conv (a) and MFC (b); loss (c)."""
    data = frame.assign(conv=frame["arch"].map(conv_type))
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    for ax, kind, tag in ((axes[0], "standard", "(a) standard convolution"), (axes[1], "MFC", "(b) MFC")):
        part = data[data["conv"] == kind]
        if not part.empty:
            sns.lineplot(data=part, x="iteration", y="grad_norm", hue="level", style="strategy", ax=ax, palette="viridis")
        ax.set_title(f"{tag}: gradient norm")
        ax.set_yscale("log")
    sns.lineplot(data=data, x="iteration", y="train_loss", hue="conv", style="strategy", ax=axes[2])
    axes[2].set_yscale("log")
    axes[2].set_title("(c) training loss")
    fig.tight_layout()
    return fig, data


@FIGURES.register("fig5")
def fig5(frame: pd.DataFrame) -> tuple[plt.Figure, pd.DataFrame]:
    """Denoising: training loss against #WU and against seconds, every strategy (mean over seeds)."""
    style = "arch" if "arch" in frame.columns and frame["arch"].nunique() > 1 else None
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, x, label in ((axes[0], "wu_executed", "#WU (executed)"), (axes[1], "seconds", "seconds")):
        sns.lineplot(data=frame, x=x, y="train_loss", hue="strategy", style=style, ax=ax, errorbar="sd")
        ax.set_xlabel(label)
        ax.set_yscale("log")
    axes[0].set_title("Loss vs work units")
    axes[1].set_title("Loss vs wall-clock time")
    fig.tight_layout()
    return fig, frame


@FIGURES.register("fig7")
def fig7(frame: pd.DataFrame) -> tuple[plt.Figure, pd.DataFrame]:
    """Runtime of one conv (per kernel size) and one MFC against image size; IQR as error bars."""
    data = frame.assign(operation=[f"conv {int(k)}x{int(k)}" if str(op) == "conv" else str(op).upper()
                                   for op, k in zip(frame["op"], frame["k"])])
    devices = sorted(data["device"].astype(str).unique()) if "device" in data.columns else ["?"]
    fig, axes = plt.subplots(1, len(devices), figsize=(5.5 * len(devices), 4), squeeze=False)
    for ax, device in zip(axes[0], devices):
        part = data if "device" not in data.columns else data[data["device"].astype(str) == device]
        sns.lineplot(data=part, x="n", y="ms_median", hue="operation", marker="o", ax=ax)
        if "ms_iqr" in part.columns:
            for _, r in part.iterrows():
                ax.errorbar(r["n"], r["ms_median"], yerr=r["ms_iqr"] / 2, color="grey", alpha=0.4, lw=0.8)
        ax.set(xscale="log", yscale="log", xlabel="image size n (n x n)", ylabel="ms (median)", title=f"device: {device}")
    fig.tight_layout()
    return fig, data


def render(name: str, inputs: list[str | Path], out: str | Path) -> Path:
    """Read inputs, draw figure `name` to `out` (PNG) and its data to `out` with .csv."""
    plot = FIGURES.get(name)
    frames = [harmonise(pd.read_csv(p)) for p in inputs if Path(p).is_file()]
    if not frames:
        raise FileNotFoundError(f"{name}: none of the inputs exist: {', '.join(map(str, inputs))}")
    frame = pd.concat(frames, ignore_index=True, sort=False)
    check_columns(name, frame)
    sns.set_theme(context="paper", style="whitegrid")
    fig, data = plot(frame)
    out = Path(out)
    try:
        with atomic_path(out) as tmp:
            fig.savefig(tmp, dpi=150, format="png")
    finally:
        plt.close(fig)
    write_csv(out.with_suffix(".csv"), data)
    return out
