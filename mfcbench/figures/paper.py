"""Figures 3, 4, 5 and 7 from result CSVs only (seaborn, Agg backend); each writes its data beside it.

A figure is one registered function `(frame) -> (matplotlib Figure, tidy data)`. Restyling a
figure reruns only this module: it never imports training code and never retrains.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Callable

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

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
from .save import save_figure  # noqa: E402
from .scaling import REQUIRED as SCALING_COLUMNS  # noqa: E402
from .scaling import scaling_figure  # noqa: E402

Plot = Callable[[pd.DataFrame], tuple[plt.Figure, pd.DataFrame]]
FIGURES: Registry[Plot] = Registry("figure")
REQUIRED = {
    "fig3": ["row", "panel", "x", "y", "value"],
    "fig4": ["arch", "strategy", "iteration", "level", "grad_norm"],
    "fig5": ["arch", "strategy", "iteration", "wu_executed"],
    "fig7": ["op", "k", "n", "ms_median"],
    "scaling": SCALING_COLUMNS,
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
    fig.suptitle(title, fontsize=12)
    ncol = max(1, min(len(labels), int(width // 2.3)))
    bottom = (0.1 + 0.3 * -(-len(labels) // ncol)) / fig.get_figheight()
    top = 1 - (0.1 + 0.22 * (title.count("\n") + 1)) / fig.get_figheight()
    fig.tight_layout(rect=(0, bottom, 1, top))
    fig.legend([handles[k] for k in labels], labels, loc="lower center", ncol=ncol, frameon=False, fontsize=10)


def positive_log(ax, values: pd.Series, axis: str = "y") -> None:
    if len(values) and (pd.to_numeric(values, errors="coerce").dropna() > 0).all():
        (ax.set_yscale if axis == "y" else ax.set_xscale)("log")


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
    """Blur estimation, single scale vs Full-Multiscale: one column per convolution type (standard,
    MFC); top row the gradient norm across levels, bottom row the validation metric (else the
    training loss) against iteration. Full-Multiscale's level changes are dotted lines when every
    seed changes level at the same iteration; when early stopping ends levels at different
    iterations, each seed is its own thin line with a marker where it moves to a finer level
    (a mean over seeds would mix levels)."""
    wanted = [s for s in ("sgd", "fmsgd") if s in set(frame["strategy"].astype(str))]
    data = frame[frame["strategy"].astype(str).isin(wanted)] if len(wanted) == 2 else frame
    metric = curve_metric(data, CURVE_METRICS["fig4"])
    archs = sorted(data["arch"].astype(str).unique(), key=lambda a: (conv_type(a) == "MFC", a))
    rows = [("grad_norm", "gradient norm"), (metric, metric_label(data, metric))]
    source = {"grad_norm": data, metric: finest_mesh(data, metric)}  # the gradient norm on every level
    stats = pd.concat([seed_stats(source[value], ["arch", "strategy", "iteration"], value).assign(panel=value)
                       for value, _ in rows], ignore_index=True)
    fig, axes = plt.subplots(2, len(archs), figsize=(5.2 * len(archs) + 0.6, 7.4), squeeze=False, sharex="col",
                             sharey="row")
    seeded = [a for a in archs if not _same_level_changes(data[data["arch"].astype(str) == a])]
    for j, arch in enumerate(archs):
        cells = data[data["arch"].astype(str) == arch]
        per_seed = arch in seeded
        for i, (value, label) in enumerate(rows):
            ax = axes[i][j]
            part = stats[(stats["arch"] == arch) & (stats["panel"] == value)]
            if per_seed:
                draw_lines(ax, part[part["strategy"].astype(str) != "fmsgd"], "iteration")
                _draw_fmsgd_seeds(ax, finest_mesh(cells, value) if i == 1 else cells, value)
            else:
                draw_lines(ax, part, "iteration")
                _mark_levels(ax, cells, with_text=i == 0)
            positive_log(ax, part["mean"])
            ax.set_title(f"({chr(97 + i * len(archs) + j)}) {arch_label(arch)}: {label}",
                         fontsize=11)
            ax.set_ylabel(label if j == 0 else "")
            ax.set_xlabel("iteration" if i == 1 else "")
    note = "; Full-Multiscale: each seed, its levels end on a plateau" if seeded else ""
    where = "; validation on the finest mesh" if len(finest_mesh(data, metric)) < len(data) else ""
    legend_below(fig, axes.ravel(),
                 f"Figure 4 — blur estimation, single scale vs Full-Multiscale ({describe(data)}{note}{where})")
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


def _draw_fmsgd_seeds(ax, data: pd.DataFrame, value: str) -> None:
    """Full-Multiscale one thin line per seed, a '|' marker where that seed moves to a finer level."""
    fm = data[data["strategy"].astype(str) == "fmsgd"]
    fm = fm.assign(_v=pd.to_numeric(fm[value], errors="coerce")).dropna(subset=["_v"])
    color, label = STRATEGY_COLORS["fmsgd"], STRATEGY_LABELS["fmsgd"] + " (each seed; | next level)"
    for k, (seed, run) in enumerate(fm.groupby("seed" if "seed" in fm.columns else lambda _: 0)):
        run = run.sort_values("iteration")
        ax.plot(run["iteration"], run["_v"], color=color, ls=STRATEGY_STYLES["fmsgd"], lw=1.0, alpha=0.85,
                label=label if k == 0 else None)
        changes = run[run["level"].ne(run["level"].shift()) & (run.index != run.index[0])]
        ax.plot(changes["iteration"], changes["_v"], ls="none", marker="|", ms=12, mew=2, color="black")


def _mark_levels(ax, data: pd.DataFrame, with_text: bool) -> None:
    """Dotted vertical lines where Full-Multiscale-SGD moves to a finer level, labelled 'level j'."""
    fm = data[data["strategy"].astype(str) == "fmsgd"]
    if fm.empty:
        return
    starts = fm.groupby("level")["iteration"].min().sort_values()
    for level, iteration in starts.items():
        if iteration > starts.min():
            ax.axvline(iteration, color="grey", ls=":", lw=1)
        if with_text:
            ax.annotate(f"level {int(level)}", (iteration, 1.0), xycoords=("data", "axes fraction"),
                        xytext=(3, -13), textcoords="offset points", fontsize=8, color="dimgrey",
                        bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none", "alpha": 0.8})


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

