"""The cell runner: train one cell (`mfcbench.core.cell.Cell`) and write its folder.

The story of `run_cell`: resolve the config once, into the `Cell` (`resolve_cell`) -> `train_cell`:
lock the folder -> build task and strategy and check every mesh before any data is read -> open the
dataset once -> build the seeded model and validation batch (`mfcbench.train.cell`, the one cell
builder) and wrap them with an optimizer and a sampler (`make_run`) -> resume from a matching
checkpoint (`mfcbench.train.checkpoint`) -> run the phases (`train_phases`, one `train_step` =
`optimizer_step` per step, validation every `val_every` steps on the phase's mesh and early stopping
through `TrainState`) -> write curve.csv, metrics.json (with `mfcbench.train.convergence`'s verdict
on the last phase) and the final checkpoint, unless the config file changed meanwhile (`ConfigFile`).

The folder's files are `mfcbench.core.cell.CellFiles` (docs/architecture.md "Cell outputs").
Randomness: `mfcbench.strategies.sampling` (one seeded generator per purpose, all checkpointed), so a killed
cell resumes to the identical result. `run_cell(...)` also takes in-memory image tensors (tests,
notebooks). The command line is `python -m mfcbench train` (mfcbench/cli/train.py).
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import torch

from ..core.cell import Cell, CellFiles, metrics_record, read_metrics, write_curve, write_metrics
from ..core.workunits import WorkCounter, schedule_wu
from ..layers import symbol_cache
from ..strategies.base import restrict_batch
from ..strategies.sampling import Sampler, TrainSampler
from ..tasks.base import Batch, Task
from . import checkpoint
from . import config as config_mod
from .cell import BuiltCell, build_cell, cell_images, task_and_strategy
from .convergence import convergence
from .manifest import build_manifest, now
from .parts import evaluate, finite_or_none, learning_rate, make_optimizer, peak_memory_mb, resolve_device
from .request import ConfigFile, RunOptions, resolve_cell, to_stderr


class SimulatedCrash(RuntimeError):
    """Raised by the `stop_after` hook (MFCBENCH_STOP_AFTER) to test resume."""


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
    """Everything one cell's training loop touches; `cell.config` is the resolved config."""

    cell: Cell
    task: Task
    strategy: Any
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    sampler: TrainSampler
    counter: WorkCounter
    val_batch: Batch
    device: torch.device
    files: CellFiles | None  # None: a run that writes nothing (`fit` without out_dir)
    log: Callable[[str], None]
    config_hash: str = ""
    bar: Any = None  # a tqdm bar (a terminal), else progress lines through `log` every `progress_every` steps
    progress_every: int = 0
    data_checksum: str | None = None  # recorded in the checkpoint: a resume on other data restarts

    @property
    def cfg(self) -> Mapping[str, Any]:
        return self.cell.config

    @property
    def phases(self):
        return self.strategy.phases()

    def save(self, state: TrainState, finished: bool = False, status: str = "running") -> None:
        if self.files is None:
            return
        checkpoint.save(self.files.checkpoint, cell=self.cell, config_hash=self.config_hash, model=self.model,
                        optimizer=self.optimizer, counter=self.counter, sampler=self.sampler, device=self.device,
                        state=state.state_dict(), finished=finished, status=status,
                        data_checksum=self.data_checksum)

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


# --- the loop ------------------------------------------------------------------------------------
def optimizer_step(model: torch.nn.Module, optimizer: torch.optim.Optimizer, strategy, task: Task, phase, *,
                   sampler: Sampler, counter: WorkCounter) -> tuple[float, float]:
    """The one training step (the runner's, `fit`'s and the benchmarks'): zero_grad, `Strategy.loss`
    of `phase` drawn from `sampler` (counted by `counter`) inside `symbol_cache`, backward, gradient
    norm, update. Returns (loss, gradient norm); a non-finite loss skips the update."""
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
    return optimizer_step(run.model, run.optimizer, run.strategy, run.task, phase, sampler=run.sampler,
                          counter=run.counter)


