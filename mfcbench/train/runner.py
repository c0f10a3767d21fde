"""The cell runner: train one (task, dataset, arch, strategy, seed) cell and write its folder.

The story of `run_cell`: resolve the config -> open the dataset once -> build task, strategy, seeded
model and validation batch (`mfcbench.train.cell.build_cell`, the one cell builder) and wrap them with
an optimizer and a sampler (`make_run`) -> resume from a matching checkpoint (`mfcbench.train.checkpoint`)
-> run the phases (`train_phases`, one `train_step` = `optimizer_step` per step, validation every
`val_every` steps on the phase's mesh and early stopping through `TrainState`) -> write curve.csv,
metrics.json and the final checkpoint.

DIR gets metrics.json, curve.csv and checkpoint.pt (docs/architecture.md "Cell outputs").
Randomness: `mfcbench.strategies.sampling` (one seeded generator per purpose, all checkpointed), so a killed
cell resumes to the identical result. `run_cell(...)` also takes in-memory image tensors (tests,
notebooks). The command line is `python -m mfcbench train` (mfcbench/cli/train.py).
"""

from __future__ import annotations

import csv
import io
import math
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import torch

from . import checkpoint
from . import config as config_mod
from ..core.atomic import write_json, write_text
from ..layers import symbol_cache
from .manifest import build_manifest, now
from .cell import (BuiltCell, build_cell, cell_images, check_sizes, task_and_strategy, tensor_checksum,  # noqa: F401
                   validation_subset)
from ..strategies.base import restrict_batch
from ..strategies.sampling import Sampler, TrainSampler
from ..tasks.base import Batch, Task
from ..core.workunits import WorkCounter, schedule_wu

CURVE_COLUMNS = ("iteration", "level", "wu_executed", "seconds", "train_seconds", "train_loss", "grad_norm",
                 "val_metric")


class SimulatedCrash(RuntimeError):
    """Raised by the `stop_after` hook (MFCBENCH_STOP_AFTER) to test resume."""


class StaleCellError(RuntimeError):
    """The cell's config file changed while this run trained: its result belongs to no config on disk."""


def _check_still_current(config: Any, overrides: Any, config_hash: str) -> None:
    """Refuse to write metrics.json when the config file the run started from now says otherwise
    (e.g. a leftover job of an interrupted pipeline finishing after the profile changed)."""
    if not isinstance(config, (str, Path)) or not Path(config).is_file():
        return
    try:
        now_hash = config_mod.config_hash(config_mod.resolve(config, overrides))
    except ValueError:
        now_hash = "invalid"
    if now_hash != config_hash:
        raise StaleCellError(f"{config} changed while this run trained; its result is not written "
                             f"(rerun the pipeline to train the cell under the new config)")


