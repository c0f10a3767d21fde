"""`fit`: the harness's training loop for a model *object* and in-memory tensors.

    net, result = mfc.fit(net, (x_train, y_train), (x_val, y_val), strategy="fmsgd", levels=3,
                          iterations=400, batch_size=2, lr=1e-3)

There is one training loop: `fit` wraps the model, data and strategy in the runner's own `CellRun`
(validation subset and batch from `mfcbench.train.cell`, as the runner's) and runs the runner's
`train_phases` (so the lr schedule, optimizer reset per phase, validation on
each level's mesh, early stopping, #WU accounting and checkpoint/resume are the runner's), from a
`TrainState` restored by the runner's checkpoint module when `out_dir` holds a matching checkpoint.
Nothing is written unless `out_dir` is given.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Sequence

import torch
from torch.nn import functional as F

from ..core.cell import Cell, CellFiles, write_curve, write_metrics
from ..core.workunits import WorkCounter, fmsgd_schedule, schedule_wu
from ..strategies import STRATEGIES, build_strategy, strategy_names
from ..strategies.functional import check_prediction, warn_batch_statistics
from ..strategies.sampling import TrainSampler, seed_for
from ..tasks.base import Batch, Task
from . import checkpoint
from . import config as config_mod
from .cell import check_sizes, tensor_checksum, validation_batch, validation_subset
from .fit_inputs import check_levels, check_model, stacked, takes_cond
from .request import to_stderr
from .runner import CellRun, TrainState, finite_or_none, make_optimizer, resolve_device, train_with_progress


class PairTask(Task):
    """A task made of your (input, target) pairs and loss: the harness corrupts nothing.

    Images reach it as one tensor, inputs and targets stacked along the channels (what the runner's
    sampler shuffles and checkpoints); `make_batch` splits them again.
    loss_fn: loss_fn(prediction, target) -> scalar; in_channels: the input's channels.
    """

    name = "pairs"
    headline_metric = "val_loss"
    higher_is_better = False

    def __init__(self, loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None, in_channels: int):
        super().__init__({})
        self.check_shapes = loss_fn is None  # the default MSE would broadcast a prediction of another shape
        self.loss_fn, self.in_channels = loss_fn or F.mse_loss, in_channels

    def make_batch(self, images: torch.Tensor, generator: torch.Generator) -> Batch:
        return Batch(images[:, : self.in_channels], images[:, self.in_channels:])

    def loss(self, prediction: torch.Tensor, batch: Batch) -> torch.Tensor:
        if self.check_shapes:
            check_prediction(prediction, batch.targets, "fit")
        return self.loss_fn(prediction, batch.targets)

    @torch.no_grad()
    def evaluate(self, model: torch.nn.Module, batch: Batch, chunk: int = 64) -> dict[str, float]:
        total = 0.0
        for start in range(0, len(batch), chunk):
            rows = slice(start, start + chunk)
            total += float(self.loss_fn(model(batch.inputs[rows]), batch.targets[rows])) * len(batch.inputs[rows])
        return {"val_loss": total / len(batch)}


class _CondFree(torch.nn.Module):
    """The runner calls model(x, cond=...); a model whose forward takes no `cond` is called as model(x)
    (a task's conditioning, e.g. denoise's noise level, is then not given to it)."""

    def __init__(self, net: torch.nn.Module):
        super().__init__()
        self.net = net
        self.size_divisor = int(getattr(net, "size_divisor", 1))
        self.takes_cond = takes_cond(net)

    def forward(self, x, cond=None):
        return self.net(x) if cond is None or not self.takes_cond else self.net(x, cond=cond)


def _iterations(iterations: int | Sequence[int], levels: int, strategy: str) -> list[int]:
    """An int is App. C's I: the coarsest phase's steps, halved per finer phase, for a phased strategy;
    the total steps otherwise. A list is the per-level schedule, coarse -> fine."""
    if strategy not in strategy_names():  # loads the registry; an unknown name lists the valid ones
        STRATEGIES.get(strategy)
    if not isinstance(iterations, int):
        return [int(i) for i in iterations]
    if STRATEGIES.get(strategy).phased:
        return [max(1, round(i)) for i in fmsgd_schedule(iterations, levels)]
    return [iterations] + [0] * (levels - 1)


def _setup(train, val, loss_fn, task, seed, options, *, log) -> tuple[Task, dict, torch.Tensor, torch.Tensor]:
    train_images, in_channels = stacked(train, "train", log)
    val_images, val_channels = stacked(val, "val", log)
    if (in_channels is None) == (task is None) or in_channels != val_channels:
        raise ValueError("fit: give (inputs, targets) pairs for train and val, or tensors of clean images and a task")
    if task is None:
        task = PairTask(loss_fn, in_channels)
    elif isinstance(task, str):
        from ..tasks import build_task

        task = build_task(task, options.pop("task_options", {}), seed=seed)
    side = int(train_images.shape[-1])
    if options.get("image_size", side) != side:
        raise ValueError(f"fit: image_size={options['image_size']} but the train images are {side} pixels across; "
                         f"fit trains on the data's own mesh: drop image_size or resize the data yourself")
    cfg = config_mod.resolve({**options, "image_size": side})
    config_mod.check_batches(cfg, int(train_images.shape[1]), tuple(train_images.shape[-2:]))  # the data's channels
    return task, cfg, train_images, validation_subset(val_images, cfg)


def fit(model: torch.nn.Module, train: Any, val: Any, strategy: str = "fmsgd", *,
        loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None, task: str | Task | None = None,
        levels: int = 4, iterations: int | Sequence[int] = 1000, batch_size: int | None = None,
        out_dir: str | Path | None = None, seed: int = 0, device: str = "auto",
        log: Callable[[str], None] | None = to_stderr, progress: bool | None = None,
        stop_after: int | None = None, **options: Any) -> tuple[torch.nn.Module, dict[str, Any]]:
    """Train `model` in place with the harness's loop; returns (model, result).

    model: any float32 module mapping (B, C, H, W) inputs to predictions; trained in place and returned.
        A task that conditions (denoise passes its noise level) calls model(x, cond=c) when forward
        takes `cond`, else model(x) (announced in the log).
    train, val: an (inputs, targets) pair of (N, C, H, W) tensors on one mesh (H, W divisible by
        2**(levels-1)), or, with `task`, a tensor of clean images the task corrupts (e.g. "denoise"); or
        any iterable of batches of either (a DataLoader), read once into memory (announced in the log;
        at most half this machine's memory). NaN or inf values are refused; data are cast to float32.
        The model trains on the data's own mesh (image_size is the images' size).
    strategy: "fmsgd" (Full-Multiscale, default), "msgd", "sgd", "progressive" or "crops".
    loss_fn: loss_fn(prediction, target) for pairs (default mean squared error, which refuses a
        prediction of another shape than its target); validation reports its mean over `val` as val_loss.
    task: a registered task name or a `Task` (its loss, metrics and corruption) instead of pairs.
    levels: meshes L (level 0 the data's, each next one 2x coarser).
    batch_size: the finest mesh's images per step: all of a single-scale step's (sgd, crops: default 4),
        the finest term's N0 of a multiscale one, whose coarser terms add N0 * 2**j images on meshes 4**j
        times cheaper (default 1: 1 + 2 + 4 + 8 images at 4 levels, about 2.3 finest images' work).
    iterations: an int I (for fmsgd/progressive the coarsest level's steps, halved per finer level as
        in App. C; for the others the total) or a list per level, coarse -> fine.
    out_dir: None (default) writes nothing; a folder gets checkpoint.pt (resumed from when it matches
        this model class, data, seed and options), curve.csv and metrics.json.
    seed: seeds data order, validation noise and torch's global stream while training (dropout); the
        model's initialisation is yours (seed before building it).
    device: "auto", "cpu" or "cuda".
    log: a callable for progress lines (default: stderr; None silences fit). progress: a tqdm bar
        (None: when stderr is a terminal and log is on; without one, a line per phase and every tenth
        of the run).
    stop_after: raise the runner's SimulatedCrash after this many steps (tests resume with it).
    options: any training option of `python -m mfcbench train --list-options` (lr, optimizer, lr_schedule,
        val_every, early_stop, checkpoint_every, restriction, level_batches, sgd_batch, ...).

    result: metrics (final validation on the finest mesh), curve (per step), wu_executed and
    wu_closed_form (#WU), iterations, stopped_early, phase_stops, status, seconds, config.
    """
    say = log or (lambda message: None)
    check_levels(levels)
    check_model(model)
    batch_size = _batch_size(strategy, batch_size, options)  # sets a single-scale strategy's sgd_batch
    options = {**options, "levels": levels, "batch_size": batch_size, "iterations": _iterations(iterations, levels, strategy)}
    task, cfg, train_images, val_images = _setup(train, val, loss_fn, task, seed, options, log=say)
    dev = _device(device)
    plan = build_strategy(strategy, cfg)
    check_sizes(cfg, task, None, plan)
    warn_batch_statistics(model, "fit")
    wrapped = _CondFree(model).to(dev)
    val_batch = validation_batch(task, val_images, seed, dev)
    if val_batch.cond is not None and not wrapped.takes_cond:
        say(f"fit: {type(model).__name__}.forward takes no `cond`, so the {task.name} task's conditioning (e.g. the "
            f"noise level) is not passed to it; give forward a `cond=None` keyword to use it")
    cell = Cell(task=task.name, dataset=f"memory:{tensor_checksum(train_images, val_images)[:16]}",
                arch=f"{type(model).__module__}.{type(model).__qualname__}", strategy=strategy, seed=int(seed),
                config=cfg)
    files = None if out_dir is None else CellFiles(out_dir)
    run = CellRun(cell=cell, task=task, strategy=plan, model=wrapped,
                  optimizer=make_optimizer(wrapped.parameters(), cfg),
                  sampler=TrainSampler(train_images, task, dev, seed),
                  counter=WorkCounter(val_batch.inputs.shape[-2] * val_batch.inputs.shape[-1]),
                  val_batch=val_batch, device=dev, files=files, log=say,
                  config_hash=config_mod.config_hash(cfg))
    state = TrainState() if files is None else _resume(run, files)
    if state.step == 0:
        torch.manual_seed(seed_for(seed, "fit"))  # dropout and other draws from torch's stream (checkpointed)
    status = train_with_progress(run, state, progress if log is not None else False, stop_after)
    final = run.validate(state, 0)
    result = _result(run, state, status, final)
    if files is not None:
        write_curve(files.dir, state.curve)
        write_metrics(files.dir, {k: v for k, v in result.items() if k != "curve"})
        run.save(state, finished=True, status=status)
    value = result["metrics"].get(task.headline_metric)
    say(f"fit: {status}: {task.headline_metric} {'n/a' if value is None else f'{value:.4g}'} after {state.step} "
        f"iterations, {result['wu_executed']:g} #WU, {state.seconds:.1f} s")
    return model, result


def _batch_size(strategy: str, batch_size: int | None, options: dict[str, Any]) -> int:
    """fit's batch: a single-scale strategy's step takes `batch_size` images (its sgd_batch, unless given;
    default 4); a multiscale one's finest term N0 (default 1)."""
    if strategy not in strategy_names():  # loads the registry; an unknown name lists the valid ones
        STRATEGIES.get(strategy)
    single_scale = "sgd_batch" in STRATEGIES.get(strategy).options
    batch = (4 if single_scale else 1) if batch_size is None else batch_size
    if single_scale:
        options.setdefault("sgd_batch", batch)
    return batch


def _device(name: str) -> torch.device:
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("fit: device='cuda' but CUDA is not available here; use device='auto' or device='cpu'")
    if name not in ("auto", "cpu", "cuda"):
        raise ValueError(f"fit: device must be 'auto', 'cpu' or 'cuda', got {name!r}")
    return resolve_device(name)


def _resume(run: CellRun, files: CellFiles) -> TrainState:
    checkpoint.make_dir(files.dir)
    ck = checkpoint.load_matching(files.checkpoint, cell=run.cell, config_hash=run.config_hash,
                                  on_stale="error", log=run.log)
    if ck is None:
        return TrainState()
    saved = checkpoint.restore(ck, model=run.model, optimizer=run.optimizer, counter=run.counter,
                               sampler=run.sampler, device=run.device)
    run.log(f"resuming {files.dir} at iteration {saved['step']}")
    return TrainState(**saved)


def _result(run: CellRun, state: TrainState, status: str, final: dict) -> dict[str, Any]:
    phases = run.phases
    return {"status": status, "metrics": finite_or_none(final), "headline_metric": run.task.headline_metric,
            "curve": list(state.curve), "wu_executed": run.counter.value,
            "wu_closed_form": float(schedule_wu(phases)), "iterations": state.step,
            "iterations_planned": sum(p.iterations for p in phases), "stopped_early": state.stopped_early,
            "phase_stops": list(state.phase_stops), "seconds": state.seconds, "train_seconds": state.train_seconds,
            "config": run.cfg}
