"""A cost model of training time: a cell's seconds from per-mesh step times (issue 18, item 5).

    seconds(cell) = sum over its phases of iterations x step_seconds(phase)

A phase's step is its model calls: with one call per mesh (`Strategy.loss` for per-sample models)
the parts of all draws on a mesh form one call of (side, batch); for a model with batch statistics
every part is its own call. The step time of a list of calls comes from a rates table (rows of
`python -m mfcbench measure scaling`, or the `scaling_<device>.csv` that `gpu-check` writes on a
device machine): a step measured with exactly these calls (arch, device, threads) is used as it is;
any other is priced by a fit per (arch, device, threads) of the measured steps,

    step_seconds = overhead + per_call x calls + per_pixel x pixels     (pixels = sum of batch x side^2),

non-negative least squares on relative errors (scipy.optimize.nnls), so a few steps at two or more
meshes and call counts calibrate a network. Validation, checkpoints and start-up are not modelled:
the prediction is of `train_seconds` (metrics.json), the optimizer steps only.

- `load_rates(paths)` / `fit_rates(rows)` -> `Rates`
- `predict_cell(cell, rates, device)`; `predict_profile(cells, rates, device)` prices
  every cell of a profile (cells from `mfcbench.pipeline.cells.iter_cells(config)`, which the command
  line passes: measure/ does not import pipeline/), `format_prediction` prints it per table.
- `cost_check(results_dir, rates)` compares the predictions with the cells' recorded `train_seconds`
  (iterations as executed, from curve.csv) and `summary` gives the median absolute relative error.
Reads CSVs with the csv module; needs numpy and scipy, not pandas.
"""

from __future__ import annotations

import csv
import json
import math
import statistics
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

from ..core.cell import CURVE_FILE, METRICS_FILE, Cell
from ..core.optional import require

Calls = tuple[tuple[int, int], ...]  # ((side, batch), ...) sorted: one entry per model call


@dataclass(frozen=True)
class Fit:
    """step_seconds = overhead + per_call x calls + per_pixel x pixels, for one (arch, device, threads)."""

    arch: str
    device: str
    threads: int
    overhead: float
    per_call: float
    per_pixel: float
    rows: int
    batched: bool = True  # one call per mesh (per-sample model); False: one call per part

    def step_seconds(self, calls: Calls) -> float:
        pixels = sum(batch * side * side for side, batch in calls)
        return self.overhead + self.per_call * len(calls) + self.per_pixel * pixels


@dataclass
class Rates:
    """Fitted step-time models and the measured steps they came from."""

    fits: dict[tuple[str, str, int], Fit] = field(default_factory=dict)
    measured: dict[tuple[str, str, int, Calls], float] = field(default_factory=dict)

    def devices(self) -> list[str]:
        return sorted({device for _, device, _ in self.fits})

    def archs(self, device: str) -> list[str]:
        return sorted({arch for arch, d, _ in self.fits if d == device})

    def fit_for(self, arch: str, device: str, threads: int | None = None) -> Fit | None:
        """The fit measured with `threads` threads, else the one with the most rows."""
        candidates = [f for (a, d, _), f in self.fits.items() if a == arch and d == device]
        exact = [f for f in candidates if threads is not None and f.threads == threads]
        return (exact or sorted(candidates, key=lambda f: -f.rows) or [None])[0]

    def step_seconds(self, arch: str, device: str, calls: Calls, threads: int | None = None) -> float | None:
        fit = self.fit_for(arch, device, threads)
        if fit is None:
            return None
        measured = self.measured.get((arch, device, fit.threads, tuple(sorted(calls))))
        return measured if measured is not None else fit.step_seconds(calls)


# ---------------------------------------------------------------------------------------------
# rates
def _number(value: Any) -> float | None:
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if out == out else None  # NaN -> None


def parse_meshes(text: str) -> Calls:
    """'16:3;8:6' (side:batch per call, as scaling rows write it) -> ((8, 6), (16, 3))."""
    calls = []
    for item in str(text).split(";"):
        if item.strip():
            side, _, batch = item.partition(":")
            calls.append((int(side), int(batch)))
    return tuple(sorted(calls))


