"""Figures 3, 4, 5 and 7 from result CSVs only (seaborn, Agg backend); each writes its data beside it.

A figure is one registered function `(frame) -> (matplotlib Figure, tidy data)`. Restyling a
figure reruns only this module: it never imports training code and never retrains.
"""

from __future__ import annotations

import math
import textwrap
from pathlib import Path
from typing import Callable

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter  # noqa: E402

from ..core.labels import (  # noqa: E402
    ARCH_LABELS,
    STRATEGY_COLORS,
    STRATEGY_LABELS,
    STRATEGY_STYLES,
    TASK_METRIC,
    arch_label,
    strategy_label,
)
from ..core.registry import Registry  # noqa: E402
from ..report import time_to_target  # noqa: E402
from ..report.layout import harmonise  # noqa: E402
from .ladder import REQUIRED as LADDER_COLUMNS  # noqa: E402
from .ladder import ladder_figure  # noqa: E402
from .save import save_figure  # noqa: E402
from .scaling import REQUIRED as SCALING_COLUMNS  # noqa: E402
from .scaling import scaling_figure  # noqa: E402

Plot = Callable[[pd.DataFrame], tuple[plt.Figure, pd.DataFrame]]
FIGURES: Registry[Plot] = Registry("figure")
REQUIRED = {
    "fig3": ["row", "panel", "x", "y", "value"],
    "fig4": ["arch", "strategy", "iteration", "level", "wu_executed", "grad_norm"],
    "fig5": ["arch", "strategy", "iteration", "wu_executed"],
    "fig7": ["op", "k", "n", "ms_median"],
    "scaling": SCALING_COLUMNS,
    "ladder": LADDER_COLUMNS,
}
# one of these must carry numbers: the validation metric, else the training loss
CURVE_METRICS = {"fig4": ["val_metric", "train_loss"], "fig5": ["val_metric", "train_loss"]}


def conv_type(arch: str) -> str:
    """'MFC' for mesh-free architectures (name contains 'mfc'), else 'standard'."""
    return "MFC" if "mfc" in str(arch).lower() else "standard"


def check_columns(name: str, frame: pd.DataFrame) -> None:
    missing = [c for c in REQUIRED[name] if c not in frame.columns]
    if missing:
        raise ValueError(f"{name} needs columns {', '.join(REQUIRED[name])}; missing: {', '.join(missing)}")
    if name in CURVE_METRICS and curve_metric(frame, CURVE_METRICS[name]) is None:
        raise ValueError(f"{name} needs numbers in one of {', '.join(CURVE_METRICS[name])}")


def curve_metric(frame: pd.DataFrame, candidates: list[str]) -> str | None:
    """The first candidate column with any number in it (old curves have an empty val_metric)."""
    for column in candidates:
        if column in frame.columns and pd.to_numeric(frame[column], errors="coerce").notna().any():
            return column
    return None


def metric_label(frame: pd.DataFrame, metric: str) -> str:
    if metric != "val_metric":
        return {"train_loss": "training loss"}.get(metric, metric.replace("_", " "))
    tasks = sorted({str(t) for t in frame["task"].dropna()}) if "task" in frame.columns else []
    return TASK_METRIC.get(tasks[0], "validation metric") if len(tasks) == 1 else "validation metric"


def ordered(values, order: dict) -> list:
    """Known names in the paper's order (the dict's), then any others sorted."""
    present = {str(v) for v in values}
    return [k for k in order if k in present] + sorted(present - set(order))


def seed_stats(frame: pd.DataFrame, keys: list[str], value: str) -> pd.DataFrame:
    """Mean over seeds per `keys`; std and the band lo/hi (min and max over seeds) only where n_seeds > 1."""
    data = frame.assign(_v=pd.to_numeric(frame[value], errors="coerce")).dropna(subset=["_v"])
    if "seed" not in data.columns:
        data = data.assign(seed=0)
    extra = {c: (c, "mean") for c in ("wu_executed", "level") if c in data.columns and c not in keys}
    out = data.groupby(keys, sort=True).agg(mean=("_v", "mean"), std=("_v", "std"), n_seeds=("seed", "nunique"),
                                            lo=("_v", "min"), hi=("_v", "max"), **extra).reset_index()
    several = out["n_seeds"] > 1  # the band is the range over seeds: it stays positive on a log axis
    out["std"], out["lo"], out["hi"] = out["std"].where(several), out["lo"].where(several), out["hi"].where(several)
    return out.assign(metric=value)