def schedule_position(run: CellRun, st: TrainState) -> tuple[int, int]:
    """The lr schedule's step and length: the phase's own, or the whole run's for `cosine_run`."""
    if run.cfg["lr_schedule"] != "cosine_run":
        return st.phase_iter, run.phases[st.phase].iterations
    done = sum(p.iterations for p in run.phases[:st.phase])
    return done + st.phase_iter, sum(p.iterations for p in run.phases)


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
            loss_value, grad_norm = train_step(run, phase, *schedule_position(run, st))
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
            _show_progress(run, st.step, loss_value, phase.level)
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


def _show_progress(run: CellRun, step: int, loss_value: float, level: int) -> None:
    if run.bar is not None:
        run.bar.update(1)
        run.bar.set_postfix(loss=f"{loss_value:.4g}", level=level)
    elif run.progress_every and step % run.progress_every == 0:
        total = sum(p.iterations for p in run.phases)
        run.log(f"iteration {step}/{total} (level {level}): train loss {loss_value:.4g}")


# --- the cell ------------------------------------------------------------------------------------
def make_run(cell: Cell, built: BuiltCell, train_images: torch.Tensor, *, device: torch.device,
             files: CellFiles | None, log: Callable[[str], None], data_checksum: str | None = None) -> CellRun:
    """A built cell (`mfcbench.train.cell.build_cell`) with its optimizer, sampler, counter and files;
    `data_checksum`, the data it trains on, goes into its checkpoints."""
    val_batch = built.val_batch
    return CellRun(cell=cell, task=built.task, strategy=built.strategy, model=built.model,
                   optimizer=make_optimizer(built.model.parameters(), cell.config),
                   sampler=TrainSampler(train_images, built.task, device, cell.seed),
                   counter=WorkCounter(val_batch.inputs.shape[-2] * val_batch.inputs.shape[-1]),
                   val_batch=val_batch, device=device, files=files, log=log,
                   config_hash=config_mod.config_hash(cell.config), data_checksum=data_checksum)


def _record(run: CellRun, st: TrainState, status: str, final: dict, *, checksum: str, started_at: str) -> dict:
    phases, cfg, task = run.phases, run.cfg, run.task
    return metrics_record(
        run.cell, status=status, headline_metric=task.headline_metric, metrics=finite_or_none(final),
        config=cfg,
        higher_is_better=task.higher_is_better,
        metric_notes=task.metric_notes(),  # e.g. denoise's [-1, 1] range (4x the [0, 1] MSE)
        wu_closed_form=float(schedule_wu(phases)),
        wu_executed=run.counter.value,
        iterations=st.step,
        iterations_planned=sum(p.iterations for p in phases),
        budget_scale=cfg["budget_scale"],  # 2 in a budget-doubling variant (docs/architecture.md)
        stopped_early=st.stopped_early,
        phase_stops=list(st.phase_stops),
        schedule=[{"level": p.level, "iterations": p.iterations, "batches": [d.batch for d in p.draws]} for p in phases],
        val_images=len(run.val_batch.inputs),
        seconds=st.seconds,
        train_seconds=st.train_seconds,
        eval_seconds=st.eval_seconds,
        **convergence(st.curve, st.step, task.higher_is_better, cfg["plateau_threshold"], status, st.stopped_early),
        params=sum(p.numel() for p in run.model.parameters()),
        peak_memory_mb=peak_memory_mb(run.device),
        manifest=build_manifest(config=cfg, seed=run.cell.seed, device=run.device, dataset=run.cell.dataset,
                                dataset_checksum=checksum, started_at=started_at),
    )


def run_cell(config: Mapping[str, Any] | str | Path | None = None, *, task: str, arch: str, strategy: str,
             out_dir: str | Path, dataset: str = "memory", seed: int = 0, device: str = "auto",
             overrides: Any = (), train_images: torch.Tensor | None = None,
             val_images: torch.Tensor | None = None, force: bool = False, stop_after: int | None = None,
             progress: bool | None = None, log: Callable[[str], None] | None = None,
             on_stale: str = "error") -> dict[str, Any]:
    """Train one cell (or resume it) and return its metrics.json content: `train_cell` by keywords,
    with the config (a mapping or a YAML file, then `overrides`) resolved once into the `Cell`.

    A checkpoint written under another config is an error, or with on_stale="restart" (what the
    pipeline passes: it reruns a cell because its config changed) it is discarded.
    """
    identity = Cell(task=task, dataset=dataset, arch=arch, strategy=strategy, seed=int(seed))
    cell, source = resolve_cell(identity, config, overrides)
    options = RunOptions(device=device, force=force, on_stale=on_stale, stop_after=stop_after, progress=progress,
                         log=log or to_stderr)
    return train_cell(cell, out_dir, options, source=source, images=(train_images, val_images))


