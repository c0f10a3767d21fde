"""The performance benchmark behind `python -m mfcbench bench [--device cpu|cuda] [--quick] [--out reports/bench.csv]`.

The performance benchmark (a benchmark, not a test): each comparison is measured side by side in
one run, and every row carries the machine's description. Needs only torch and this package (no
fvcore, pandas or snakemake on this path; CSV via the csv module).

glibc's malloc returns large blocks to the OS after every free, so big-tensor timings on CPU are
dominated by page faults (up to 3x measured on the 2-core CI machine); every mfcbench program
starts with MALLOC_MMAP_THRESHOLD_ / MALLOC_TRIM_THRESHOLD_ set (mfcbench.cli) and the rows record them.
"""

from __future__ import annotations

import math
import os
import statistics
import sys
import tempfile
from typing import Callable

import torch
from torch import nn

from ..layers.mfc import MeshFreeConv2d, mesh_free_symbol, wavenumbers
from . import suites
from .timing import device_available, environment, measure, not_measured


class Bench:
    """Collects rows: one per measured variant, plus ratios against targets."""

    def __init__(self, device: str, threads: int, quick: bool):
        self.device, self.threads, self.quick = device, threads, quick
        self.env = environment(device, threads)
        self.rows: list[dict] = []

    def time(self, fn: Callable[[], object], min_run_time: float | None = None) -> dict:
        return measure(fn, device=self.device, threads=self.threads,
                       min_run_time=min_run_time or (0.2 if self.quick else 1.5),
                       cuda_repeats=20 if self.quick else 100)

    def add(self, comparison: str, variant: str, result: dict | None = None, **fields) -> dict:
        row = {"comparison": comparison, "variant": variant, "median_ms": "", "iqr_ms": "", "runs": "",
               "status": "ok", "value": "", "target": "", "met": "", "notes": ""}
        row.update(result or {})
        row.update(fields)
        row.update(self.env)
        self.rows.append(row)
        print(f"[bench] {comparison:<18} {variant:<34} {_fmt(row)}", file=sys.stderr, flush=True)
        return row


def _fmt(row: dict) -> str:
    if row.get("status") != "ok":
        return str(row["status"])
    if row.get("median_ms") != "":
        return f"{row['median_ms']:.2f} ms (iqr {row['iqr_ms']:.2f})"
    return f"{row['value']} (target {row['target']}, met={row['met']}) {row['notes']}"


def _ms(row: dict) -> float:
    return float(row["median_ms"])


def _fwd_bwd(layer: nn.Module, x: torch.Tensor) -> Callable[[], None]:
    x = x.detach().requires_grad_(True)

    def run():
        layer.zero_grad(set_to_none=True)
        x.grad = None
        layer(x).sum().backward()

    return run


def _fwd(layer: nn.Module, x: torch.Tensor) -> Callable[[], None]:
    def run():
        with torch.no_grad():
            layer(x)

    return run


# ---------------------------------------------------------------------------------------------
def bench_mfc_vs_conv(b: Bench) -> None:
    """MFC pointwise vs Conv2d 3x3, forward+backward, batch 8, 32->32, 256^2 (quick: 64^2)."""
    batch, channels, n = (8, 32, 64) if b.quick else (8, 32, 256)
    shape = f"B{batch} C{channels} {n}^2"
    x = torch.randn(batch, channels, n, n, device=b.device)
    conv = nn.Conv2d(channels, channels, 3, padding=1).to(b.device)
    mfc = MeshFreeConv2d(channels, channels, mixing="pointwise").to(b.device)
    c = b.add("mfc_vs_conv3x3", f"conv3x3 fwd+bwd {shape}", b.time(_fwd_bwd(conv, x)))
    m = b.add("mfc_vs_conv3x3", f"mfc_pointwise fwd+bwd {shape}", b.time(_fwd_bwd(mfc, x)))
    b.add("mfc_vs_conv3x3", f"mfc_pointwise fwd {shape}", b.time(_fwd(mfc, x)))
    b.add("mfc_vs_conv3x3", f"conv3x3 fwd {shape}", b.time(_fwd(conv, x)))
    parts = _mfc_breakdown(b, mfc, x, shape)
    if c["status"] == m["status"] == "ok":
        ratio = _ms(m) / _ms(c)
        total = sum(parts.values()) or 1.0
        share = ", ".join(f"{k} {100 * v / total:.0f}%" for k, v in parts.items())
        b.add("mfc_vs_conv3x3", "ratio mfc/conv3x3 (fwd+bwd)", value=round(ratio, 3), target="<= 1.0",
              met=ratio <= 1.0, notes=f"forward shares: {share}")


