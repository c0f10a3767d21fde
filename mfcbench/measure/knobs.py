"""The speed knobs of issue 18 item 2, decided by measurement on this machine: `torch.compile`, the
schedule's first batch N0, and threads per job versus jobs in parallel.

Each knob times the trained step the scaling study times (`scaling.make_step`: the runner's
`optimizer_step` on a `FixedSampler`) for the settings of a profile, at one size. Rows, tidy, one per
measurement (`knob`, `arch`, `size`, `strategy`, `value`, `step_seconds`, `step_iqr_seconds`, ...):

- knob "compile", value "eager" or "compiled": the step of SGD and Multiscale-SGD with the model as
  built and wrapped in `torch.compile`. `compile_seconds` = the warm-up steps' time (the first call of
  every mesh compiles) minus as many steady steps. A compile that fails is a row with status "failed"
  and its error; the cell then runs eager, as the runner does (nothing is compiled in training).
- knob "n0", value N0: Multiscale-SGD's step with the first batch N0 (each level's batch grows by the
  profile's growth), `seconds_per_wu` = step time / closed-form #WU per step: the clock's price of one
  finest-mesh image. N0 is the paper's parameter, so this prices it; it does not choose it.
- knob "threads", value "1 job x 2 threads" or "2 jobs x 1 thread": `steps_per_second` of the machine
  for the SGD step: one process with two threads, against two processes with one thread each timed
  at the same moment (what `snakemake --cores 2` does with `threads: 1` cells).
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import sys
import time
from typing import Any, Callable, Iterable

import torch

from .scaling import Setting, build_setting_model, light_config, make_step, step_phases
from .timing import environment, measure_each

KNOBS = ("compile", "n0", "threads")
N0_VALUES = (2, 4, 8)
WARMUP = 3  # steps before timing a compiled model: every mesh of a Multiscale-SGD step compiles once


def _row(knob: str, setting: Setting, size: int, strategy: str, value: Any) -> dict[str, Any]:
    return {"study": "knobs", "knob": knob, "table": setting.table, "task": setting.task, "arch": setting.arch,
            "size": size, "strategy": strategy, "value": str(value), "step_seconds": "", "step_iqr_seconds": "",
            "runs": 0, "compile_seconds": "", "wu_per_step": "", "seconds_per_wu": "", "steps_per_second": "",
            "status": "ok", "error": ""}


def _first_phase(setting: Setting, strategy: str, size: int, **override):
    cfg = light_config(dict(setting.configs[strategy], image_size=size, **override))
    return cfg, step_phases(strategy, cfg)[0][1]


def _timed(row: dict[str, Any], step: Callable[[], object], threads: int, repeats: int, max_seconds: float,
           warmup: int = 1) -> dict[str, Any]:
    result = measure_each(step, threads=threads, repeats=repeats, warmup=warmup, max_seconds=max_seconds)
    row.update(step_seconds=result["median_ms"] / 1e3, step_iqr_seconds=result["iqr_ms"] / 1e3,
               runs=result["runs"], status=result["status"])
    return row


def compile_rows(setting: Setting, size: int, threads: int, repeats: int, max_seconds: float) -> list[dict]:
    """Eager and compiled step of SGD and Multiscale-SGD (see the module docstring)."""
    rows = []
    for strategy in ("sgd", "msgd"):
        if strategy not in setting.configs:
            continue
        _, phase = _first_phase(setting, strategy, size)
        eager_model = build_setting_model(setting, torch.device("cpu"))
        eager = _timed(_row("compile", setting, size, strategy, "eager"),
                       make_step(setting, strategy, phase, size, torch.device("cpu")), threads, repeats, max_seconds)
        rows.append(eager)
        row = _row("compile", setting, size, strategy, "compiled")
        try:
            setting.model = torch.compile(eager_model)
            step = make_step(setting, strategy, phase, size, torch.device("cpu"))
            torch.set_num_threads(threads)
            started = time.perf_counter()
            for _ in range(WARMUP):
                step()
            warm = time.perf_counter() - started
            _timed(row, step, threads, repeats, max_seconds, warmup=0)
            row["compile_seconds"] = max(warm - WARMUP * row["step_seconds"], 0.0)
        except Exception as error:  # noqa: BLE001 - a failed compile is a finding; the runner stays eager
            row.update(status="failed", error=f"{type(error).__name__}: {error}"[:300])
        finally:
            setting.model = eager_model
        rows.append(row)
    return rows


def n0_rows(setting: Setting, size: int, threads: int, repeats: int, max_seconds: float,
            values: Iterable[int] = N0_VALUES) -> list[dict]:
    """Multiscale-SGD's step and its price per #WU at each first batch N0."""
    rows = []
    for n0 in values:
        row = _row("n0", setting, size, "msgd", n0)
        original = setting.configs["msgd"]
        setting.configs["msgd"] = dict(original, batch_size=int(n0))  # make_step reads the config by strategy name
        try:
            _, phase = _first_phase(setting, "msgd", size)
            _timed(row, make_step(setting, "msgd", phase, size, torch.device("cpu")), threads, repeats, max_seconds)
            row["wu_per_step"] = float(phase.wu_per_iteration)
            row["seconds_per_wu"] = row["step_seconds"] / row["wu_per_step"]
        except Exception as error:  # noqa: BLE001 - a failed row is recorded, the others still run
            row.update(status="failed", error=f"{type(error).__name__}: {error}"[:300])
        finally:
            setting.configs["msgd"] = original
        rows.append(row)
    return rows