def step_rows(rows: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The usable step rows of a rates table: kind step, status ok, a step time and its calls."""
    out = []
    for row in rows:
        if row.get("kind", "step") != "step" or row.get("status") != "ok" or not row.get("meshes"):
            continue
        seconds = _number(row.get("step_seconds"))
        if seconds is None or seconds <= 0:
            continue
        threads = int(_number(row.get("threads")) or 0)
        out.append({"arch": str(row["arch"]), "device": str(row.get("device") or "cpu").split(":")[0],
                    "threads": threads, "calls": parse_meshes(row["meshes"]), "seconds": seconds,
                    "parts": int(_number(row.get("parts")) or 0)})
    return out


def fit_one(arch: str, device: str, threads: int, rows: list[dict[str, Any]]) -> Fit:
    """Non-negative least squares of the step model on relative errors (each row weighted 1/t)."""
    import numpy as np
    require("scipy.optimize", "harness")  # a missing package names its extra
    from scipy.optimize import nnls

    design = np.array([[1.0, len(r["calls"]), sum(b * s * s for s, b in r["calls"])] for r in rows])
    seconds = np.array([r["seconds"] for r in rows])
    scale = design.max(axis=0)
    scale[scale == 0] = 1.0
    coef, _ = nnls((design / scale) / seconds[:, None], np.ones(len(rows)))
    coef = coef / scale
    batched = not any(r["parts"] and len(r["calls"]) == r["parts"] and len({s for s, _ in r["calls"]}) < r["parts"]
                      for r in rows)
    return Fit(arch, device, threads, float(coef[0]), float(coef[1]), float(coef[2]), len(rows), batched)


def fit_rates(rows: Iterable[Mapping[str, Any]]) -> Rates:
    """Rates from table rows (dicts with arch, device, threads, meshes, parts, step_seconds, status)."""
    groups: dict[tuple[str, str, int], list[dict[str, Any]]] = defaultdict(list)
    same_calls: dict[tuple, list[float]] = defaultdict(list)
    for row in step_rows(rows):
        key = (row["arch"], row["device"], row["threads"])
        groups[key].append(row)
        same_calls[(*key, row["calls"])].append(row["seconds"])
    rates = Rates(measured={key: statistics.median(times) for key, times in same_calls.items()})
    for key, members in groups.items():
        rates.fits[key] = fit_one(*key, members)
    return rates


def load_rates(paths: Iterable[str | Path]) -> Rates:
    """Rates from one or more CSV files (missing files are an error naming them)."""
    rows: list[dict[str, Any]] = []
    for path in paths:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"rates file {path} does not exist; make one with "
                                    f"`python -m mfcbench measure scaling --out {path}`")
        with open(path, newline="") as handle:
            rows.extend(csv.DictReader(handle))
    return fit_rates(rows)


# ---------------------------------------------------------------------------------------------
# prediction
def input_side(task: str, config: Mapping[str, Any]) -> int:
    """The model's input side on the finest mesh (x2 super-resolution feeds the LR image)."""
    import torch

    from ..tasks import build_task

    built = build_task(task, config.get("task_options") or {}, seed=0)
    size = int(config["image_size"])
    batch = built.make_batch(torch.zeros(1, 1, size, size), torch.Generator().manual_seed(0))
    return int(batch.inputs.shape[-1])


def phase_calls(phase, side: int, batched: bool = True) -> Calls:
    """(side, batch) of each model call of one step of `phase` on a finest input side `side`:
    one call per mesh when `batched` (the parts on one mesh share it), else one per part."""
    parts = [(round((side >> level) * math.sqrt(draw.fraction)), draw.batch)  # fraction < 1: crops
             for draw in phase.draws for level in draw.levels]
    if not batched:
        return tuple(sorted(parts))
    per_mesh: dict[int, int] = defaultdict(int)
    for mesh, batch in parts:
        per_mesh[mesh] += batch
    return tuple(sorted(per_mesh.items()))


def predict_cell(cell: Cell, rates: Rates, device: str = "cpu", *,
                 executed: Mapping[int, int] | None = None) -> float | None:
    """Predicted training seconds of one cell under its `config` (None without rates for its arch on
    `device`). `executed` maps a phase's level to the iterations it ran (early stopping); default: planned."""
    from ..strategies import build_strategy
    from .scaling import light_config

    arch, task, strategy = cell.arch, cell.task, cell.strategy
    cfg = light_config(dict(cell.config))
    threads = int(cfg.get("threads") or 0) or None
    fit = rates.fit_for(arch, device, threads)
    if fit is None:
        return None
    side = input_side(task, cfg)
    total = 0.0
    for phase in build_strategy(strategy, cfg).phases():
        iterations = phase.iterations if executed is None else executed.get(phase.level, 0)
        if iterations:
            total += iterations * rates.step_seconds(arch, device, phase_calls(phase, side, fit.batched), threads)
    return total


def predict_profile(cells: Iterable[Any], rates: Rates, device: str = "cpu") -> dict[str, Any]:
    """Predicted training seconds of every cell (objects with table, task, arch, strategy, config:
    `mfcbench.core.cell.Cell`s), summed per table and in total, one cell after another.
    Cells whose arch has no rates on `device` are counted under `missing` and left out of the sums."""
    tables: dict[str, dict[str, Any]] = {}
    cache: dict[tuple, float | None] = {}
    for cell in cells:
        entry = tables.setdefault(cell.table, {"cells": 0, "seconds": 0.0, "missing": [], "early_stop": False})
        entry["cells"] += 1
        entry["early_stop"] |= bool(cell.config.get("early_stop"))
        key = (cell.arch, cell.task, cell.strategy, json.dumps(dict(cell.config), sort_keys=True, default=str))
        if key not in cache:
            cache[key] = predict_cell(cell, rates, device)
        if cache[key] is None:
            entry["missing"].append(cell.arch)
        else:
            entry["seconds"] += cache[key]
    missing = sorted({arch for entry in tables.values() for arch in entry["missing"]})
    return {"device": device, "tables": tables, "total_seconds": sum(e["seconds"] for e in tables.values()),
            "cells": sum(e["cells"] for e in tables.values()),
            "missing_cells": sum(len(e["missing"]) for e in tables.values()), "missing_archs": missing}


def human_seconds(seconds: float) -> str:
    """'42 s', '12.5 min', '3.1 h' or '2.4 days'."""
    if seconds < 10:
        return f"{seconds:.1f} s"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.1f} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def format_prediction(prediction: Mapping[str, Any], jobs: int = 1, label: str = "") -> str:
    """The prediction as lines: one per table, the total, and the total over `jobs` cells at once."""
    device = prediction["device"]
    lines = [f"predicted training time on {label or device}, optimizer steps only (validation, checkpoints and "
             f"job start-up come on top; `measure cost-check` gives their share on a finished run):"]
    for table, entry in prediction["tables"].items():
        note = f"  (no rates for {', '.join(sorted(set(entry['missing'])))})" if entry["missing"] else ""
        bound = "up to " if entry.get("early_stop") else ""
        time = "n/a" if len(entry["missing"]) == entry["cells"] else bound + human_seconds(entry["seconds"])
        lines.append(f"  {table:<10} {entry['cells']:>5} cells  {time:>15}{note}")
    total = prediction["total_seconds"]
    lines.append(f"  {'total':<10} {prediction['cells']:>5} cells  {human_seconds(total):>15} one after another"
                 + (f"; {human_seconds(total / jobs)} with {jobs} cells at once" if jobs > 1 else ""))
    if prediction["missing_cells"]:
        lines.append(f"  not counted: {prediction['missing_cells']} cells of {', '.join(prediction['missing_archs'])} "
                     f"(measure them: `python -m mfcbench measure scaling --config <profile> --tables all --sizes 16,32`)")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# checking predictions against a run
