"""The resolution-scaling figure: at which image size the #WU saving reaches the clock.

From the rows of `python -m mfcbench measure scaling` (kind "schedule": a strategy's whole schedule
priced with measured step times): one panel per task (and device), the measured training-time ratio
SGD / Multiscale-SGD and SGD / Full-Multiscale-SGD against the finest mesh size, one line per
network (colour) and strategy (line style), and a dashed line per strategy at its closed-form #WU
ratio, which the time ratio approaches once arithmetic, not per-operator overhead, dominates a step.

`scaling_figure(frame) -> (Figure, data)` has the signature of `mfcbench.figures.paper` figures;
`draw_scaling(inputs, out)` writes the PNG and its data (CSV) beside it, atomically.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402

from ..core.labels import arch_label, strategy_label  # noqa: E402
from .save import save_figure  # noqa: E402

REQUIRED = ["kind", "task", "arch", "size", "strategy", "time_ratio", "wu_ratio", "status"]
STRATEGIES = ("msgd", "fmsgd")
LINE_STYLES = {"msgd": "-", "fmsgd": "-."}  # solid and dash-dot: the dashed lines are the #WU ratios
MARKERS = {"msgd": "o", "fmsgd": "s"}
TASK_TITLES = {"denoise": "denoising (Table 4 networks)", "superres": "x2 super-resolution (Table 5 networks)",
               "blur": "blur estimation (Table 3)"}


def scaling_data(frame: pd.DataFrame) -> pd.DataFrame:
    """The plotted rows: schedules of Multiscale-SGD and Full-Multiscale-SGD that were measured."""
    missing = [c for c in REQUIRED if c not in frame.columns]
    if missing:
        raise ValueError(f"the scaling figure needs columns {', '.join(REQUIRED)}; missing: {', '.join(missing)} "
                         f"(rows of `python -m mfcbench measure scaling`)")
    data = frame[(frame["kind"] == "schedule") & (frame["status"] == "ok") & frame["strategy"].isin(STRATEGIES)].copy()
    data["time_ratio"] = pd.to_numeric(data["time_ratio"], errors="coerce")
    data["wu_ratio"] = pd.to_numeric(data["wu_ratio"], errors="coerce")
    data = data.dropna(subset=["time_ratio"])
    if "device" not in data.columns:
        data["device"] = "cpu"
    if data.empty:
        raise ValueError("the scaling rows hold no measured Multiscale-SGD or Full-Multiscale-SGD schedule")
    return data.sort_values(["size"], kind="stable").reset_index(drop=True)  # rows keep the networks' order


def scaling_figure(frame: pd.DataFrame) -> tuple[plt.Figure, pd.DataFrame]:
    """Time ratio SGD / x against image size, one panel per (device, task); dashed: the #WU ratio."""
    data = scaling_data(frame)
    panels = list(dict.fromkeys(zip(data["device"], data["task"])))
    fig, axes = plt.subplots(1, len(panels), figsize=(max(5.4 * len(panels), 9.5), 5.4), squeeze=False)  # the title fits
    for ax, (device, task) in zip(axes[0], panels):
        part = data[(data["device"] == device) & (data["task"] == task)]
        colours = {arch: plt.get_cmap("tab10")(i % 10) for i, arch in enumerate(dict.fromkeys(part["arch"]))}
        for (arch, strategy), line in part.groupby(["arch", "strategy"], sort=False):
            ax.plot(line["size"], line["time_ratio"], color=colours[arch], linestyle=LINE_STYLES[strategy],
                    marker=MARKERS[strategy], ms=4, label=arch_label(arch) if strategy == "msgd" else None)
        for strategy, rows in part.groupby("strategy", sort=False):
            wu = float(rows["wu_ratio"].median())
            ax.axhline(wu, color="dimgrey", linestyle=(0, (6, 4)), lw=1.2)
            ax.annotate(f"#WU ratio, {strategy_label(strategy)}: {wu:.3g}", (0.98, wu),
                        xycoords=("axes fraction", "data"), va="bottom", ha="right", fontsize=8, color="dimgrey")
        ax.axhline(1.0, color="black", lw=0.8, alpha=0.5)
        sizes = sorted(part["size"].unique())
        ax.set(xscale="log", yscale="log", xlabel="finest mesh (pixels per side)",
               ylabel="training time SGD / strategy (measured)", title=f"{TASK_TITLES.get(task, task)}, {device}")
        ax.set_xticks(sizes, [str(int(s)) for s in sizes])
        ax.minorticks_off()
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=4, fontsize=8, frameon=False,
                  title="network (colour)", title_fontsize=8)  # below the panel: never over the data
    styles = [Line2D([], [], color="black", linestyle=LINE_STYLES[s], marker=MARKERS[s], ms=4,
                     label=f"{strategy_label(s)} (measured)") for s in STRATEGIES]
    styles.append(Line2D([], [], color="dimgrey", linestyle=(0, (6, 4)), label="closed-form #WU ratio"))
    fig.legend(handles=styles, loc="lower center", ncol=3, fontsize=8, frameon=False)
    fig.suptitle("Where the work-unit saving reaches the clock: SGD's training time over each strategy's")
    fig.tight_layout(rect=(0, 0.05, 1, 0.96))
    return fig, data


def draw_scaling(inputs: list[str | Path] | str | Path, out: str | Path) -> Path:
    """Read scaling CSV(s), draw the figure to `out` (PNG) and its data to `out` with .csv."""
    paths = [inputs] if isinstance(inputs, (str, Path)) else list(inputs)
    frames = [pd.read_csv(p) for p in paths if Path(p).is_file()]
    if not frames:
        raise FileNotFoundError(f"scaling figure: none of the inputs exist: {', '.join(map(str, paths))}")
    fig, data = scaling_figure(pd.concat(frames, ignore_index=True, sort=False))
    return save_figure(fig, data, out)
