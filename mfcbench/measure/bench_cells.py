"""The benchmark's comparisons of whole training cells: Table 4's training-time ratios read from a
pipeline run's table, and Full-Multiscale-SGD's wall-clock to SGD's final validation value on two
cells trained here (with the peak memory of a training cell).
"""

from __future__ import annotations

import csv
import os
import statistics
import tempfile

from ..core.cell import CellFiles
from .bench_rows import Bench

# issue 18's targets for the training-time ratios of Table 4 (#WU ratios 6.49 and 66.8 at N0 = 2, 4 levels)
TABLE4_TARGETS = {"msgd": {"resnet": 3.5, "mfc_resnet": 3.5, "unet": 2.0, "mfc_unet": 2.0}, "fmsgd": 15.0}
TABLE4_SOURCES = ("results/converged/table4.csv", "results/default/table4.csv")


def _table4_seconds(table: str) -> dict[str, dict[str, list[float]]]:
    """arch -> strategy -> training seconds of the finished cells of the table's own grid (no variant)."""
    with open(table) as handle:
        rows = [r for r in csv.DictReader(handle) if r.get("status") == "ok" and r.get("train_seconds")
                and r.get("variant", "") in ("", "base")]
    by: dict[str, dict[str, list[float]]] = {}
    for r in rows:
        by.setdefault(r["arch"], {}).setdefault(r["strategy"], []).append(float(r["train_seconds"]))
    return by


def bench_table4_train_time(b: Bench, table: str | None = None) -> None:
    """Table 4's cells (the converged profile's when it ran, else the default's): SGD / Multiscale-SGD and
    SGD / Full-Multiscale training seconds (optimizer steps only; mean over seeds) per network, against
    issue 18's targets. Run `snakemake --cores all [--configfile workflow/config/converged.yaml]` first."""
    table = table or next((t for t in TABLE4_SOURCES if os.path.isfile(t)), TABLE4_SOURCES[-1])
    if not os.path.isfile(table):
        b.add("table4_train_time", "all networks", status=f"not measured: {table} missing (run snakemake --cores all)")
        return
    for arch, strategies in _table4_seconds(table).items():
        for other in ("msgd", "fmsgd"):
            if "sgd" not in strategies or other not in strategies:
                continue
            goal = TABLE4_TARGETS["msgd"].get(arch, 2.0) if other == "msgd" else TABLE4_TARGETS["fmsgd"]
            ratio = statistics.fmean(strategies["sgd"]) / statistics.fmean(strategies[other])
            b.add("table4_train_time", f"{arch} ratio sgd/{other} training seconds", value=round(ratio, 3),
                  target=f">= {goal} (#WU {'6.49' if other == 'msgd' else '66.8'})", met=ratio >= goal,
                  notes=f"from {table}; mean of {len(strategies['sgd'])} / {len(strategies[other])} seeds")


def bench_fmsgd_vs_sgd(b: Bench) -> None:
    """Wall-clock for Full-Multiscale-SGD to reach SGD's final validation metric on the embedded
    denoising cell, and the peak memory of one training cell."""
    try:
        from ..data import load_split
        from ..train.runner import run_cell
    except ImportError as exc:
        b.add("fmsgd_vs_sgd", "wall-clock to SGD's final val", status=f"skipped: cell runner absent ({exc})")
        return
    size, dataset, arch = 32, "fields", "resnet"
    iterations = [4, 4, 4, 4] if b.quick else [150, 150, 150, 150]
    overrides = [f"image_size={size}", f"iterations={iterations}", "model.width=0.25", "val_every=2" if b.quick else "val_every=25",
                 "val_size=16" if b.quick else "val_size=128", f"threads={b.threads}", "checkpoint_every=100000"]
    records = {}
    try:
        train = load_split(dataset, "train", size)
        val = load_split(dataset, "val", size)
        with tempfile.TemporaryDirectory() as tmp:
            for strategy in ("sgd", "fmsgd"):
                record = run_cell(task="denoise", arch=arch, strategy=strategy, out_dir=os.path.join(tmp, strategy),
                                  dataset=dataset, device=b.device, overrides=overrides, train_images=train,
                                  val_images=val, progress=False, log=lambda _msg: None)
                curve = _read_curve(CellFiles(os.path.join(tmp, strategy)).curve)
                records[strategy] = (record, curve)
    except Exception as exc:  # noqa: BLE001 - the bench reports what stopped a comparison and goes on
        b.add("fmsgd_vs_sgd", "wall-clock to SGD's final val", status=f"skipped: {type(exc).__name__}: {exc}")
        return
    sgd = records["sgd"][0]
    fm, fm_curve = records["fmsgd"]
    headline = sgd["headline_metric"]
    target = sgd["metrics"][headline]
    reached = first_reach(fm_curve, target)
    cell = f"denoise/{dataset}/{arch} {size}^2 iterations {iterations}"
    b.add("fmsgd_vs_sgd", f"sgd cell {cell}", value=round(sgd["seconds"], 3),
          notes=f"final {headline} {target:.5g}")
    b.add("fmsgd_vs_sgd", f"fmsgd cell {cell}", value=round(fm["seconds"], 3),
          notes=f"final {headline} {fm['metrics'][headline]:.5g}")
    if reached is None:
        final = fm["metrics"][headline]
        b.add("fmsgd_vs_sgd", "time ratio sgd/fmsgd to SGD's final val", value="", target="> 1.0", met=False,
              notes=f"fmsgd never reached SGD's final {headline} {target:.5g}: it ended at {final:.5g} "
                    f"({100 * (final / target - 1):+.1f}%) after {fm['seconds'] / sgd['seconds']:.2f}x SGD's wall-clock")
    else:
        ratio = sgd["seconds"] / max(reached, 1e-9)
        b.add("fmsgd_vs_sgd", "time ratio sgd/fmsgd to SGD's final val", value=round(ratio, 3), target="> 1.0",
              met=ratio > 1.0, notes=f"fmsgd reached {target:.5g} after {reached:.2f} s")
    b.add("peak_memory", f"training cell (sgd) {cell}", value=sgd.get("peak_memory_mb"),
          notes="MB; CUDA: max_memory_allocated; CPU: the bench process's max RSS after the cell "
                "(the cells run first, so it holds no larger earlier row)")


def first_reach(curve: list[dict], target: float) -> float | None:
    """Seconds at the first finest-mesh validation at or below `target` (lower is better), else None: a
    Full-Multiscale level validates on its own, coarser mesh, whose numbers are not the finest mesh's."""
    return next((float(r["seconds"]) for r in curve if r["val_metric"] not in ("", None)
                 and int(float(r.get("level") or 0)) == 0 and float(r["val_metric"]) <= target), None)


def _read_curve(path: str) -> list[dict]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))