# --- state ---------------------------------------------------------------------------------------
@dataclass
class TrainState:
    """Where a cell is (saved in its checkpoint) and the early-stopping bookkeeping."""

    phase: int = 0
    phase_iter: int = 0
    step: int = 0
    curve: list = field(default_factory=list)
    seconds: float = 0.0  # wall-clock of the loop: training, validation and checkpoints
    train_seconds: float = 0.0  # the optimizer steps only (forward, backward, update)
    eval_seconds: float = 0.0  # validation and checkpoint writes
    best: float | None = None
    bad: int = 0
    stopped_early: bool = False  # the last phase stopped on a plateau
    phase_stops: list = field(default_factory=list)  # iterations where an earlier phase stopped on one
    last_val: dict | None = None
    last_val_step: int = -1
    last_val_level: int = 0  # the mesh of the last validation (a phase validates on its own level)

    def observe(self, value: float, rule: dict | None, higher_is_better: bool) -> None:
        """Early stopping: `rule` = {patience, min_delta} on the headline validation metric."""
        if rule is None:
            return
        sign = 1.0 if higher_is_better else -1.0
        if self.best is None or sign * (value - self.best) > rule["min_delta"]:
            self.best, self.bad = value, 0
        else:
            self.bad += 1
            self.stopped_early = self.bad >= rule["patience"]

    def next_level(self) -> None:
        """A plateau ended a phase before the last: note where, and start the next level afresh."""
        self.phase_stops.append(self.step)
        self.stopped_early = False

    def state_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class CellRun:
    """Everything one cell's training loop touches."""

    cell: dict
    cfg: dict
    task: Task
    strategy: Any
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    sampler: TrainSampler
    counter: WorkCounter
    val_batch: Batch
    device: torch.device
    paths: dict[str, Path]
    log: Callable[[str], None]
    config_hash: str = ""
    bar: Any = None

    @property
    def phases(self):
        return self.strategy.phases()

    def save(self, state: TrainState, finished: bool = False, status: str = "running") -> None:
        checkpoint.save(self.paths["checkpoint"], cell=self.cell, config_hash=self.config_hash, model=self.model,
                        optimizer=self.optimizer, counter=self.counter, sampler=self.sampler, device=self.device,
                        state=state.state_dict(), finished=finished, status=status)

    def validate(self, state: TrainState, level: int = 0) -> dict[str, float]:
        """Validate on mesh `level`: the validation batch restricted with the strategy's restriction
        (a Full-Multiscale level is judged on its own mesh, Algorithm 2; the final metric on level 0)."""
        started = time.perf_counter()
        batch = restrict_batch(self.val_batch, level, self.strategy.restriction)
        state.last_val, state.last_val_step = evaluate(self.task, self.model, batch), state.step
        state.last_val_level = level
        state.eval_seconds += time.perf_counter() - started
        return state.last_val

    def checkpoint(self, state: TrainState) -> None:
        started = time.perf_counter()
        self.save(state)
        state.eval_seconds += time.perf_counter() - started


# --- helpers -------------------------------------------------------------------------------------
def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name not in ("cpu", "cuda"):
        raise ValueError(f"unknown device {name!r}; valid choices: auto, cpu, cuda")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda requested but CUDA is not available; valid choices here: auto, cpu")
    return torch.device(name)


def make_optimizer(params, cfg: dict) -> torch.optim.Optimizer:
    kind, lr, wd = cfg["optimizer"], cfg["lr"], cfg["weight_decay"]
    if kind == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=wd)
    if kind == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=wd)
    return torch.optim.SGD(params, lr=lr, momentum=cfg["momentum"], weight_decay=wd)


def learning_rate(cfg: dict, step: int, total: int) -> float:
    """Constant (paper) or cosine annealing to 0 over `total` steps (authors' code). The loop passes
    the phase's own step and iterations: each Full-Multiscale level restarts at the configured lr."""
    if cfg["lr_schedule"] == "cosine":
        return 0.5 * cfg["lr"] * (1.0 + math.cos(math.pi * step / max(total, 1)))
    return cfg["lr"]


def peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def finite_or_none(metrics: Mapping[str, Any]) -> dict[str, Any]:
    out = {}
    for k, v in metrics.items():
        v = float(v) if isinstance(v, (int, float)) or torch.is_tensor(v) else v
        out[k] = v if not isinstance(v, float) or math.isfinite(v) else None
    return out


def evaluate(task: Task, model: torch.nn.Module, batch: Batch) -> dict[str, float]:
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            return {k: float(v) for k, v in task.evaluate(model, batch).items()}
    finally:
        model.train(was_training)


def plateau_statistic(curve: list[dict], steps: int, higher_is_better: bool) -> float | None:
    """Relative improvement of the validation metric over the last quarter of the steps, on window
    means (single validations of a constant-lr run scatter by 20-30%, measured on the default
    profile's Table 4 networks): (m3 - m4) / |m3| with m3 the mean validation in (T/2, 3T/4] and m4
    in (3T/4, T]; sign flipped when higher is better. None when either window has no validation."""
    vals = [(r["iteration"], r["val_metric"]) for r in curve if r.get("val_metric") is not None]
    third = [v for it, v in vals if steps / 2 < it <= 0.75 * steps and math.isfinite(v)]
    fourth = [v for it, v in vals if it > 0.75 * steps and math.isfinite(v)]
    if not third or not fourth:
        return None
    m3, m4 = sum(third) / len(third), sum(fourth) / len(fourth)
    if m3 == 0:
        return None
    gain = (m4 - m3) if higher_is_better else (m3 - m4)
    return gain / abs(m3)