def describe(frame: pd.DataFrame) -> str:
    """'dataset skimage, profile tiny, 2 seeds' from whatever coordinates the curves carry."""
    parts = []
    for column in ("dataset", "profile"):
        if column in frame.columns and frame[column].notna().any():
            parts.append(f"{column} {'+'.join(sorted({str(v) for v in frame[column].dropna()}))}")
    seeds = frame["seed"].nunique() if "seed" in frame.columns else 1
    parts.append(f"{seeds} seed{'s' if seeds != 1 else ''}" + (" (mean; band: range over seeds)" if seeds > 1 else " (no band)"))
    return ", ".join(parts)


def draw_lines(ax, stats: pd.DataFrame, x: str, hue: str = "strategy") -> None:
    """One line per strategy (fixed colours across figures), a band where the stats carry one."""
    for key in ordered(stats[hue].unique(), STRATEGY_LABELS):
        part = stats[stats[hue].astype(str) == key].sort_values(x)
        color = STRATEGY_COLORS.get(key)
        ax.plot(part[x], part["mean"], color=color, ls=STRATEGY_STYLES.get(key, "-"), lw=1.8, marker="o" if len(part) < 15 else None, ms=3,
                label=strategy_label(key))
        band = part.dropna(subset=["lo", "hi"])
        if not band.empty:
            ax.fill_between(band[x], band["lo"], band["hi"], color=color, alpha=0.2, lw=0)