def _steps_per_second(setting: Setting, size: int, threads: int, seconds: float, barrier=None) -> float:
    """Steps of SGD per second one process completes in `seconds`, started together with the other
    jobs at `barrier` (after each has built its model and warmed up)."""
    torch.set_num_threads(threads)
    _, phase = _first_phase(setting, "sgd", size)
    step = make_step(setting, "sgd", phase, size, torch.device("cpu"))
    step()  # warm-up before the common start
    if barrier is not None:
        barrier.wait()
    done, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        step()
        done += 1
    return done / (time.perf_counter() - started)


def threads_rows(setting: Setting, size: int, seconds: float, cores: int = 2) -> list[dict]:
    """The machine's SGD steps per second: one job with `cores` threads, then `cores` one-thread jobs at once."""
    one = _row("threads", setting, size, "sgd", f"1 job x {cores} threads")
    two = _row("threads", setting, size, "sgd", f"{cores} jobs x 1 thread")
    bare = dataclasses.replace(setting, model=None)  # the children build their own model
    try:
        one["steps_per_second"] = _steps_per_second(bare, size, cores, seconds)
        context = multiprocessing.get_context("spawn")  # a fresh interpreter per job, as Snakemake starts them
        with context.Manager() as manager, context.Pool(cores) as pool:
            barrier = manager.Barrier(cores)
            rates = pool.starmap(_steps_per_second, [(bare, size, 1, seconds, barrier)] * cores)
        two["steps_per_second"] = sum(rates)
    except Exception as error:  # noqa: BLE001
        for row in (one, two):
            row.update(status="failed", error=f"{type(error).__name__}: {error}"[:300])
    return [one, two]


def knob_rows(settings: Iterable[Setting], size: int, knobs: Iterable[str] = KNOBS, *, threads: int = 1,
              repeats: int = 10, max_seconds: float = 10.0, threads_seconds: float = 20.0,
              n0_values: Iterable[int] | None = None) -> list[dict[str, Any]]:
    """Every chosen knob for every setting at `size`; each row carries the machine's environment."""
    env = environment("cpu", threads)
    rows: list[dict[str, Any]] = []
    for setting in settings:
        for knob in knobs:
            if knob == "compile":
                new = compile_rows(setting, size, threads, repeats, max_seconds)
            elif knob == "n0":
                new = n0_rows(setting, size, threads, repeats, max_seconds, n0_values or N0_VALUES)
            elif knob == "threads":
                new = threads_rows(setting, size, threads_seconds)
            else:
                raise ValueError(f"unknown knob {knob!r}; valid choices: {', '.join(KNOBS)}")
            for row in new:
                print(f"[knobs] {setting.arch:<13} {knob:<8} {row['strategy']:<5} {row['value']:<20} "
                      f"{_describe(row)}", file=sys.stderr, flush=True)
            rows.extend({**row, **env} for row in new)
        setting.model = None
    return rows


def _describe(row: dict[str, Any]) -> str:
    if row["status"] != "ok":
        return f"{row['status']} {row['error']}".strip()
    if row["steps_per_second"] != "":
        return f"{row['steps_per_second']:.2f} steps/s"
    extra = f", compile {row['compile_seconds']:.1f} s" if row["compile_seconds"] != "" else ""
    return f"{row['step_seconds'] * 1e3:.1f} ms{extra}"

