"""Figures 1-2, 9-14 and 15 drawn from what the code really runs (`python -m mfcbench visualise`).

- Figures 1 and 2 (Algorithms 1 and 2): the `Phase`/`Draw` objects `build_strategy(...).phases()`
  returns for a profile's config, i.e. the schedule the trainers run: meshes, batch per draw, the
  telescoping terms +l_j - l_{j+1}, and (Full-Multiscale) the coarse-to-fine phases and iterations.
- Figures 9-14 (App. F): input | target | SGD | Multiscale-SGD | Full-Multiscale-SGD on the same
  validation images, from the trained cells' checkpoints, one row per (network, image). The paper's
  captions map them to tables: 9-10 denoising on STL10 (Table 4), 11-12 denoising on CelebA
  (Table 6), 13-14 x2 super-resolution on Urban100 (Table 5); each pair shows different images.
- Figure 15: feature maps after the first layer of ResNet-18 with MFCs and with standard
  convolutions on the same noisy inputs (Table 7's checkpoints, else freshly initialised models).

Every figure writes a PNG and the CSV of what it plots (cells, checkpoints, images, metrics); no pixels.
Each trained cell is rebuilt with the runner's own builder (`mfcbench.train.cell.build_cell`: the same
seeded model and validation batch); `inputs_match` in the CSVs checks that the columns of a row, whose
cells may differ in config (e.g. a strategy override of val_size), show the same input.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import pandas as pd
import torch

from ..core.atomic import torch_load
from ..core.cell import BASE_VARIANT, Cell, CellFiles, try_read_metrics
from ..core.labels import METRIC_LABELS, arch_label, strategy_label
from ..train.cell import build_cell, validation_subset
from .save import pyplot, save_png


@dataclass(frozen=True)
class PredictionSpec:
    table: str
    first_image: int  # the figure's first validation image (the pair of figures shows different images)
    paper: str  # what the paper's caption shows


ALGORITHM_FIGURES = {"fig1": "msgd", "fig2": "fmsgd"}
ALGORITHM_NAMES = {"msgd": "Multiscale-SGD (Algorithm 1)", "fmsgd": "Full-Multiscale-SGD (Algorithm 2)"}
PREDICTION_FIGURES = {
    "fig9": PredictionSpec("table4", 0, "denoising, STL10"),
    "fig10": PredictionSpec("table4", 2, "denoising, STL10"),
    "fig11": PredictionSpec("table6", 0, "denoising, CelebA"),
    "fig12": PredictionSpec("table6", 2, "denoising, CelebA"),
    "fig13": PredictionSpec("table5", 0, "x2 super-resolution, Urban100"),
    "fig14": PredictionSpec("table5", 2, "x2 super-resolution, Urban100"),
}
FEATURE_FIGURE, FEATURE_TABLE = "fig15", "table7"
FEATURE_ARCHS = ("mfc_resnet18", "resnet18")  # the paper's row order: MFCs, then standard convolutions
FIGURES = [*ALGORITHM_FIGURES, *PREDICTION_FIGURES, FEATURE_FIGURE]
STRATEGIES = ("sgd", "msgd", "fmsgd")
PREDICTION_COLUMNS = ["figure", "profile", "table", "task", "dataset", "arch", "column", "seed", "cell", "checkpoint",
                      "status", "iterations", "image", "cond", "mse", "ssim", "headline", "best", "inputs_match"]
FEATURE_COLUMNS = ["figure", "profile", "table", "dataset", "row", "arch", "source", "trained", "channel", "image",
                   "cond", "roughness"]


def figure_table(fig: str) -> str | None:
    """The table whose cells a figure reads (None: Figures 1-2 read the schedule only)."""
    if fig in PREDICTION_FIGURES:
        return PREDICTION_FIGURES[fig].table
    return FEATURE_TABLE if fig == FEATURE_FIGURE else None


def message_figure(path: str | Path, title: str, message: str) -> None:
    """A figure that says why there is nothing to draw (e.g. the table has no cells in the profile)."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(8, 2.4))
    ax.axis("off")
    ax.set_title(title, fontsize=12)
    ax.text(0.5, 0.45, message, ha="center", va="center", fontsize=11, wrap=True, transform=ax.transAxes)
    save_png(fig, path)


