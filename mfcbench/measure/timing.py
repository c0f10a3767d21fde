"""Wall-clock timing with torch.utils.benchmark, plus the environment every timing row records.

Needs only torch (the benchmark runs on machines with nothing else). CPU timings use a fixed
thread count, a warm-up, and torch.utils.benchmark's blocked_autorange (median and interquartile
range over blocks). CUDA timings use CUDA events around each call after a synchronised warm-up.
A device that is absent yields a row that says so; a CPU number never stands in for a GPU one.
`measure_each` times every call on its own (a training step of 10 ms to seconds: the median of
`repeats` calls, within a time cap), synchronising CUDA around each call, as a training loop's
clock sees it.
"""

from __future__ import annotations

import contextlib
import os
import platform
import statistics
import time
from typing import Callable, Iterator

import torch

__all__ = ["NO_CUDA", "device_available", "environment", "measure", "measure_each", "cpu_model", "not_measured"]

NO_CUDA = "not measured: no CUDA device"


def cpu_model() -> str:
    """The CPU's marketing name from /proc/cpuinfo (Linux), else platform's best guess."""
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_capability() -> str:
    """The instruction set torch's CPU kernels use here (e.g. AVX512, AVX2), or "" if torch cannot say."""
    try:
        return str(torch.backends.cpu.get_cpu_capability())
    except (AttributeError, RuntimeError):
        return ""


def device_available(device: str) -> bool:
    if device == "cpu":
        return True
    if device == "cuda":
        return torch.cuda.is_available()
    raise ValueError(f"unknown device {device!r}; valid choices: cpu, cuda")


def environment(device: str = "cpu", threads: int | None = None) -> dict[str, object]:
    """What a timing depends on: device, threads, versions, allocator settings."""
    if device == "cuda" and torch.cuda.is_available():
        description = torch.cuda.get_device_name(0)
    elif device == "cuda":
        description = "none"
    else:
        description = cpu_model()
    malloc = {k: v for k, v in sorted(os.environ.items()) if k.startswith(("MALLOC_", "PYTORCH_CUDA_ALLOC"))}
    return {
        "device": device,
        "device_description": description,
        "cpu_capability": cpu_capability(),
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "threads": threads if threads is not None else torch.get_num_threads(),
        "torch_version": torch.__version__,
        "cuda_version": torch.version.cuda or "",
        "allocator_env": ";".join(f"{k}={v}" for k, v in malloc.items()) or "default",
    }


def not_measured(device: str) -> dict[str, object]:
    """Result fields for a device that is not there."""
    return {"median_ms": "", "iqr_ms": "", "runs": 0, "status": NO_CUDA if device == "cuda" else "not measured"}


def measure(
    fn: Callable[[], object],
    *,
    device: str = "cpu",
    threads: int = 2,
    min_run_time: float = 1.0,
    warmup: int = 2,
    cuda_repeats: int = 50,
) -> dict[str, object]:
    """Time fn() and return {median_ms, iqr_ms, runs, status}; status is "ok" or why not measured."""
    if not device_available(device):
        return not_measured(device)
    if device == "cuda":
        return _measure_cuda(fn, warmup=warmup, repeats=cuda_repeats)
    return _measure_cpu(fn, threads=threads, min_run_time=min_run_time, warmup=warmup)


def _measure_cpu(fn, *, threads: int, min_run_time: float, warmup: int) -> dict[str, object]:
    from torch.utils import benchmark

    with _warmed_up(fn, threads=threads, warmup=warmup):
        timer = benchmark.Timer(stmt="fn()", globals={"fn": fn}, num_threads=threads)
        result = timer.blocked_autorange(min_run_time=min_run_time)
    times = result.times
    return {
        "median_ms": result.median * 1e3,
        "iqr_ms": result.iqr * 1e3,
        "runs": len(times) * result.number_per_run,
        "status": "ok",
    }


def _measure_cuda(fn, *, warmup: int, repeats: int) -> dict[str, object]:
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(repeats):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end))
    return _summary(times, to_ms=1)


def measure_each(
    fn: Callable[[], object],
    *,
    device: str = "cpu",
    threads: int = 2,
    repeats: int = 10,
    warmup: int = 1,
    max_seconds: float = 10.0,
    min_repeats: int = 3,
) -> dict[str, object]:
    """Time each of up to `repeats` calls of fn() on its own (perf_counter; CUDA synchronised before
    and after each call) and return {median_ms, iqr_ms, runs, status}. Stops early once the timed
    calls took `max_seconds`, after at least `min_repeats` of them; the IQR of fewer than 2 runs is 0."""
    if not device_available(device):
        return not_measured(device)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    with _warmed_up(fn, threads=threads, warmup=warmup):
        sync()
        times: list[float] = []
        while len(times) < repeats and (len(times) < min_repeats or sum(times) < max_seconds):
            started = time.perf_counter()
            fn()
            sync()
            times.append(time.perf_counter() - started)
    return _summary(times, to_ms=1e3)


@contextlib.contextmanager
def _warmed_up(fn: Callable[[], object], *, threads: int, warmup: int) -> Iterator[None]:
    """Run the block with torch on `threads` threads after `warmup` untimed calls of fn(); the
    previous thread count comes back afterwards, whatever happens."""
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        for _ in range(warmup):
            fn()
        yield
    finally:
        torch.set_num_threads(previous)


def _summary(times: list[float], *, to_ms: float) -> dict[str, object]:
    """{median_ms, iqr_ms, runs, status} of per-call times (`to_ms`: their unit in ms); the IQR of
    one run is 0."""
    quartiles = statistics.quantiles(times, n=4) if len(times) > 1 else [times[0]] * 3
    return {"median_ms": statistics.median(times) * to_ms, "iqr_ms": (quartiles[2] - quartiles[0]) * to_ms,
            "runs": len(times), "status": "ok"}