def bench_packed_fft(b: Bench) -> None:
    """Pointwise MFC fwd+bwd: two real planes packed into one complex plane (fft2/ifft2) vs rfft2/irfft2,
    interleaved in one process; the target is the packed path at <= 0.90x the rfft path."""
    batch, channels, n = (8, 32, 64) if b.quick else (8, 32, 256)
    shape = f"B{batch} C{channels} {n}^2"
    x = torch.randn(batch, channels, n, n, device=b.device)
    times: dict[str, list[float]] = {"rfft": [], "packed": []}
    layers = {path: MeshFreeConv2d(channels, channels, mixing="pointwise", fft_path=path).to(b.device)
              for path in times}
    layers["packed"].load_state_dict(layers["rfft"].state_dict())
    for _ in range(2 if b.quick else 3):  # alternate, so load on the machine hits both alike
        for path, layer in layers.items():
            row = b.time(_fwd_bwd(layer, x))
            if row.get("status", "ok") == "ok":
                times[path].append(float(row["median_ms"]))
    for path, values in times.items():
        b.add("packed_fft", f"mfc_pointwise fwd+bwd {path} {shape}",
              {"median_ms": round(sorted(values)[len(values) // 2], 3), "iqr_ms": round(max(values) - min(values), 3),
               "runs": len(values)} if values else {"status": "not measured"})
    if times["rfft"] and times["packed"]:
        ratio = min(times["packed"]) / min(times["rfft"])
        b.add("packed_fft", "ratio packed/rfft (fwd+bwd)", value=round(ratio, 3), target="<= 0.90",
              met=ratio <= 0.90, notes="best of the alternated runs of each path")


def _mfc_breakdown(b: Bench, mfc: MeshFreeConv2d, x: torch.Tensor, shape: str) -> dict[str, float]:
    """Time each stage of the MFC forward alone, so a missed target says what bounds it."""
    n = x.shape[-1]
    with torch.no_grad():
        mixed = mfc.mix(x)
        ky, kx = wavenumbers(n, n, mfc.h, device=x.device)
        symbol = mesh_free_symbol(mfc.tau(), mfc.alpha(), mfc.gamma, ky, kx)
        spectrum = torch.fft.rfft2(mixed)
        product = spectrum * symbol
    stages = {
        "1x1 conv": lambda: mfc.mix(x),
        "rfft2": lambda: torch.fft.rfft2(mixed),
        "symbol": lambda: mesh_free_symbol(mfc.tau(), mfc.alpha(), mfc.gamma, ky, kx),
        "multiply": lambda: spectrum * symbol,
        "irfft2": lambda: torch.fft.irfft2(product, s=(n, n)),
    }
    out = {}
    for name, fn in stages.items():
        row = b.add("mfc_breakdown", f"{name} fwd {shape}", b.time(_no_grad(fn), min_run_time=0.1 if b.quick else 0.5))
        if row["status"] == "ok":
            out[name] = _ms(row)
    return out


def _no_grad(fn):
    def run():
        with torch.no_grad():
            fn()

    return run


def bench_traffic_floor(b: Bench) -> None:
    """MFC forward vs its memory-traffic floor (bytes it must move / copy bandwidth, same run).

    Bytes the op-by-op algorithm must move at least once: read x, write the 1x1-conv output,
    read it for rfft2, write the half spectrum, read it back (symbol multiply fused into the
    inverse), write the output: 4 real-sized passes + 2 complex half-spectrum passes.
    """
    batch, channels, n = (8, 32, 64) if b.quick else (8, 32, 256)
    x = torch.randn(batch, channels, n, n, device=b.device)
    mfc = MeshFreeConv2d(channels, channels, mixing="pointwise").to(b.device)
    real_bytes = x.numel() * 4
    spectrum_bytes = batch * channels * n * (n // 2 + 1) * 8
    must_move = 4 * real_bytes + 2 * spectrum_bytes
    src = torch.empty(max(must_move // 8, 2**20), dtype=torch.float32, device=b.device).uniform_()
    dst = torch.empty_like(src)
    copy = b.add("traffic_floor", f"copy {src.numel() * 4 / 2**20:.0f} MiB", b.time(lambda: dst.copy_(src)))
    fwd = b.add("traffic_floor", f"mfc_pointwise fwd B{batch} C{channels} {n}^2", b.time(_fwd(mfc, x)))
    if copy["status"] == fwd["status"] == "ok":
        bandwidth = 2 * src.numel() * 4 / (_ms(copy) / 1e3)  # bytes read + written per second
        floor_ms = must_move / bandwidth * 1e3
        ratio = _ms(fwd) / floor_ms
        b.add("traffic_floor", "ratio mfc fwd / traffic floor", value=round(ratio, 3), target="<= 2.5",
              met=ratio <= 2.5, notes=f"floor {floor_ms:.2f} ms = {must_move / 2**20:.0f} MiB at "
                                      f"{bandwidth / 1e9:.1f} GB/s copy bandwidth")


class _CountFFT(torch.overrides.TorchFunctionMode):
    """Counts torch.fft calls and the channels they transform (to show there is no FFT per pair)."""

    def __init__(self):
        super().__init__()
        self.calls: list[tuple[str, tuple]] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        name = getattr(func, "__name__", "")
        if name in ("fft_rfft2", "fft_irfft2", "rfft2", "irfft2", "fft2", "ifft2"):
            self.calls.append((name, tuple(args[0].shape)))
        return func(*args, **(kwargs or {}))


def bench_full_mixing(b: Bench) -> None:
    """mixing="full" at two channel counts: measured time ratio beside the cost model's."""
    batch, n = (2, 64) if b.quick else (8, 128)
    results = {}
    for channels in ((8, 16) if b.quick else (16, 32)):
        layer = MeshFreeConv2d(channels, channels, mixing="full").to(b.device)
        x = torch.randn(batch, channels, n, n, device=b.device)
        with _CountFFT() as counter, torch.no_grad():
            layer(x)
        row = b.add("full_mixing", f"mfc_full fwd B{batch} C{channels} {n}^2", b.time(_fwd(layer, x)),
                    notes=f"fft calls: {counter.calls}")
        model = batch * 2 * channels * n * n * math.log2(n * n) + channels * channels * n * n * (batch + 1)
        results[channels] = (row, model, len(counter.calls))
    (r1, m1, f1), (r2, m2, f2) = results.values()
    if r1["status"] == r2["status"] == "ok":
        measured = _ms(r2) / _ms(r1)
        predicted = m2 / m1
        b.add("full_mixing", "time ratio 2x channels", value=round(measured, 3),
              target=f"~{predicted:.2f} (cost model (Cin+Cout) n log n + Cin Cout n)",
              met=f1 == f2 == 2 and measured <= 1.5 * predicted,
              notes=f"2 FFT calls per forward at both widths: {f1 == f2 == 2}; 4x pairs would give <= 4.0, "
                    "an FFT per pair 4.0 on the FFT term as well")


def bench_msgd_vs_sgd(b: Bench) -> None:
    """Table 15: one Multiscale-SGD step vs one SGD step (15 images) at 256^2 (quick: 64^2).

    MFC-ResNet is measured as Table 13 builds it (mixing "full", 7 parameters per channel pair)
    and with mixing "pointwise": full mixing builds Cout*Cin symbol entries per frequency on every
    model call whatever the batch, a cost that does not shrink with the per-level batch.
    """
    from ..models import model_names

    size = 64 if b.quick else 256
    registered = model_names()
    targets = {"resnet": 6.0, "mfc_resnet": 2.0, "mfc_resnet mixing=pointwise": 6.0}  # issue targets, #WU 6.49
    for name, options in (("resnet", {}), ("mfc_resnet", {}), ("mfc_resnet", {"mixing": "pointwise"})):
        label_name = name + "".join(f" {k}={v}" for k, v in options.items())
        if name not in registered:
            b.add("msgd_vs_sgd", label_name, status=f"not measured: model {name!r} is not registered")
            continue
        if not device_available(b.device):
            b.add("msgd_vs_sgd", label_name, not_measured(b.device))
            continue
        rows, cache_note = {}, ""
        for strategy in ("sgd", "msgd"):
            model = suites.step_model(name, b.device, **options)  # as a denoising cell builds it
            cache_note = _symbol_cache_note(model, size)
            step = suites.training_step(model, strategy, size, b.device)  # the trained step: Strategy.loss
            label = f"{suites.SGD_IMAGES}@{size}" if strategy == "sgd" else suites.describe_plan(size)
            rows[strategy] = b.add("msgd_vs_sgd", f"{label_name} {strategy} step [{label}]",
                                   b.time(step, min_run_time=0.5 if b.quick else 3.0))
        if rows["sgd"]["status"] == rows["msgd"]["status"] == "ok":
            ratio = _ms(rows["sgd"]) / _ms(rows["msgd"])
            goal = targets[label_name]
            b.add("msgd_vs_sgd", f"{label_name} ratio sgd/msgd", value=round(ratio, 3),
                  target=f">= {goal} (work units 6.49)", met=ratio >= goal,
                  notes="msgd runs 4 model calls per step (one per mesh); full mixing builds its symbol once per "
                        "step and slices it for the coarser meshes (layers.symbol_cache)" + cache_note)


def _symbol_cache_note(model: nn.Module, size: int) -> str:
    """How many full-mixing layers' step tables (finest mesh plus its slices) fit symbol_cache's default
    budget: a layer that does not fit rebuilds its symbol on every call, forward and backward."""
    import inspect

    from ..layers.mfc import symbol_cache

    layers = [m for m in model.modules() if isinstance(m, MeshFreeConv2d) and m.mixing == "full"]
    if not layers:
        return ""
    budget = inspect.signature(symbol_cache.__wrapped__).parameters["max_bytes"].default
    used, fitting = 0, 0
    for layer in layers:
        pairs = layer.in_channels * layer.out_channels
        need = sum((size >> j) * ((size >> j) // 2 + 1) for j in range(suites.MSGD_LEVELS)) * pairs * 8
        if used + need <= budget:
            used, fitting = used + need, fitting + 1
    return (f"; symbol tables: {fitting} of {len(layers)} full-mixing layers fit the {budget / 2**30:.0f} GiB "
            f"cache budget at {size}^2 ({used / 2**30:.2f} GiB)")


# issue 18's targets for the training-time ratios of Table 4 (#WU ratios 6.49 and 66.8 at N0 = 2, 4 levels)
TABLE4_TARGETS = {"msgd": {"resnet": 3.5, "mfc_resnet": 3.5, "unet": 2.0, "mfc_unet": 2.0}, "fmsgd": 15.0}
TABLE4_SOURCES = ("results/converged/table4.csv", "results/default/table4.csv")


def _table4_seconds(table: str) -> dict[str, dict[str, list[float]]]:
    """arch -> strategy -> training seconds of the finished cells of the table's own grid (no variant)."""
    import csv as _csv

    with open(table) as handle:
        rows = [r for r in _csv.DictReader(handle) if r.get("status") == "ok" and r.get("train_seconds")
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


def bench_msgd_calls(b: Bench) -> None:
    """Model calls in one Multiscale-SGD step of 4 levels (the trained step, `Strategy.loss`): one per mesh."""
    model = suites.step_model("resnet", b.device)
    calls = []
    model.register_forward_hook(lambda module, args, out: calls.append(tuple(args[0].shape)))
    suites.training_step(model, "msgd", 32, b.device)()
    b.add("msgd_calls", f"resnet msgd step, {suites.MSGD_LEVELS} levels", value=len(calls),
          target=f"{suites.MSGD_LEVELS} (one per mesh)", met=len(calls) == suites.MSGD_LEVELS,
          notes="input shapes " + ", ".join("x".join(map(str, shape)) for shape in calls))


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
                                  val_images=val, progress=False, log=lambda msg: None)
                curve = _read_curve(os.path.join(tmp, strategy, "curve.csv"))
                records[strategy] = (record, curve)
    except Exception as exc:  # noqa: BLE001 - the bench reports what stopped a comparison and goes on
        b.add("fmsgd_vs_sgd", "wall-clock to SGD's final val", status=f"skipped: {type(exc).__name__}: {exc}")
        return
    sgd, sgd_curve = records["sgd"]
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
    import csv

    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


# The training cells run first: on CPU their peak memory is the process's max RSS so far.
COMPARISONS = {
    "fmsgd_vs_sgd": bench_fmsgd_vs_sgd,
    "mfc_vs_conv": bench_mfc_vs_conv,
    "traffic_floor": bench_traffic_floor,
    "full_mixing": bench_full_mixing,
    "msgd_vs_sgd": bench_msgd_vs_sgd,
    "packed_fft": bench_packed_fft,
    "table4_train_time": bench_table4_train_time,
    "msgd_calls": bench_msgd_calls,
}