def train_cell(cell: Cell, out_dir: str | Path, options: RunOptions | None = None, *,
               source: ConfigFile | None = None, images: tuple = (None, None), parts: tuple | None = None) -> dict:
    """Train `cell` under its resolved config (`cell.config`) into `out_dir`, or resume it; returns
    its metrics.json content. `source`: the config file it was resolved from (nothing is written
    when that file changes meanwhile); `images`: in-memory (train, val) tensors in place of its
    dataset; `parts`: its `task_and_strategy`, when the caller checked it already."""
    files, options = CellFiles(out_dir), options or RunOptions()
    with checkpoint.lock_cell(files.dir):
        if options.force:
            for path in files.outputs():
                path.unlink(missing_ok=True)
        return _train(cell, files, options, source=source, images=images, parts=parts)


def _train(cell: Cell, files: CellFiles, options: RunOptions, *, source: ConfigFile | None, images: tuple,
           parts: tuple | None) -> dict:
    cfg, log = cell.config, options.log
    dev = resolve_device(options.device)
    if cfg["threads"]:
        torch.set_num_threads(cfg["threads"])
    started_at = now()
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    parts = parts or task_and_strategy(cell)  # a bad schedule fails before any data is read
    train_images, val_images, checksum = cell_images(cell, *images)
    if files.metrics.exists() and checkpoint.is_finished(files.checkpoint, cell, config_mod.config_hash(cfg), checksum):
        log(f"{files.dir} is finished; nothing to do (use --force to rerun)")
        return read_metrics(files.dir)
    run = make_run(cell, build_cell(cell, val_images, dev, parts), train_images, device=dev, files=files, log=log,
                   data_checksum=checksum)
    st = TrainState()
    ck = checkpoint.load_matching(files.checkpoint, cell=cell, config_hash=run.config_hash, on_stale=options.on_stale,
                                  log=log, data_checksum=checksum, resume_finished=False)
    if ck is not None:
        st = TrainState(**checkpoint.restore(ck, model=run.model, optimizer=run.optimizer, counter=run.counter,
                                             sampler=run.sampler, device=dev))
        log(f"resuming {files.dir} at iteration {st.step}/{sum(p.iterations for p in run.phases)}")
    status = train_with_progress(run, st, options.progress, options.stop_after)
    final = st.last_val if st.last_val_step == st.step and st.last_val_level == 0 else run.validate(st, 0)
    if source is not None:
        source.check(run.config_hash)
    write_curve(files.dir, st.curve)
    record = _record(run, st, status, final, checksum=checksum, started_at=started_at)
    write_metrics(files.dir, record)
    run.save(st, finished=True, status=status)
    headline = run.task.headline_metric
    log(f"{status}: {headline} = {record['metrics'].get(headline)}, #WU {run.counter.value:g}, "
        f"{st.step} iterations, {st.seconds:.1f} s -> {files.dir}")
    return record


PROGRESS_LINES = 10  # without a terminal: about this many progress lines per run, besides one per phase


def train_with_progress(run: CellRun, st: TrainState, progress: bool | None = None,
                        stop_after: int | None = None) -> str:
    """`train_phases` with progress: a tqdm bar when `progress` (None: when stderr is a terminal), else
    a line through `run.log` per phase and every total/PROGRESS_LINES steps (piped runs, notebooks)."""
    total = sum(p.iterations for p in run.phases)
    if sys.stderr.isatty() if progress is None else progress:
        from tqdm import tqdm

        run.bar = tqdm(total=total, initial=st.step, desc=f"{run.cell.strategy} {run.cell.arch}", leave=False)
    else:
        run.progress_every = max(1, total // PROGRESS_LINES)
    try:
        return train_phases(run, st, stop_after)
    finally:
        if run.bar is not None:
            run.bar.close()