def legend_below(fig: plt.Figure, axes, title: str) -> None:
    """One legend for the figure, below the panels (off the data), and a title above them."""
    handles, labels = {}, []
    for ax in axes:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(lab, h)
    labels = list(handles)
    width = fig.get_figwidth()
    title = textwrap.fill(title, width=int(width * 9))
    ncol = max(1, min(len(labels), int(width // 2.3)))
    bottom = (0.1 + 0.3 * -(-len(labels) // ncol)) / fig.get_figheight()
    top = 1 - (0.1 + 0.22 * (title.count("\n") + 1)) / fig.get_figheight()
    fig.tight_layout(rect=(0, bottom, 1, top))  # `top` leaves the title's room: it is set after the layout,
    fig.suptitle(title, fontsize=12)            # which would otherwise leave that room a second time
    fig.legend([handles[k] for k in labels], labels, loc="lower center", ncol=ncol, frameon=False, fontsize=10)


def positive_log(ax, values: pd.Series, axis: str = "y") -> None:
    if len(values) and (pd.to_numeric(values, errors="coerce").dropna() > 0).all():
        (ax.set_yscale if axis == "y" else ax.set_xscale)("log")
    readable_log_ticks(ax)


def readable_log_ticks(ax) -> None:
    """Plain numbers on the log axes of `ax` (0.2, 50), minor ticks at 2 and 5 labelled only where the axis
    spans under 2.5 decades: matplotlib's default labels 2, 3, 4, 6 x 10^k, which overlap in a narrow panel."""
    plain = FuncFormatter(lambda value, _: f"{value:g}")
    for axis, scale, (low, high) in ((ax.xaxis, ax.get_xscale(), ax.get_xlim()),
                                     (ax.yaxis, ax.get_yscale(), ax.get_ylim())):
        if scale != "log" or min(low, high) <= 0:
            continue
        axis.set_major_formatter(plain)
        axis.set_minor_locator(LogLocator(subs=(2.0, 5.0)))
        axis.set_minor_formatter(plain if math.log10(max(low, high) / min(low, high)) < 2.5 else NullFormatter())


PARAM_SYMBOLS = {"axx": r"\alpha_{xx}", "axy": r"\alpha_{xy}", "ayy": r"\alpha_{yy}", "tau": r"\tau",
                 "g0": r"\gamma_0", "gx": r"\gamma_x", "gy": r"\gamma_y"}


def kernel_params(cell: pd.DataFrame, names: list[str]) -> str:
    first = cell.iloc[0]
    return ", ".join(f"${PARAM_SYMBOLS.get(c, c)}$={first[c]:.3g}" for c in names)


@FIGURES.register("fig3")
def fig3(frame: pd.DataFrame) -> tuple[plt.Figure, pd.DataFrame]:
    """MFC kernels over the caption's parameter sweeps: one image per (row, panel). Each panel's
    title names the parameters its row varies; the row's fixed parameters label the row."""
    rows, panels = sorted(frame["row"].unique()), sorted(frame["panel"].unique())
    fig, axes = plt.subplots(len(rows), len(panels), figsize=(2.2 * len(panels), 2.4 * len(rows)), squeeze=False)
    params = [c for c in frame.columns if c in PARAM_SYMBOLS]
    for i, r in enumerate(rows):
        in_row = frame[frame["row"] == r]
        varying = [c for c in params if in_row[c].nunique() > 1]
        fixed = [c for c in params if c not in varying]
        for j, p in enumerate(panels):
            ax = axes[i][j]
            cell = in_row[in_row["panel"] == p]
            ax.set_xticks([]), ax.set_yticks([])
            if cell.empty:
                ax.set_axis_off()
                continue
            image = cell.pivot_table(index="y", columns="x", values="value", aggfunc="mean")
            ax.imshow(image.to_numpy(), cmap="RdBu_r", origin="lower")
            ax.set_title(kernel_params(cell, varying), fontsize=8)
        axes[i][0].set_ylabel(f"row {r}\n" + textwrap.fill(kernel_params(in_row, fixed), 28), fontsize=7)
    fig.suptitle("Mesh-free convolution kernels (Figure 3's sweeps)")
    fig.tight_layout()
    return fig, frame


@FIGURES.register("fig4")
def fig4(frame: pd.DataFrame) -> tuple[plt.Figure, pd.DataFrame]:
    """Blur estimation, single scale vs Full-Multiscale, against executed #WU (log x): one unit for every
    strategy, so a cheap coarse iteration counts for its share of a finest-mesh one. One column per
    convolution type (standard, MFC); top row the gradient norm, bottom row the validation metric (else
    the training loss). Full-Multiscale is one continuous line through its levels: a '|' where it moves to
    a finer level, and in the bottom row its coarse levels lighter (each validates on its own mesh, which
    does not compare with the finest mesh's). It is the mean over seeds when every seed changes level at
    the same #WU, else each seed its own thin line (a mean over seeds would mix levels)."""
    wanted = [s for s in ("sgd", "fmsgd") if s in set(frame["strategy"].astype(str))]
    data = frame[frame["strategy"].astype(str).isin(wanted)] if len(wanted) == 2 else frame
    data = data[pd.to_numeric(data["wu_executed"], errors="coerce") > 0]  # log axis: drop the #WU=0 start
    metric = curve_metric(data, CURVE_METRICS["fig4"])
    archs = sorted(data["arch"].astype(str).unique(), key=lambda a: (conv_type(a) == "MFC", a))
    rows = [("grad_norm", "gradient norm"), (metric, metric_label(data, metric))]
    fm = data["strategy"].astype(str) == "fmsgd"
    # the gradient norm on every level; the metric on the finest mesh, but Full-Multiscale's on every level
    source = {"grad_norm": data, metric: pd.concat([finest_mesh(data[~fm], metric), data[fm]])}
    stats = pd.concat([seed_stats(source[value], ["arch", "strategy", "iteration"], value).assign(panel=value)
                       for value, _ in rows], ignore_index=True)
    fig, axes = plt.subplots(2, len(archs), figsize=(5.2 * len(archs) + 0.6, 7.4), squeeze=False, sharex="col",
                             sharey="row")
    seeded = [a for a in archs if not _same_level_changes(data[data["arch"].astype(str) == a])]
    for j, arch in enumerate(archs):
        for i, (value, label) in enumerate(rows):
            ax = axes[i][j]
            part = stats[(stats["arch"] == arch) & (stats["panel"] == value)]
            draw_lines(ax, part[part["strategy"].astype(str) != "fmsgd"], "wu_executed")
            if arch in seeded:
                cells = source[value][source[value]["arch"].astype(str) == arch]
                runs = _seed_runs(cells[cells["strategy"].astype(str) == "fmsgd"], value)
            else:
                runs = [part[part["strategy"].astype(str) == "fmsgd"].rename(columns={"mean": "_v"})]
            _draw_fmsgd(ax, runs, lighter_coarse=value != "grad_norm", each_seed=arch in seeded)
            ax.set_xscale("log")
            positive_log(ax, part["mean"])
            ax.set_title(f"({chr(97 + i * len(archs) + j)}) {arch_label(arch)}: {label}", fontsize=11)
            ax.set_ylabel(label if j == 0 else "")
            ax.set_xlabel("executed #WU (log)" if i == 1 else "")
    note = "; Full-Multiscale: each seed, its levels end on a plateau" if seeded else ""
    where = ("; validation on the finest mesh, Full-Multiscale's coarse levels (lighter) on their own"
             if metric == "val_metric" and (data["level"] > 0).any() else "")
    legend_below(fig, axes.ravel(), f"Figure 4 — blur estimation, single scale vs Full-Multiscale, against executed #WU "
                                    f"(1 WU: one model application to one finest-mesh image; {describe(data)}{note}{where})")
    return fig, stats.assign(conv=stats["arch"].map(conv_type))


def _level_starts(fm: pd.DataFrame) -> pd.DataFrame:
    """Per seed, the first iteration on each level of a Full-Multiscale run."""
    fm = fm if "seed" in fm.columns else fm.assign(seed=0)
    return fm.groupby(["seed", "level"])["iteration"].min().reset_index()


def _same_level_changes(data: pd.DataFrame) -> bool:
    fm = data[data["strategy"].astype(str) == "fmsgd"]
    if fm.empty:
        return True
    starts = _level_starts(fm).pivot(index="seed", columns="level", values="iteration")
    return bool((starts.nunique(dropna=False) <= 1).all())


def _seed_runs(fm: pd.DataFrame, value: str) -> list[pd.DataFrame]:
    """Full-Multiscale's curve per seed: iteration, wu_executed, level and the value as `_v`."""
    fm = fm.assign(_v=pd.to_numeric(fm[value], errors="coerce")).dropna(subset=["_v"])
    return [run for _, run in fm.groupby("seed" if "seed" in fm.columns else lambda _: 0)]


def _draw_fmsgd(ax, runs: list[pd.DataFrame], lighter_coarse: bool, each_seed: bool) -> None:
    """Each run one line through all its levels, a '|' where it moves to a finer level; the mean (one
    run carrying lo/hi) gets its band. Coarse levels lighter where `lighter_coarse`."""
    color, style = STRATEGY_COLORS["fmsgd"], STRATEGY_STYLES["fmsgd"]
    label = STRATEGY_LABELS["fmsgd"] + (" (each seed; | next level)" if each_seed else " (| next level)")
    for k, run in enumerate(runs):
        run = run.sort_values("iteration")
        if run.empty:
            continue
        x, level = run["wu_executed"], pd.to_numeric(run["level"], errors="coerce").fillna(0)
        coarse = level > 0
        if lighter_coarse and coarse.any():  # the coarse part, joined to the first finest point
            joined = coarse | coarse.shift(fill_value=False)
            ax.plot(x[joined], run["_v"][joined], color=color, ls=style, lw=1.0, alpha=0.4)
        shown = ~coarse if lighter_coarse else level == level
        ax.plot(x[shown], run["_v"][shown], color=color, ls=style, lw=1.0 if each_seed else 1.8,
                alpha=0.85 if each_seed else 1.0, label=label if k == 0 else None)
        if {"lo", "hi"} <= set(run.columns) and run["lo"].notna().any():
            ax.fill_between(x, run["lo"], run["hi"], color=color, alpha=0.2, lw=0)
        changes = run[level.ne(level.shift()) & (run.index != run.index[0])]
        ax.plot(changes["wu_executed"], changes["_v"], ls="none", marker="|", ms=12, mew=2, color="black")


def finest_mesh(data: pd.DataFrame, metric: str) -> pd.DataFrame:
    """The rows whose validation metric compares across strategies (report.time_to_target.finest_mesh); other
    curve metrics (training loss, gradient norm) keep every level."""
    return time_to_target.finest_mesh(data) if metric == "val_metric" else data


@FIGURES.register("fig5")
def fig5(frame: pd.DataFrame) -> tuple[plt.Figure, pd.DataFrame]:
    """Denoising: the validation metric (else the training loss) against executed #WU (log x),
    one panel per network, one line per strategy, mean over seeds with a band where n > 1."""
    metric = curve_metric(frame, CURVE_METRICS["fig5"])
    data = frame[pd.to_numeric(frame["wu_executed"], errors="coerce") > 0]  # log axis: drop the #WU=0 start
    data = finest_mesh(data, metric)
    stats = seed_stats(data, ["arch", "strategy", "iteration"], metric)
    archs = ordered(stats["arch"].unique(), ARCH_LABELS)
    ncols = min(len(archs), 4)
    nrows = -(-len(archs) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(max(4.3 * ncols + 0.6, 7.0), 3.9 * nrows + 1.4), squeeze=False)
    label = metric_label(frame, metric)
    for ax, arch in zip(axes.ravel(), archs):
        part = stats[stats["arch"].astype(str) == arch]
        draw_lines(ax, part, "wu_executed")
        ax.set_xscale("log")
        positive_log(ax, part["mean"])
        ax.set(title=arch_label(arch), xlabel="executed #WU (log)", ylabel=label)
    for ax in axes.ravel()[len(archs):]:
        ax.set_axis_off()
    where = " on the finest mesh" if metric == "val_metric" and "level" in frame.columns else ""
    legend_below(fig, axes.ravel(), f"Figure 5 — denoising: {label}{where} against executed #WU ({describe(frame)})")
    return fig, stats


def fig7_operation(op: str, k) -> str:
    """A reader's label: 'conv 3x3' (the kernel size), 'MFC (pointwise mixing)'."""
    op = str(op)
    if op.startswith("conv"):
        return f"conv {int(float(k))}x{int(float(k))}"
    if op.startswith("mfc"):
        mixing = op.split("_", 1)[1] if "_" in op else ""
        return f"MFC ({mixing} mixing)" if mixing else "MFC"
    return op


@FIGURES.register("fig7")
def fig7(frame: pd.DataFrame) -> tuple[plt.Figure, pd.DataFrame]:
    """Runtime of one conv (per kernel size) and one MFC against image size, one panel per (device,
    channel count): each (operation, n) is one measurement, its median drawn with the IQR as a band
    (never an average over channel counts)."""
    data = frame.assign(operation=[fig7_operation(op, k) for op, k in zip(frame["op"], frame["k"])])
    if "device" not in data.columns:
        data = data.assign(device="?")
    if "channels" not in data.columns:
        data = data.assign(channels=0)
    panels = sorted({(str(d), int(c)) for d, c in zip(data["device"], data["channels"])})
    fig, axes = plt.subplots(1, len(panels), figsize=(max(5.0 * len(panels) + 0.6, 7.5), 5), squeeze=False,
                             sharey=True)
    ops = sorted(data["operation"].unique(), key=lambda o: (o.startswith("MFC"), len(o), o))
    convs, mfcs = [o for o in ops if not o.startswith("MFC")], [o for o in ops if o.startswith("MFC")]
    palette = {**dict(zip(convs, sns.color_palette("crest", max(len(convs), 1)))),
               **dict(zip(mfcs, sns.color_palette("flare", max(len(mfcs), 1))))}
    for j, (ax, (device, channels)) in enumerate(zip(axes[0], panels)):
        part = data[(data["device"].astype(str) == device) & (data["channels"].astype(int) == channels)]
        for op in ops:
            line = part[part["operation"] == op].sort_values("n")
            if line.empty:
                continue
            median = pd.to_numeric(line["ms_median"], errors="coerce")
            ax.plot(line["n"], median, marker="o", color=palette[op], label=op, lw=2 if op.startswith("MFC") else 1.3)
            if "ms_iqr" in line.columns:
                half = pd.to_numeric(line["ms_iqr"], errors="coerce").fillna(0) / 2
                ax.fill_between(line["n"], (median - half).clip(lower=median * 0.5), median + half,
                                color=palette[op], alpha=0.2, lw=0)
        ax.set(xscale="log", yscale="log", xlabel="image size n (n x n)",
               ylabel="ms per forward (median)" if j == 0 else "", title=f"{device}, {channels} channels")
        ax.set_xticks(sorted(part["n"].unique()), [str(int(n)) for n in sorted(part["n"].unique())])
        ax.minorticks_off()
    legend_below(fig, axes[0], "Figure 7 — forward time of one convolution per kernel size and one MFC against "
                               "image size (batch 1; median, band: IQR)")
    return fig, data


FIGURES.register("scaling")(scaling_figure)  # the resolution-scaling figure (measured time ratios; not in the paper)
FIGURES.register("ladder")(ladder_figure)  # the ratio against width, budget and resolution (not in the paper)


def render(name: str, inputs: list[str | Path], out: str | Path) -> Path:
    """Read inputs, draw figure `name` to `out` (PNG) and its data to `out` with .csv."""
    plot = FIGURES.get(name)
    frames = [harmonise(pd.read_csv(p)) for p in inputs if Path(p).is_file()]
    if not frames:
        raise FileNotFoundError(f"{name}: none of the inputs exist: {', '.join(map(str, inputs))}")
    frame = pd.concat(frames, ignore_index=True, sort=False)
    check_columns(name, frame)
    sns.set_theme(context="notebook", style="whitegrid", font_scale=0.9)
    fig, data = plot(frame)
    return save_figure(fig, data, out)

