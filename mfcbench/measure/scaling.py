"""The resolution-scaling study (issue 18, not in the paper): where the work-unit saving reaches the clock.

For every network of a setting (Tables 4 and 5: denoise unet/resnet/mfc_unet/mfc_resnet, superres
espcn/srresnet/mfc_espcn/mfc_srresnet) at each finest-mesh size (32, 64, 128, 256 px by default) it
times the trained step itself: the runner's `optimizer_step` (zero_grad, `Strategy.loss` inside
`symbol_cache`, backward, gradient norm, optimizer step) on a `FixedSampler` (the same clean images
every step; the task's corruption is drawn per step as in training), for SGD, Multiscale-SGD and
each Full-Multiscale level, with the profile's batch sizes (N0, growth, phase growth, matched SGD batch).

Rows (`scaling_rows`), tidy, one per measurement:
- kind "step": one optimizer step of (arch, task, size, strategy, level): `step_seconds` (median of
  `repeats` timed steps), `step_iqr_seconds`, `calls`, `pixels` and `meshes` (model calls, input
  pixels and "side:batch" of each call of one step, seen by a forward hook: the cost model's
  regressors), `parts` (loss terms of the step), `wu_per_step` (closed form, in
  finest-mesh images), `time_ratio` = SGD's step time / this one, `wu_ratio` = SGD's #WU / this one.
- kind "schedule": the profile's whole schedule of a strategy priced with those step times
  (`schedule_seconds` = sum over phases of iterations x step time; `schedule_wu` closed form) and the
  SGD/x ratios of both: the time ratio beside the #WU ratio (6.49 and 16.7 or 66.8 in the paper).
A step that fails (a mesh too small for the levels, out of memory) is a row with its `status` and
`error`; later rows still run; rows past a `deadline` (time.monotonic) say "skipped: time budget".
Needs only torch (no pandas, matplotlib or jsonschema): `python -m mfcbench gpu-check` uses it on
a device machine. The command line is `python -m mfcbench measure scaling`.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

import torch

from ..core.workunits import WorkCounter, schedule_wu
from .timing import device_available, environment, measure_each, not_measured

SIZES = (32, 64, 128, 256)
QUICK_SIZES = (16, 32)  # --quick: the default profile's 32 px and one size down (a smoke test of the study)
STRATEGIES = ("sgd", "msgd", "fmsgd")
TASK_CHANNELS = {"blur": 1}  # data channels per task (the image datasets are RGB)
SKIPPED = "skipped: time budget"


@dataclass
class Setting:
    """One network of one table: its task and the resolved training config of each strategy."""

    task: str
    arch: str
    configs: dict[str, dict[str, Any]]  # strategy -> training config (profile's batches, schedule, model)
    table: str = ""
    channels: int = 3
    model: Any = field(default=None, repr=False)  # built once, reused for every size and strategy


def light_config(raw: dict[str, Any]) -> dict[str, Any]:
    """A training config with every default filled in, without the jsonschema check (a device
    machine may lack jsonschema); the pipeline has validated profile configs already."""
    from ..train.config import defaults, full_early_stop

    cfg = {**defaults(), **raw}
    cfg["early_stop"] = full_early_stop(cfg.get("early_stop"))
    return cfg


def step_phases(strategy: str, cfg: dict[str, Any]) -> list[tuple[int, Any]]:
    """(level, phase) of each distinct step of a strategy: one for sgd/msgd, one per level for
    fmsgd (every level present, whatever the schedule's iterations)."""
    from ..strategies import build_strategy

    one_each = dict(cfg, iterations=[1] * int(cfg["levels"]))
    return [(phase.level, phase) for phase in build_strategy(strategy, one_each).phases()]


def count_calls(model: torch.nn.Module, fn: Callable[[], object]) -> list[tuple[int, int]]:
    """(input side, batch) of every model call during one fn() run, in call order."""
    shapes: list[torch.Size] = []
    handle = model.register_forward_pre_hook(lambda _module, args: shapes.append(args[0].shape))
    try:
        fn()
    finally:
        handle.remove()
    return [(int(s[-1]), int(s[0])) for s in shapes]


def build_setting_model(setting: Setting, device: torch.device) -> torch.nn.Module:
    """The setting's model, seeded as a seed-0 cell's (`train.cell.seeded_model`), built once: its
    parameters do not depend on the mesh."""
    from ..tasks import build_task
    from ..train.cell import seeded_model

    if setting.model is None:
        cfg = light_config(setting.configs[next(iter(setting.configs))])
        task = build_task(setting.task, cfg.get("task_options") or {}, seed=0)
        setting.model = seeded_model(setting.arch, task, cfg, setting.channels, seed=0)
    return setting.model.to(device).train()


def make_step(setting: Setting, strategy_name: str, phase, size: int, device: torch.device) -> Callable[[], object]:
    """A closure running one trained step of `phase` at finest mesh `size`: the runner's
    `optimizer_step` (`Strategy.loss` inside `symbol_cache`, backward, gradient norm, update) on a
    `FixedSampler`."""
    from ..strategies import build_strategy
    from ..strategies.sampling import FixedSampler
    from ..tasks import build_task
    from ..train.cell import check_sizes
    from ..train.runner import make_optimizer, optimizer_step

    cfg = light_config(dict(setting.configs[strategy_name], image_size=size))
    task = build_task(setting.task, cfg.get("task_options") or {}, seed=0)
    strategy = build_strategy(strategy_name, cfg)
    model = build_setting_model(setting, device)
    check_sizes(cfg, task, model, strategy)
    images = torch.rand(max(phase.images_per_iteration, 1), setting.channels, size, size,
                        generator=torch.Generator().manual_seed(0))
    sampler = FixedSampler(images, task, device)
    finest = sampler.batch(images[:1]).inputs
    counter = WorkCounter(finest.shape[-2] * finest.shape[-1])
    optimizer = make_optimizer(model.parameters(), cfg)
    return lambda: optimizer_step(model, optimizer, strategy, task, phase, sampler=sampler, counter=counter)


# ---------------------------------------------------------------------------------------------
# rows
def _base_row(setting: Setting, size: int, strategy: str, level: Any, kind: str) -> dict[str, Any]:
    return {"study": "scaling", "kind": kind, "table": setting.table, "task": setting.task, "arch": setting.arch,
            "size": size, "strategy": strategy, "level": level}


def time_step(setting: Setting, strategy: str, level: int, phase, size: int, *, device: str, threads: int,
              repeats: int, max_seconds: float) -> dict[str, Any]:
    """One "step" row: the phase's batches, its model calls and pixels, the median step time."""
    row = _base_row(setting, size, strategy, level, "step")
    row.update(batches=",".join(str(d.batch) for d in phase.draws), wu_per_step=float(phase.wu_per_iteration),
               parts=sum(len(d.levels) for d in phase.draws), calls="", pixels="", meshes="", step_seconds="",
               step_iqr_seconds="", runs=0, status="ok", error="")
    if not device_available(device):
        row["status"] = not_measured(device)["status"]  # a CPU number never stands in for a GPU one
        return row
    try:
        torch.set_num_threads(threads)
        step = make_step(setting, strategy, phase, size, torch.device(device))
        calls = count_calls(setting.model, step)  # also the first warm-up
        row.update(calls=len(calls), pixels=sum(b * side * side for side, b in calls),
                   meshes=";".join(f"{side}:{b}" for side, b in calls))
        result = measure_each(step, device=device, threads=threads, repeats=repeats, warmup=1, max_seconds=max_seconds)
        row.update(step_seconds=result["median_ms"] / 1e3, step_iqr_seconds=result["iqr_ms"] / 1e3,
                   runs=result["runs"], status=result["status"])
    except Exception as error:  # noqa: BLE001 - a failed row is recorded, the study goes on
        row.update(status="failed", error=f"{type(error).__name__}: {error}"[:300])
        if device == "cuda":
            torch.cuda.empty_cache()
    return row


def add_step_ratios(rows: list[dict[str, Any]]) -> None:
    """time_ratio and wu_ratio (SGD / x) of the step rows of one (arch, size), in place."""
    sgd = next((r for r in rows if r["strategy"] == "sgd" and r["status"] == "ok"), None)
    for row in rows:
        ok = sgd is not None and row["status"] == "ok" and row["step_seconds"]
        row["time_ratio"] = sgd["step_seconds"] / row["step_seconds"] if ok else ""
        row["wu_ratio"] = sgd["wu_per_step"] / row["wu_per_step"] if sgd is not None and row["wu_per_step"] else ""


def schedule_rows(setting: Setting, size: int, steps: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each strategy's whole schedule (the profile's iterations) priced with the measured step times."""
    from ..strategies import build_strategy

    out = []
    for strategy, raw in setting.configs.items():
        phases = build_strategy(strategy, light_config(dict(raw, image_size=size))).phases()
        times = {r["level"]: r["step_seconds"] for r in steps if r["strategy"] == strategy and r["status"] == "ok"}
        row = _base_row(setting, size, strategy, "all", "schedule")
        row["iterations"] = ",".join(str(p.iterations) for p in phases)
        row["schedule_wu"] = float(schedule_wu(phases))
        known = all(p.level in times for p in phases)
        row["schedule_seconds"] = sum(p.iterations * times[p.level] for p in phases) if known else ""
        row["status"] = "ok" if known else "incomplete: a step of this schedule was not measured"
        out.append(row)
    sgd = next((r for r in out if r["strategy"] == "sgd"), None)
    for row in out:
        timed = sgd is not None and sgd["status"] == "ok" and row["status"] == "ok" and row["schedule_seconds"]
        row["time_ratio"] = sgd["schedule_seconds"] / row["schedule_seconds"] if timed else ""
        row["wu_ratio"] = sgd["schedule_wu"] / row["schedule_wu"] if sgd is not None else ""
    return out


def setting_rows(setting: Setting, size: int, *, device: str, threads: int, repeats: int, max_seconds: float,
                 deadline: float | None = None) -> list[dict[str, Any]]:
    """Step rows of every strategy and level of one setting at one size, then its schedule rows."""
    steps = []
    for strategy in setting.configs:
        for level, phase in step_phases(strategy, light_config(dict(setting.configs[strategy], image_size=size))):
            if deadline is not None and time.monotonic() > deadline:
                row = _base_row(setting, size, strategy, level, "step")
                row.update(status=SKIPPED, step_seconds="", wu_per_step=float(phase.wu_per_iteration))
            else:
                row = time_step(setting, strategy, level, phase, size, device=device, threads=threads,
                                repeats=repeats, max_seconds=max_seconds)
            print(f"[scaling] {setting.arch:<13} {size:>4}px {strategy:<5} level {level}: "
                  f"{_describe(row)}", file=sys.stderr, flush=True)
            steps.append(row)
    add_step_ratios(steps)
    return steps + schedule_rows(setting, size, steps)


def _describe(row: dict[str, Any]) -> str:
    if row["status"] != "ok":
        return f"{row['status']} {row.get('error', '')}".strip()
    return f"{row['step_seconds'] * 1e3:.1f} ms (iqr {row['step_iqr_seconds'] * 1e3:.1f}, {row['calls']} calls)"


def scaling_rows(settings: Iterable[Setting], sizes: Iterable[int] = SIZES, *, device: str = "cpu",
                 threads: int = 2, repeats: int = 10, max_seconds: float = 10.0, deadline: float | None = None,
                 progress: Callable[[list[dict[str, Any]]], None] | None = None) -> list[dict[str, Any]]:
    """The study: every setting at every size (see the module docstring); each row carries the
    machine's environment (device, processor, threads, versions). `progress(rows so far)` is called
    after each (network, size), e.g. to write them, so a killed run keeps what it measured."""
    env = environment(device, threads)
    rows: list[dict[str, Any]] = []
    for setting in settings:
        for size in sizes:
            for row in setting_rows(setting, int(size), device=device, threads=threads, repeats=repeats,
                                    max_seconds=max_seconds, deadline=deadline):
                rows.append({**row, **env})
            if progress is not None:
                progress(rows)
        setting.model = None  # free the network before the next one
    return rows


def settings_from_configs(configs: dict[tuple[str, str, str], dict[str, Any]],
                          tables: dict[str, str] | None = None) -> list[Setting]:
    """Settings from {(table, arch, strategy): training config}; `tables` maps table -> task."""
    settings: dict[tuple[str, str], Setting] = {}
    for (table, arch, strategy), cfg in configs.items():
        task = (tables or {}).get(table) or cfg.get("task") or "denoise"
        setting = settings.setdefault((table, arch), Setting(task=task, arch=arch, configs={}, table=table,
                                                             channels=TASK_CHANNELS.get(task, 3)))
        setting.configs[strategy] = {k: v for k, v in cfg.items() if k != "task"}
    return list(settings.values())