# ----------------------------------------------------------------------------- Figures 1 and 2
def schedule_rows(strategy: str, cfg: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One row per (phase, draw, mesh) of the strategy's phases: the term +l_level or -l_level."""
    from ..strategies import build_strategy

    phases = build_strategy(strategy, dict(cfg)).phases()
    size = int(cfg["image_size"])
    rows = []
    for p, phase in enumerate(phases, start=1):
        for d, draw in enumerate(phase.draws, start=1):
            for sign, level in zip((1, -1), draw.levels):
                rows.append({"strategy": strategy, "phase": p, "phase_level": phase.level, "iterations": phase.iterations,
                             "draw": d, "batch": draw.batch, "level": level, "sign": sign, "mesh": size // 2**level,
                             "term": f"{'+' if sign > 0 else '-'}l_{level}",
                             "wu_per_iteration": float(phase.wu_per_iteration)})
    return rows


def _draw_mesh(ax, x: float, y: float, side: float, cells: int) -> None:
    from matplotlib.patches import Rectangle

    ax.add_patch(Rectangle((x - side / 2, y - side / 2), side, side, fill=False, lw=1.2, color="0.2"))
    lines = min(cells, 16)
    for k in range(1, lines):
        offset = -side / 2 + side * k / lines
        ax.plot([x + offset] * 2, [y - side / 2, y + side / 2], color="0.6", lw=0.4)
        ax.plot([x - side / 2, x + side / 2], [y + offset] * 2, color="0.6", lw=0.4)


def _column_positions(frame: pd.DataFrame) -> dict[tuple[int, int], float]:
    """x of each (phase, draw) column, with a gap between phases."""
    keys = list(dict.fromkeys(zip(frame["phase"], frame["draw"])))
    xs, x, last = {}, 0.0, None
    for phase, draw in keys:
        if last is not None and phase != last:
            x += 0.6
        xs[(phase, draw)] = x
        x, last = x + 1.0, phase
    return xs


def _draw_terms(ax, frame: pd.DataFrame, xs: dict) -> None:
    from matplotlib.patches import FancyBboxPatch

    for (phase, draw), part in frame.groupby(["phase", "draw"], sort=False):
        x = xs[(phase, draw)]
        levels = list(part["level"])
        ax.plot([x, x], [min(levels), max(levels)], color="0.5", lw=2, zorder=1)
        ax.text(x, -0.62, f"N={part['batch'].iloc[0]}", ha="center", va="center", fontsize=9)
        for row in part.itertuples():
            colour = "#1f77b4" if row.sign > 0 else "#d62728"
            ax.add_patch(FancyBboxPatch((x - 0.3, row.level - 0.2), 0.6, 0.4, boxstyle="round,pad=0.02",
                                        color=colour, zorder=2))
            ax.text(x, row.level, f"{'+' if row.sign > 0 else '−'}ℓ{row.level}", ha="center", va="center",
                    color="white", fontsize=10, fontweight="bold", zorder=3)


def _draw_phase_headers(ax, frame: pd.DataFrame, xs: dict, phased: bool) -> None:
    for phase, part in frame.groupby("phase", sort=False):
        cols = [xs[k] for k in dict.fromkeys(zip(part["phase"], part["draw"]))]
        centre, its = (min(cols) + max(cols)) / 2, int(part["iterations"].iloc[0])
        finest = int(part["mesh"].max())
        text = (f"phase {phase}: finest {finest}×{finest}\n{its} iterations" if phased
                else f"one step = {len(cols)} terms, 1 backward\n{its} iterations")
        ax.text(centre, -1.25, text, ha="center", va="center", fontsize=9)
        if phased and phase > 1:
            ax.annotate("", xy=(min(cols) - 0.45, -1.25), xytext=(min(cols) - 0.95, -1.25),
                        arrowprops={"arrowstyle": "->", "color": "0.3"})


def _schedule_axes(ax, frame: pd.DataFrame, phased: bool) -> None:
    """Rows: meshes (finest on top, drawn to scale at the left); columns: the draws of each phase."""
    xs = _column_positions(frame)
    levels = sorted(set(frame["level"]))
    biggest = frame["mesh"].max()
    for level in levels:
        mesh = int(frame.loc[frame["level"] == level, "mesh"].iloc[0])
        _draw_mesh(ax, -1.5, level, max(0.12, 0.8 * mesh / biggest), mesh)
        ax.text(-2.05, level, f"{mesh}×{mesh}\nlevel {level}", ha="right", va="center", fontsize=9)
    _draw_terms(ax, frame, xs)
    _draw_phase_headers(ax, frame, xs, phased)
    ax.set_xlim(-3.1, max(xs.values()) + 0.6)
    ax.set_ylim(max(levels) + 0.6, -1.75)
    ax.set_aspect("equal")
    ax.axis("off")


def draw_schedule(frame: pd.DataFrame, title: str, path: str | Path, phased: bool) -> None:
    """Figure 1 (one phase) or 2 (coarse-to-fine phases, plus the iterations per phase)."""
    plt = pyplot()
    columns = frame[["phase", "draw"]].drop_duplicates().shape[0]
    levels = frame["level"].nunique()
    width = max(9.5, 0.95 * (3.7 + columns + 0.6 * (frame["phase"].nunique() - 1)) + 0.5)
    height = 0.95 * (levels + 1.35) + 1.3
    if phased:
        fig, (ax, bars) = plt.subplots(2, 1, figsize=(width, height + 2.2), height_ratios=[height, 2.0])
        per_phase = frame.drop_duplicates("phase")
        names = [f"phase {p}\n({m}×{m})" for p, m in zip(per_phase["phase"], frame.groupby("phase")["mesh"].max())]
        bars.barh(names, per_phase["iterations"], color="#7f7f7f")
        for y, its in enumerate(per_phase["iterations"]):
            bars.text(its, y, f" {its}", va="center", fontsize=9)
        bars.invert_yaxis()
        bars.set_xlabel("iterations (coarse to fine; each phase warm-starts from the previous one)")
        bars.xaxis.get_major_locator().set_params(integer=True)
        bars.spines[["top", "right"]].set_visible(False)
    else:
        fig, ax = plt.subplots(figsize=(width, height))
    _schedule_axes(ax, frame, phased)
    ax.set_title(title, fontsize=11)
    note = ("a column is one draw of N images: +ℓj − ℓj+1 is their loss on mesh j minus the loss on the same images "
            "pooled to mesh j+1;\nthe coarsest draw is +ℓ alone. A step sums the columns" + (" of its phase." if phased else "."))
    fig.text(0.5, 0.01, note, ha="center", va="bottom", fontsize=8.5, color="0.3")
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    save_png(fig, path)


def schedule_figure(fig: str, cfg: Mapping[str, Any], out: str | Path, context: Mapping[str, Any]) -> pd.DataFrame:
    """Figure 1 or 2 from the profile's config: PNG at `out`, returns the plotted rows (the CSV)."""
    strategy = ALGORITHM_FIGURES[fig]
    frame = pd.DataFrame(schedule_rows(strategy, cfg))
    frame.insert(0, "figure", fig)
    for key, value in reversed(list(context.items())):
        frame.insert(1, key, value)
    table = context.get("table", "?")
    title = (f"Figure {fig[3:]}: {ALGORITHM_NAMES[strategy]}\nprofile {context.get('profile', '?')}, {table} config: "
             f"image {cfg['image_size']}×{cfg['image_size']}, {cfg['levels']} levels, "
             f"{int(frame.drop_duplicates('phase')['iterations'].sum())} iterations")
    if context.get("in_table") is False:
        title += f"\n({strategy_label(strategy)} is not trained in {table}: the schedule it would run there)"
    draw_schedule(frame, title, out, phased=strategy == "fmsgd")
    return frame


# ----------------------------------------------------------------------------- cells and models
def cell_settings(cell, record: dict | None) -> dict:
    """The cell's resolved training config: what metrics.json recorded, else its profile config resolved."""
    if record and isinstance(record.get("config"), dict):
        return record["config"]
    from ..train.config import resolve

    return resolve(dict(cell.config))


def validation_images(dataset: str, cfg: Mapping[str, Any], cache: dict, given: Mapping | None) -> torch.Tensor:
    """The cell's validation images (cfg's val_size), opened once per (dataset, size, root)."""
    key = (dataset, int(cfg["image_size"]), str(cfg["data_root"]))
    if given is not None and dataset in given:
        cache[key] = given[dataset]
    if key not in cache:
        from ..data import open_dataset

        cache[key] = open_dataset(dataset, cfg["image_size"], cfg["data_root"]).val
    return validation_subset(cache[key], cfg).float().cpu()


def rebuild(cell, arch: str, cfg: Mapping[str, Any], images: torch.Tensor, strategy: str | None = None):
    """The cell's task, seeded model (eval mode) and validation batch, built by the runner's `build_cell`."""
    spec = Cell(task=cell.task, dataset=cell.dataset, arch=arch, strategy=strategy, seed=cell.seed, config=dict(cfg))
    built = build_cell(spec, images)
    built.model.eval()
    return built


def trained_state(cell_dir: Path, record: dict | None) -> tuple[dict | None, str]:
    """(state_dict, status): the finished checkpoint's model, or None and why not."""
    path = CellFiles(cell_dir).checkpoint
    if record is None:
        return None, "not trained"
    if record.get("status") != "ok":
        return None, str(record.get("status"))
    if not path.is_file():
        return None, "no checkpoint"
    ck = torch_load(path, "checkpoint")
    return (ck["model"], "ok") if ck.get("finished") else (None, "unfinished")


def to_unit(task, x: torch.Tensor) -> torch.Tensor:
    """Images as [0, 1] for display and SSIM (denoising's symmetric range is [-1, 1])."""
    if getattr(task, "image_range", "unit") == "symmetric":
        x = (x + 1) / 2
    return x.clamp(0.0, 1.0)


def image_metrics(task, prediction: torch.Tensor, target: torch.Tensor) -> list[dict[str, float]]:
    """Per image: MSE in the range the model sees (denoising's val_mse) and SSIM on [0, 1] images."""
    from torch.nn import functional as F

    from ..tasks.superres import ssim_per_image

    if prediction.shape[-2:] != target.shape[-2:]:  # a super-resolution input: bicubic to the target mesh
        prediction = F.interpolate(prediction, size=target.shape[-2:], mode="bicubic", align_corners=False)
    mse = ((prediction - target) ** 2).flatten(1).mean(1)
    ssim = ssim_per_image(to_unit(task, prediction), to_unit(task, target))
    return [{"mse": float(m), "ssim": float(s)} for m, s in zip(mse, ssim)]


# ----------------------------------------------------------------------------- Figures 9-14
@dataclass
class Column:
    """One strategy of one network: its cell, checkpoint and predictions on the figure's images."""

    strategy: str
    cell: Any = None
    checkpoint: str = ""
    status: str = "no cell in this profile"
    iterations: int | None = None
    task: Any = None
    batch: Any = None
    prediction: torch.Tensor | None = None
    metrics: list | None = None


def select_cells(cells: Iterable, table: str) -> dict[str, dict[str, Any]]:
    """arch -> strategy -> the table's base-variant cell with the lowest seed, in the profile's order."""
    chosen: dict[str, dict[str, Any]] = {}
    for cell in cells:
        if cell.table != table or cell.strategy not in STRATEGIES or getattr(cell, "variant", BASE_VARIANT) != BASE_VARIANT:
            continue
        by_strategy = chosen.setdefault(cell.arch, {})
        if cell.strategy not in by_strategy or cell.seed < by_strategy[cell.strategy].seed:
            by_strategy[cell.strategy] = cell
    return chosen


IMAGE_SLOTS = 4  # each table's pair of figures shows 2 + 2 images, spread over its validation batch


def image_indices(first: int, count: int, available: int) -> list[int]:
    """Slot s of IMAGE_SLOTS picks the image at the middle of the s-th quarter of the validation batch,
    so a figure's images come from different parts of the split (its first patches can be flat)."""
    slots = max(IMAGE_SLOTS, first + count)
    return list(dict.fromkeys(((first + k) * available // slots + available // (2 * slots)) % available
                              for k in range(count)))


@torch.no_grad()
def predict_column(column: Column, results_dir: Path, first: int, count: int, cache: dict,
                   given: Mapping | None) -> list[int]:
    """Fill `column` from its cell folder; returns the validation image indices used."""
    cell = column.cell
    cell_dir = Path(results_dir) / cell.relpath()
    record = try_read_metrics(cell_dir)
    cfg = cell_settings(cell, record)
    images = validation_images(cell.dataset, cfg, cache, given)
    built = rebuild(cell, cell.arch, cfg, images, cell.strategy)
    column.task, column.batch = built.task, built.val_batch
    indices = image_indices(first, count, len(images))
    state, column.status = trained_state(cell_dir, record)
    column.checkpoint = str(CellFiles(cell_dir).checkpoint)
    column.iterations = (record or {}).get("iterations")
    if state is not None:
        model = built.model
        model.load_state_dict(state)
        cond = None if column.batch.cond is None else column.batch.cond[indices]
        column.prediction = model(column.batch.inputs[indices], cond=cond)
        column.metrics = image_metrics(column.task, column.prediction, column.batch.targets[indices])
    return indices


def network_columns(by_strategy: Mapping[str, Any], results_dir: Path, first: int, count: int, cache: dict,
                    given: Mapping | None) -> tuple[list[Column], list[int]]:
    columns, indices = [], []
    for strategy in STRATEGIES:
        column = Column(strategy, cell=by_strategy.get(strategy))
        if column.cell is not None:
            indices = predict_column(column, results_dir, first, count, cache, given)
        columns.append(column)
    return columns, indices


def _panel(ax, image: torch.Tensor | None, task, text: str, bold: bool = False) -> None:
    ax.set_xticks([])
    ax.set_yticks([])
    if image is None:
        ax.set_box_aspect(1)
        ax.set_facecolor("0.93")
        ax.text(0.5, 0.5, text, ha="center", va="center", fontsize=9, color="0.35", transform=ax.transAxes)
        return
    shown = to_unit(task, image).permute(1, 2, 0).numpy()
    ax.imshow(shown[..., 0] if shown.shape[-1] == 1 else shown, cmap="gray", vmin=0, vmax=1,
              interpolation="nearest")
    ax.set_xlabel(text, fontsize=9, fontweight="bold" if bold else "normal")


def _metric_text(metric: str, values: Mapping[str, float]) -> str:
    return f"{METRIC_LABELS[metric]} {values[metric]:.4f}"


@dataclass
class ImageRow:
    """One row of Figures 9-14: a network's columns on one validation image."""

    arch: str
    columns: list[Column]
    ref: Column  # the first column with a cell: the row's input and target are its batch's
    k: int  # the image's position among the predicted images
    image: int  # the image's index in the validation batch
    metric: str  # the per-image metric shown (mse or ssim)
    best: str | None  # the strategy with the best metric, None when fewer than two have one


def _strategy_rows(context: dict, row: ImageRow) -> list[dict]:
    """The CSV rows of one figure row: the input's metric, then one per strategy column."""
    columns, ref, k, image, metric, best = row.columns, row.ref, row.k, row.image, row.metric, row.best
    rows = []
    input_metric = image_metrics(ref.task, ref.batch.inputs[[image]], ref.batch.targets[[image]])[0]
    cond = None if ref.batch.cond is None else round(float(ref.batch.cond[image]), 4)
    rows.append({**context, "column": "input", "seed": ref.cell.seed, "cell": "", "checkpoint": "", "status": "ok",
                 "iterations": None, "image": image, "cond": cond, **input_metric, "headline": metric, "best": False,
                 "inputs_match": True})
    for c in columns:
        values = c.metrics[k] if c.metrics else {"mse": None, "ssim": None}
        match = bool(c.batch is not None and torch.equal(c.batch.inputs[image], ref.batch.inputs[image]))
        rows.append({**context, "column": c.strategy, "seed": None if c.cell is None else c.cell.seed,
                     "cell": "" if c.cell is None else c.cell.relpath(), "checkpoint": c.checkpoint,
                     "status": c.status, "iterations": c.iterations, "image": image, "cond": cond, **values,
                     "headline": metric, "best": c.strategy == best, "inputs_match": match})
    return rows


def _best(columns: list[Column], k: int, metric: str, higher: bool) -> str | None:
    scored = [(c.metrics[k][metric], c.strategy) for c in columns if c.metrics and math.isfinite(c.metrics[k][metric])]
    if len(scored) < 2:
        return None
    return (max(scored) if higher else min(scored))[1]


def _draw_prediction_row(axes, row: ImageRow, rows: list[dict]) -> None:
    """input | target | one prediction per strategy, each with its metric under it (bold: the best)."""
    ref, image, metric = row.ref, row.image, row.metric
    cond = "" if ref.batch.cond is None else f", t={float(ref.batch.cond[image]):.2f}"
    _panel(axes[0], ref.batch.inputs[image], ref.task, _metric_text(metric, rows[0]))
    axes[0].set_ylabel(f"{arch_label(row.arch)}\nimage {image}{cond}", fontsize=10)
    _panel(axes[1], ref.batch.targets[image], ref.task, "")
    for ax, column, values in zip(axes[2:], row.columns, rows[1:]):
        image_or_none = None if column.prediction is None else column.prediction[row.k]
        text = _metric_text(metric, values) if column.prediction is not None else column.status
        _panel(ax, image_or_none, column.task, text, bold=column.strategy == row.best)


def _prediction_title(fig: str, spec: PredictionSpec, context: dict, metric: str, higher: bool) -> str:
    better = "higher" if higher else "lower"
    return (f"Figure {fig[3:]}: {spec.paper} in the paper; here {spec.table} ({context['task']}), dataset "
            f"{context['dataset']}, profile {context['profile']}\n"
            f"per-image {METRIC_LABELS[metric]} against the target under each panel ({better} is better; bold = best)")


def prediction_figure(fig: str, cells: Iterable, results_dir: str | Path, out: str | Path, profile: str, *,
                      images: int = 2, val_images: Mapping[str, torch.Tensor] | None = None) -> pd.DataFrame:
    """Figures 9-14: rows (network, image), columns input | target | SGD | MSGD | FMSGD; returns the CSV rows."""
    spec = PREDICTION_FIGURES[fig]
    chosen = select_cells(cells, spec.table)
    if not chosen:
        message_figure(out, f"Figure {fig[3:]}: {spec.paper} ({spec.table})",
                       f"{spec.table} has no SGD / Multiscale-SGD / Full-Multiscale-SGD cells in profile {profile}:\n"
                       f"add {spec.table} to the profile's tables to draw this figure.")
        return pd.DataFrame([{"figure": fig, "profile": profile, "table": spec.table, "status": "no cells"}],
                            columns=PREDICTION_COLUMNS)
    cache: dict = {}
    networks = [(arch, *network_columns(by, Path(results_dir), spec.first_image, images, cache, val_images))
                for arch, by in chosen.items()]
    first = next(c for c in networks[0][1] if c.cell is not None)
    metric = "ssim" if first.task.higher_is_better else "mse"
    context = {"figure": fig, "profile": profile, "table": spec.table, "task": first.cell.task,
               "dataset": first.cell.dataset}
    n_rows = sum(len(indices) for _, _, indices in networks)
    plt = pyplot()
    figure, axes = plt.subplots(n_rows, 5, figsize=(10.5, 2.15 * n_rows + 1.3), squeeze=False)
    rows, r = [], 0
    for arch, columns, indices in networks:
        ref = next(c for c in columns if c.cell is not None)
        for k, image in enumerate(indices):
            row = ImageRow(arch, columns, ref, k, image, metric, _best(columns, k, metric, first.task.higher_is_better))
            part = _strategy_rows({**context, "arch": arch}, row)
            _draw_prediction_row(axes[r], row, part)
            rows += part
            r += 1
    for ax, name in zip(axes[0], ["input (data)", "target", *(strategy_label(s) for s in STRATEGIES)]):
        ax.set_title(name, fontsize=10)
    figure.suptitle(_prediction_title(fig, spec, context, metric, first.task.higher_is_better), fontsize=10.5)
    figure.tight_layout(rect=(0, 0, 1, 1 - 0.55 / figure.get_figheight()))  # room for the two-line title
    save_png(figure, out)
    frame = pd.DataFrame(rows, columns=PREDICTION_COLUMNS)
    frame[["iterations", "seed"]] = frame[["iterations", "seed"]].astype("Int64")
    return frame


# ----------------------------------------------------------------------------- Figure 15
@dataclass(frozen=True)
class FeatureSource:
    """One network of Figure 15: its cell (`config` resolved) and, when trained, the cell's folder."""

    cell: Cell
    folder: Path | None = None


def first_layer(model: torch.nn.Module) -> torch.nn.Module:
    """The first spatial layer (a Conv2d or an MFC) in module order: a ResNet's stem convolution."""
    from ..layers import MeshFreeConv2d

    for module in model.modules():
        if isinstance(module, (torch.nn.Conv2d, MeshFreeConv2d)):
            return module
    raise ValueError(f"{type(model).__name__} has no convolution")


@torch.no_grad()
def first_layer_maps(model: torch.nn.Module, inputs: torch.Tensor, cond: torch.Tensor | None) -> torch.Tensor:
    """The output of the first layer on `inputs` (a forward hook on a full forward pass)."""
    captured = []
    handle = first_layer(model).register_forward_hook(lambda _m, _i, output: captured.append(output))
    try:
        model(inputs, cond=cond)
    finally:
        handle.remove()
    return captured[0]


def roughness(maps: torch.Tensor) -> torch.Tensor:
    """Per map (N, H, W): mean squared neighbour difference / (4 variance); 1 for white noise, ~0 when smooth."""
    dx = (maps[..., :, 1:] - maps[..., :, :-1]).pow(2).flatten(1).mean(1)
    dy = (maps[..., 1:, :] - maps[..., :-1, :]).pow(2).flatten(1).mean(1)
    return (dx + dy) / (4 * maps.flatten(1).var(1).clamp_min(1e-12))


def pick_images(cond: torch.Tensor | None, count: int, available: int) -> list[int]:
    """The `count` validation images with noise level t nearest 0.6 (neither pure noise nor clean)."""
    if cond is None:
        return list(range(min(count, available)))
    order = sorted(range(available), key=lambda i: (abs(float(cond[i]) - 0.6), i))
    return sorted(order[:count])


def source_maps(source: FeatureSource, cache: dict, given: Mapping | None) -> dict[str, Any]:
    """Inputs and first-layer maps of one network (trained checkpoint, else seeded initialisation)."""
    cell, folder = source.cell, source.folder
    images = validation_images(cell.dataset, cell.config, cache, given)
    built = rebuild(cell, cell.arch, cell.config, images)
    task, batch, model = built.task, built.val_batch, built.model
    state, status = (None, "no cell") if folder is None else trained_state(folder, try_read_metrics(folder))
    if state is not None:
        model.load_state_dict(state)
        origin = str(CellFiles(folder).checkpoint)
    else:
        origin = f"fresh initialisation, seed {cell.seed} ({status})"
    return {"task": task, "batch": batch, "model": model, "trained": state is not None, "source": origin}


def _feature_rows(context: dict, panel: dict, indices: list[int], cond: torch.Tensor | None, values) -> list:
    """One CSV row per image of a Figure 15 row: `panel` (row, arch, source, trained, channel) and its roughness."""
    return [{**context, **panel, "image": i, "cond": None if cond is None else round(float(cond[i]), 4),
             "roughness": float(v)} for i, v in zip(indices, values)]


def feature_figure(out: str | Path, sources: Sequence[FeatureSource], profile: str, images: int = 4,
                   val_images: Mapping[str, torch.Tensor] | None = None) -> pd.DataFrame:
    """Figure 15: noisy inputs, then one first-layer feature map per network (MFC first) on them."""
    cache: dict = {}
    nets = [source_maps(s, cache, val_images) for s in sources]
    ref = nets[0]["batch"]
    indices = pick_images(ref.cond, images, len(ref.inputs))
    cond = None if ref.cond is None else ref.cond[indices]
    first = sources[0].cell
    context = {"figure": FEATURE_FIGURE, "profile": profile, "table": first.table, "dataset": first.dataset}
    inputs = ref.inputs[indices]
    panels = [("noisy input", inputs.mean(1), None)]
    rows = _feature_rows(context, {"row": "input", "arch": "", "source": "validation batch", "trained": None,
                                   "channel": None}, indices, ref.cond, roughness(inputs.mean(1)))
    for source, net in zip(sources, nets):
        maps = first_layer_maps(net["model"], inputs, cond)
        channel = int(maps.flatten(2).std(2).mean(0).argmax())  # the most active channel on these images
        arch = source.cell.arch
        panels.append((arch_label(arch), maps[:, channel], channel))
        panel = {"row": arch_label(arch), "arch": arch, "source": net["source"], "trained": net["trained"],
                 "channel": channel}
        rows += _feature_rows(context, panel, indices, ref.cond, roughness(maps[:, channel]))
    _draw_features(out, panels, rows, indices, ref.cond, _feature_title(sources, nets, profile))
    return pd.DataFrame(rows, columns=FEATURE_COLUMNS)


def _feature_title(sources: Sequence[FeatureSource], nets: list[dict], profile: str) -> str:
    how = ", ".join(f"{arch_label(s.cell.arch)}: "
                    f"{'trained (' + s.cell.table + ' checkpoint)' if n['trained'] else 'untrained (fresh init)'}"
                    for s, n in zip(sources, nets))
    return (f"Figure 15: feature maps after the first layer, MFCs vs standard convolutions, denoising, "
            f"dataset {sources[0].cell.dataset}, profile {profile}\n{how}\n"
            f"roughness = mean squared neighbour difference / (4 variance): 1 for white noise, lower is smoother")


def _draw_features(out, panels, rows, indices, cond, title: str) -> None:
    """One row of maps per panel (input, then each network), one column per image, titled `title`."""
    plt = pyplot()
    fig, axes = plt.subplots(len(panels), len(indices), figsize=(2.3 * len(indices) + 1.2, 2.3 * len(panels) + 1.4),
                             squeeze=False)
    for r, (name, maps, channel) in enumerate(panels):
        for k, image in enumerate(indices):
            ax = axes[r][k]
            ax.imshow(maps[k].numpy(), cmap="gray", interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_xlabel(f"roughness {rows[r * len(indices) + k]['roughness']:.2f}", fontsize=9)
            if r == 0:
                t = "" if cond is None else f", t={float(cond[image]):.2f}"
                ax.set_title(f"image {image}{t}", fontsize=10)
        label = name if channel is None else f"{name}\nfirst layer, channel {channel}"
        axes[r][0].set_ylabel(label, fontsize=10)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    save_png(fig, out)