def executed_iterations(curve_path: Path) -> dict[int, int]:
    """Iterations each level ran, counted from a cell's curve.csv (one row per optimizer step)."""
    counts: dict[int, int] = defaultdict(int)
    with open(curve_path, newline="") as handle:
        for row in csv.DictReader(handle):
            counts[int(float(row["level"]))] += 1
    return dict(counts)


def check_cell(metrics_path: Path, rates: Rates, root: Path) -> dict[str, Any] | None:
    """One cost-check row: a finished cell's recorded train_seconds beside the prediction."""
    record = json.loads(metrics_path.read_text())
    if record.get("status") != "ok" or record.get("train_seconds") is None:
        return None
    cell, manifest = record.get("cell", {}), record.get("manifest", {})
    device = str(manifest.get("device") or "cpu").split(":")[0]
    config = dict(record["config"], threads=manifest.get("threads") or record["config"].get("threads"))
    curve = metrics_path.parent / CURVE_FILE
    executed = executed_iterations(curve) if curve.is_file() else None
    predicted = predict_cell(Cell(**cell, config=config), rates, device, executed=executed)
    measured = float(record["train_seconds"])
    error = (predicted - measured) / measured if predicted is not None and measured > 0 else None
    return {"cell": str(metrics_path.parent.relative_to(root)), "arch": cell["arch"], "task": cell["task"],
            "strategy": cell["strategy"], "device": device, "iterations": record.get("iterations"),
            "train_seconds": measured, "loop_seconds": record.get("seconds"), "predicted_seconds": predicted,
            "relative_error": error,
            "status": "ok" if predicted is not None else f"no rates for {cell['arch']} on {device}"}


def cost_check(results_dir: str | Path, rates: Rates) -> list[dict[str, Any]]:
    """A row per finished cell under `results_dir` (every metrics.json below it)."""
    root = Path(results_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"results folder {root} does not exist; run a profile first (snakemake --cores all)")
    rows = [check_cell(path, rates, root) for path in sorted(root.rglob(METRICS_FILE))]
    return [row for row in rows if row is not None]


def summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Median absolute relative error over the cells that have a prediction, and how many had none."""
    errors = [abs(r["relative_error"]) for r in rows if r["relative_error"] is not None]
    loops = [(r["loop_seconds"], r["train_seconds"]) for r in rows if r.get("loop_seconds")]
    loop_total = sum(loop for loop, _ in loops)
    return {"outside_training_share": (loop_total - sum(t for _, t in loops)) / loop_total if loop_total else None,
            "cells": len(rows), "predicted": len(errors), "unpredicted": len(rows) - len(errors),
            "median_abs_relative_error": statistics.median(errors) if errors else None,
            "max_abs_relative_error": max(errors) if errors else None,
            "predicted_seconds": sum(r["predicted_seconds"] for r in rows if r["predicted_seconds"] is not None),
            "train_seconds": sum(r["train_seconds"] for r in rows if r["predicted_seconds"] is not None)}