def last_phase(curve: list[dict], steps: int) -> tuple[list[dict], int]:
    """The curve rows of the last phase (the trailing rows on the last row's level), renumbered from 1,
    and the iteration before its first row: Algorithm 2's convergence is judged on its last level."""
    if not curve or "level" not in curve[-1]:
        return curve, 0
    start = len(curve)
    while start > 0 and curve[start - 1].get("level") == curve[-1]["level"]:
        start -= 1
    offset = int(curve[start]["iteration"]) - 1
    return [{**r, "iteration": r["iteration"] - offset} for r in curve[start:]], offset


def convergence(curve: list[dict], steps: int, higher_is_better: bool, threshold: float, status: str,
                stopped_early: bool) -> dict[str, Any]:
    """`plateau` (see plateau_statistic, on the last phase's steps only) and `converged`: the metric moved
    by at most `plateau_threshold` over the last quarter, or the run stopped early on a plateau, and never
    a worsening curve (plateau < -threshold) nor a diverged cell."""
    rows, offset = last_phase(curve, steps)
    plateau = plateau_statistic(rows, steps - offset, higher_is_better)
    worsening = plateau is not None and plateau < -threshold
    converged = status == "ok" and not worsening and (stopped_early or (plateau is not None and plateau <= threshold))
    return {"plateau": plateau, "plateau_threshold": threshold, "plateau_from": offset, "converged": bool(converged)}


def curve_csv(rows: list[dict]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CURVE_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


# --- the loop ------------------------------------------------------------------------------------
def optimizer_step(model: torch.nn.Module, optimizer: torch.optim.Optimizer, strategy, task: Task, phase,
                   sampler: Sampler, counter: WorkCounter) -> tuple[float, float]:
    """The one training step (the runner's, `fit`'s and the benchmarks'): zero_grad, `Strategy.loss`
    inside `symbol_cache`, backward, gradient norm, update. Returns (loss, gradient norm); a
    non-finite loss skips the update."""
    optimizer.zero_grad(set_to_none=True)
    with symbol_cache():  # full-mixing MFCs build their symbol once per step and slice it for coarser meshes
        loss = strategy.loss(model, task, phase, sampler, counter)
        loss_value = float(loss.detach())
        if not math.isfinite(loss_value):
            return loss_value, float("nan")
        loss.backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    grad_norm = float(torch.nn.utils.get_total_norm(grads)) if grads else 0.0
    optimizer.step()
    return loss_value, grad_norm


def train_step(run: CellRun, phase, step: int, total: int) -> tuple[float, float]:
    """`optimizer_step` of `phase` at step `step` of its `total` (the lr schedule's position)."""
    for group in run.optimizer.param_groups:
        group["lr"] = learning_rate(run.cfg, step, total)
    return optimizer_step(run.model, run.optimizer, run.strategy, run.task, phase, run.sampler, run.counter)


def train_phases(run: CellRun, st: TrainState, stop_after: int | None = None) -> str:
    """Run the remaining phases from `st`; returns "ok" or "diverged". Updates `st` in place."""
    phases, cfg, headline = run.phases, run.cfg, run.task.headline_metric
    resumed_seconds, t_loop = st.seconds, time.perf_counter()
    run.model.train()
    while st.phase < len(phases) and not st.stopped_early:
        phase = phases[st.phase]
        if st.phase_iter == 0:
            if st.phase > 0:
                st.best, st.bad = None, 0  # early stopping judges each level on its own
            if st.phase > 0 and run.strategy.reset_optimizer:
                run.optimizer = make_optimizer(run.model.parameters(), cfg)
            if run.bar is None:
                run.log(f"phase {st.phase + 1}/{len(phases)}: level {phase.level}, {phase.iterations} iterations, "
                        f"{phase.images_per_iteration} images/step")
        while st.phase_iter < phase.iterations:
            step_started = time.perf_counter()
            loss_value, grad_norm = train_step(run, phase, st.phase_iter, phase.iterations)
            st.train_seconds += time.perf_counter() - step_started
            if not math.isfinite(loss_value):
                run.log(f"loss is {loss_value} at iteration {st.step + 1}: cell diverged")
                st.seconds = resumed_seconds + time.perf_counter() - t_loop
                return "diverged"
            st.step += 1
            st.phase_iter += 1
            st.seconds = resumed_seconds + time.perf_counter() - t_loop
            row = {"iteration": st.step, "level": phase.level, "wu_executed": run.counter.value,
                   "seconds": round(st.seconds, 4), "train_seconds": round(st.train_seconds, 4),
                   "train_loss": loss_value, "grad_norm": grad_norm, "val_metric": None}
            last = st.phase == len(phases) - 1 and st.phase_iter == phase.iterations  # the run's final step
            if st.step % cfg["val_every"] == 0 or last:
                row["val_metric"] = run.validate(st, phase.level)[headline]
                st.observe(row["val_metric"], cfg["early_stop"], run.task.higher_is_better)
            st.curve.append(row)
            _show_progress(run, loss_value, phase.level)
            if st.stopped_early:
                run.log(f"early stop at iteration {st.step} (level {phase.level}): no {headline} improvement "
                        f"in {cfg['early_stop']['patience']} validations")
                if st.phase == len(phases) - 1 or cfg["early_stop"]["scope"] == "run":
                    return "ok"
                st.next_level()  # Algorithm 2 solves each level: a plateau ends the level, not the run
                break
            if st.step % cfg["checkpoint_every"] == 0:
                run.checkpoint(st)
            if stop_after is not None and st.step >= stop_after:
                raise SimulatedCrash(f"stopped after iteration {st.step} (stop_after hook)")
        st.phase += 1
        st.phase_iter = 0
        if st.phase < len(phases):
            run.checkpoint(st)  # phase boundary
    return "ok"


def _show_progress(run: CellRun, loss_value: float, level: int) -> None:
    if run.bar is not None:
        run.bar.update(1)
        run.bar.set_postfix(loss=f"{loss_value:.4g}", level=level)


# --- the cell ------------------------------------------------------------------------------------
def make_run(cell: dict, cfg: dict, dev: torch.device, built: BuiltCell, train_images: torch.Tensor, out: Path,
             log) -> CellRun:
    """A built cell (`mfcbench.train.cell.build_cell`) with its optimizer, sampler, counter and paths."""
    paths = {"checkpoint": out / "checkpoint.pt", "metrics": out / "metrics.json", "curve": out / "curve.csv"}
    val_batch = built.val_batch
    return CellRun(cell=cell, cfg=cfg, task=built.task, strategy=built.strategy, model=built.model,
                   optimizer=make_optimizer(built.model.parameters(), cfg),
                   sampler=TrainSampler(train_images, built.task, dev, cell["seed"]),
                   counter=WorkCounter(val_batch.inputs.shape[-2] * val_batch.inputs.shape[-1]),
                   val_batch=val_batch, device=dev, paths=paths, log=log,
                   config_hash=config_mod.config_hash(cfg))


def _record(run: CellRun, st: TrainState, status: str, final: dict, checksum: str, started_at: str) -> dict:
    phases, cfg = run.phases, run.cfg
    return {
        "status": status,
        "cell": run.cell,
        "config": cfg,
        "headline_metric": run.task.headline_metric,
        "higher_is_better": run.task.higher_is_better,
        "metric_notes": run.task.metric_notes(),  # e.g. denoise's [-1, 1] range (4x the [0, 1] MSE)
        "metrics": finite_or_none(final),
        "wu_closed_form": float(schedule_wu(phases)),
        "wu_executed": run.counter.value,
        "iterations": st.step,
        "iterations_planned": sum(p.iterations for p in phases),
        "budget_scale": cfg["budget_scale"],  # 2 in a budget-doubling variant (docs/architecture.md)
        "stopped_early": st.stopped_early,
        "phase_stops": list(st.phase_stops),
        "schedule": [{"level": p.level, "iterations": p.iterations, "batches": [d.batch for d in p.draws]}
                     for p in phases],
        "val_images": len(run.val_batch.inputs),
        "seconds": st.seconds,
        "train_seconds": st.train_seconds,
        "eval_seconds": st.eval_seconds,
        **convergence(st.curve, st.step, run.task.higher_is_better, cfg["plateau_threshold"], status, st.stopped_early),
        "params": sum(p.numel() for p in run.model.parameters()),
        "peak_memory_mb": peak_memory_mb(run.device),
        "manifest": build_manifest(config=cfg, seed=run.cell["seed"], device=run.device, dataset=run.cell["dataset"],
                                   dataset_checksum=checksum, started_at=started_at),
    }


def run_cell(config: Mapping[str, Any] | str | Path | None = None, *, task: str, arch: str, strategy: str,
             out_dir: str | Path, dataset: str = "memory", seed: int = 0, device: str = "auto",
             overrides: Any = (), train_images: torch.Tensor | None = None,
             val_images: torch.Tensor | None = None, force: bool = False, stop_after: int | None = None,
             progress: bool | None = None, log: Callable[[str], None] | None = None,
             on_stale: str = "error") -> dict[str, Any]:
    """Train one cell (or resume it) and return its metrics.json content.

    A checkpoint written under another config is an error, or with on_stale="restart" (what the
    pipeline passes: it reruns a cell because its config changed) it is discarded.
    """
    log = log or (lambda msg: print(f"[mfcbench] {msg}", file=sys.stderr))
    out = Path(out_dir)
    cfg = config_mod.resolve(config, overrides)
    cell = {"task": task, "dataset": dataset, "arch": arch, "strategy": strategy, "seed": int(seed)}
    with checkpoint.lock_cell(out):
        return _run_locked(config, overrides, cfg, cell, out, device, train_images, val_images, force, stop_after,
                           progress, log, on_stale)


def _run_locked(config, overrides, cfg, cell, out, device, train_images, val_images, force, stop_after, progress,
                log, on_stale) -> dict[str, Any]:
    dataset = cell["dataset"]
    metrics_path, ckpt_path = out / "metrics.json", out / "checkpoint.pt"
    if force:
        for name in ("checkpoint.pt", "metrics.json", "curve.csv"):
            (out / name).unlink(missing_ok=True)
    elif metrics_path.exists() and checkpoint.is_finished(ckpt_path, cell, config_mod.config_hash(cfg)):
        import json

        log(f"{out} is finished; nothing to do (use --force to rerun)")
        return json.loads(metrics_path.read_text())
    dev = resolve_device(device)
    if cfg["threads"]:
        torch.set_num_threads(cfg["threads"])
    started_at = now()
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    parts = task_and_strategy(cell, cfg)  # a bad schedule fails before any data is read
    train_images, val_images, checksum = cell_images(cfg, dataset, train_images, val_images)
    run = make_run(cell, cfg, dev, build_cell(cell, cfg, val_images, dev, parts), train_images, out, log)
    st = TrainState()
    ck = checkpoint.load_matching(ckpt_path, cell=cell, config_hash=run.config_hash, on_stale=on_stale, log=log)
    if ck is not None:
        st = TrainState(**checkpoint.restore(ck, model=run.model, optimizer=run.optimizer, counter=run.counter,
                                             sampler=run.sampler, device=dev))
        log(f"resuming {out} at iteration {st.step}/{sum(p.iterations for p in run.phases)}")
    status = _train_with_progress(run, st, progress, stop_after)
    final = st.last_val if st.last_val_step == st.step and st.last_val_level == 0 else run.validate(st, 0)
    _check_still_current(config, overrides, run.config_hash)
    write_text(run.paths["curve"], curve_csv(st.curve))
    record = _record(run, st, status, final, checksum, started_at)
    write_json(metrics_path, record)
    run.save(st, finished=True, status=status)
    headline = run.task.headline_metric
    log(f"{status}: {headline} = {record['metrics'].get(headline)}, #WU {run.counter.value:g}, "
        f"{st.step} iterations, {st.seconds:.1f} s -> {out}")
    return record


def _train_with_progress(run: CellRun, st: TrainState, progress: bool | None, stop_after: int | None) -> str:
    if sys.stderr.isatty() if progress is None else progress:
        from tqdm import tqdm

        total = sum(p.iterations for p in run.phases)
        run.bar = tqdm(total=total, initial=st.step, desc=f"{run.cell['strategy']} {run.cell['arch']}", leave=False)
    try:
        return train_phases(run, st, stop_after)
    finally:
        if run.bar is not None:
            run.bar.close()
