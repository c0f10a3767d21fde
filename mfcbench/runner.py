"""The cell runner: train one (task, dataset, arch, strategy, seed) cell and write its folder.

`python -m mfcbench train --task denoise --dataset fields --arch unet --strategy fmsgd --seed 0
 --config cfg.yaml --out DIR [--device auto] [--set key=value ...] [--force]`

DIR gets metrics.json, curve.csv and checkpoint.pt (docs/architecture.md "Cell outputs").
Everything random is drawn from torch.Generators seeded per purpose from the cell seed, and every
generator state goes into the checkpoint, so a killed cell resumes to the identical result.
The Python API `run_cell(...)` also takes in-memory image tensors (tests, notebooks).
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io as _io
import math
import os
import sys
import time
from pathlib import Path
from typing import Any, Callable, Mapping

import torch

from . import config as config_mod
from .io import torch_load, torch_save, write_json, write_text
from .manifest import build_manifest, now
from .tasks.base import Batch, Task
from .workunits import WorkCounter, schedule_wu

CURVE_COLUMNS = ("iteration", "level", "wu_executed", "seconds", "train_loss", "grad_norm", "val_metric")
CHECKPOINT_VERSION = 1


class SimulatedCrash(RuntimeError):
    """Raised by the `stop_after` hook (MFCBENCH_STOP_AFTER) to test resume."""


def seed_for(seed: int, purpose: str) -> int:
    """A stable 63-bit seed per (cell seed, purpose): data order, noise, init... never share a stream."""
    digest = hashlib.sha256(f"mfcbench:{seed}:{purpose}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def tensor_checksum(*tensors: torch.Tensor) -> str:
    h = hashlib.sha256()
    for t in tensors:
        h.update(str(tuple(t.shape)).encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


# --- data ----------------------------------------------------------------------------------------
class TrainSampler:
    """Epoch-wise shuffled draws of clean images plus the task's corruption (the `Sampler` protocol)."""

    def __init__(self, images: torch.Tensor, task: Task, device: torch.device, seed: int):
        self.data = images
        self.task = task
        self.device = device
        self.seed = seed
        self._generators: dict[str, torch.Generator] = {}
        self._perm = torch.empty(0, dtype=torch.long)
        self._pos = 0

    def generator(self, purpose: str) -> torch.Generator:
        if purpose not in self._generators:
            self._generators[purpose] = torch.Generator().manual_seed(seed_for(self.seed, purpose))
        return self._generators[purpose]

    def images(self, n: int) -> torch.Tensor:
        chunks = []
        while n > 0:
            if self._pos >= len(self._perm):
                self._perm = torch.randperm(len(self.data), generator=self.generator("data"))
                self._pos = 0
            take = min(n, len(self._perm) - self._pos)
            chunks.append(self._perm[self._pos:self._pos + take])
            self._pos += take
            n -= take
        return self.data[torch.cat(chunks)]

    def batch(self, images: torch.Tensor) -> Batch:
        return to_device(self.task.make_batch(images, self.generator("noise")), self.device)

    def state_dict(self) -> dict:
        return {"perm": self._perm, "pos": self._pos,
                "generators": {k: g.get_state() for k, g in self._generators.items()}}

    def load_state_dict(self, state: dict) -> None:
        self._perm, self._pos = state["perm"], int(state["pos"])
        for purpose, gstate in state["generators"].items():
            self.generator(purpose).set_state(gstate)


def to_device(batch: Batch, device: torch.device) -> Batch:
    cond = None if batch.cond is None else batch.cond.to(device)
    return Batch(batch.inputs.to(device), batch.targets.to(device), cond)


def load_images(dataset: str, image_size: int, root: str) -> tuple[torch.Tensor, torch.Tensor, str]:
    from .data import dataset_checksum, load_split

    train = load_split(dataset, "train", image_size, root)
    val = load_split(dataset, "val", image_size, root)
    return train, val, dataset_checksum(dataset, image_size, root)


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
    """Constant (paper) or cosine annealing to 0 over all iterations (authors' code)."""
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


def curve_csv(rows: list[dict]) -> str:
    buf = _io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CURVE_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def check_sizes(cfg: dict, task: Task, model: torch.nn.Module | None = None, strategy=None) -> None:
    """Every mesh the schedule can touch must be an integer size the model accepts.
    Called once before loading data (task part) and again with the built model."""
    divisor = int(getattr(model, "size_divisor", 1)) if model is not None else 1
    multiple = task.min_divisor() * 2 ** (cfg["levels"] - 1) * divisor
    if cfg["image_size"] % multiple:
        why = f"task min_divisor {task.min_divisor()} x 2**(levels-1)" + (f" x model size_divisor {divisor}" if model is not None else "")
        raise ValueError(f"image_size {cfg['image_size']} does not fit {cfg['levels']} levels: "
                         f"it must be a multiple of {multiple} ({why})")
    crop = cfg.get("crop_size")
    if strategy is not None and strategy.name == "crops" and crop and crop % (task.min_divisor() * divisor):
        raise ValueError(f"crop_size {crop} must be a multiple of {task.min_divisor() * divisor}")


# --- the cell ------------------------------------------------------------------------------------
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
    from .models import build_model
    from .strategies import build_strategy
    from .tasks import build_task

    log = log or (lambda msg: print(f"[mfcbench] {msg}", file=sys.stderr))
    out = Path(out_dir)
    cfg = config_mod.resolve(config, overrides)
    cell = {"task": task, "dataset": dataset, "arch": arch, "strategy": strategy, "seed": int(seed)}
    ckpt_path, metrics_path, curve_path = out / "checkpoint.pt", out / "metrics.json", out / "curve.csv"
    if force:
        for p in (ckpt_path, metrics_path, curve_path):
            p.unlink(missing_ok=True)
    elif metrics_path.exists() and ckpt_path.exists() and torch_load(ckpt_path).get("finished"):
        import json

        log(f"{out} is finished; nothing to do (use --force to rerun)")
        return json.loads(metrics_path.read_text())

    task_obj = build_task(task, cfg["task_options"], seed=int(seed))
    dev = resolve_device(device)
    if cfg["threads"]:
        torch.set_num_threads(cfg["threads"])
    started_at, t0 = now(), time.perf_counter()
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)

    def finish(record: dict, checksum: str | None) -> dict:
        record.update(cell=cell, config=cfg, headline_metric=task_obj.headline_metric,
                      higher_is_better=task_obj.higher_is_better, peak_memory_mb=peak_memory_mb(dev),
                      manifest=build_manifest(config=cfg, seed=int(seed), device=dev, dataset=dataset,
                                              dataset_checksum=checksum, started_at=started_at))
        write_json(metrics_path, record)
        return record

    if not task_obj.trainable:
        result = task_obj.run(cfg, int(seed))
        write_text(curve_path, curve_csv([]))
        record = finish({"status": result.get("status", "ok"), "metrics": finite_or_none(result.get("metrics", {})),
                         "rows": result.get("rows"),
                         "task_output": {k: v for k, v in result.items() if k not in ("status", "metrics", "rows")},
                         "wu_closed_form": None, "wu_executed": None,
                         "iterations": None, "params": None, "seconds": time.perf_counter() - t0},
                        result.get("dataset_checksum"))
        torch_save({"version": CHECKPOINT_VERSION, "finished": True, "cell": cell}, ckpt_path)
        return record

    strat = build_strategy(strategy, cfg)
    check_sizes(cfg, task_obj, None, strat)
    if train_images is None or val_images is None:
        train_images, val_images, checksum = load_images(dataset, cfg["image_size"], cfg["data_root"])
    else:
        checksum = tensor_checksum(train_images, val_images)
    train_images = train_images.float().cpu()
    val_images = val_images[: cfg["val_size"]].float().cpu()
    if len(train_images) == 0 or len(val_images) == 0:
        raise ValueError("the train and val splits must each hold at least one image")
    if tuple(train_images.shape[-2:]) != (cfg["image_size"],) * 2:
        raise ValueError(f"training images are {tuple(train_images.shape[-2:])}, config image_size is {cfg['image_size']}")

    torch.manual_seed(seed_for(seed, "init"))  # initialisation, then dropout, draw from this stream
    if dev.type == "cuda":
        torch.cuda.manual_seed_all(seed_for(seed, "init"))
    model_opts = {**task_obj.model_options(train_images.shape[1]), **cfg["model"]}
    model = build_model(arch, **model_opts).to(dev).float()
    check_sizes(cfg, task_obj, model, strat)
    val_batch = to_device(task_obj.make_batch(
        val_images, torch.Generator().manual_seed(seed_for(seed, "val"))), dev)

    phases = strat.phases()
    total = sum(p.iterations for p in phases)
    counter = WorkCounter(val_batch.inputs.shape[-2] * val_batch.inputs.shape[-1])
    sampler = TrainSampler(train_images, task_obj, dev, int(seed))
    optimizer = make_optimizer(model.parameters(), cfg)
    chash = config_mod.config_hash(cfg)
    st: dict[str, Any] = {"phase": 0, "phase_iter": 0, "step": 0, "curve": [], "seconds": 0.0,
                          "best": None, "bad": 0, "stopped_early": False, "last_val": None, "last_val_step": -1}

    ck = torch_load(ckpt_path) if ckpt_path.exists() else None
    if ck is not None and (ck.get("config_hash") != chash or ck.get("cell") != cell):
        if on_stale != "restart":
            raise ValueError(f"{ckpt_path} was written for a different cell or config; rerun with --force")
        log(f"{ckpt_path} belongs to another config: starting the cell afresh")
        ckpt_path.unlink()
        ck = None
    if ck is not None:
        model.load_state_dict(ck["model"])
        optimizer.load_state_dict(ck["optimizer"])
        counter.load_state_dict(ck["wu"])
        sampler.load_state_dict(ck["sampler"])
        torch.set_rng_state(ck["torch_rng"])
        if dev.type == "cuda" and ck.get("cuda_rng"):
            torch.cuda.set_rng_state_all(ck["cuda_rng"])
        st.update(ck["state"])
        log(f"resuming {out} at iteration {st['step']}/{total}")

    def save_checkpoint(finished: bool = False, status: str = "running") -> None:
        torch_save({"version": CHECKPOINT_VERSION, "finished": finished, "status": status, "cell": cell,
                    "config_hash": chash, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                    "wu": counter.state_dict(), "sampler": sampler.state_dict(),
                    "torch_rng": torch.get_rng_state(),
                    "cuda_rng": torch.cuda.get_rng_state_all() if dev.type == "cuda" else [],
                    "iteration": st["step"], "phase": st["phase"], "state": st}, ckpt_path)

    def validate_now() -> dict[str, float]:
        st["last_val"], st["last_val_step"] = evaluate(task_obj, model, val_batch), st["step"]
        return st["last_val"]

    def early_stop_update(value: float) -> None:
        rule = cfg["early_stop"]
        if rule is None:
            return
        sign = 1.0 if task_obj.higher_is_better else -1.0
        if st["best"] is None or sign * (value - st["best"]) > rule["min_delta"]:
            st["best"], st["bad"] = value, 0
        else:
            st["bad"] += 1
            st["stopped_early"] = st["bad"] >= rule["patience"]

    show_bar = sys.stderr.isatty() if progress is None else progress
    bar = None
    if show_bar:
        from tqdm import tqdm

        bar = tqdm(total=total, initial=st["step"], desc=f"{strategy} {arch}", leave=False)
    status, headline = "ok", task_obj.headline_metric
    resumed_seconds, t_loop = st["seconds"], time.perf_counter()
    model.train()
    while st["phase"] < len(phases) and not st["stopped_early"] and status == "ok":
        phase = phases[st["phase"]]
        if st["phase_iter"] == 0:
            if st["phase"] > 0 and strat.reset_optimizer:
                optimizer = make_optimizer(model.parameters(), cfg)
            if not show_bar:
                log(f"phase {st['phase'] + 1}/{len(phases)}: level {phase.level}, {phase.iterations} iterations, "
                    f"{phase.images_per_iteration} images/step")
        while st["phase_iter"] < phase.iterations:
            for group in optimizer.param_groups:
                group["lr"] = learning_rate(cfg, st["step"], total)
            optimizer.zero_grad(set_to_none=True)
            loss = strat.loss(model, task_obj, phase, sampler, counter)
            loss_value = float(loss.detach())
            if not math.isfinite(loss_value):
                status = "diverged"
                log(f"loss is {loss_value} at iteration {st['step'] + 1}: cell diverged")
                break
            loss.backward()
            grads = [p.grad for p in model.parameters() if p.grad is not None]
            grad_norm = float(torch.nn.utils.get_total_norm(grads)) if grads else 0.0
            optimizer.step()
            st["step"] += 1
            st["phase_iter"] += 1
            st["seconds"] = resumed_seconds + time.perf_counter() - t_loop
            row = {"iteration": st["step"], "level": phase.level, "wu_executed": counter.value,
                   "seconds": round(st["seconds"], 4), "train_loss": loss_value, "grad_norm": grad_norm,
                   "val_metric": None}
            if st["step"] % cfg["val_every"] == 0 or st["step"] == total:
                row["val_metric"] = validate_now()[headline]
                early_stop_update(row["val_metric"])
            st["curve"].append(row)
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{loss_value:.4g}", level=phase.level)
            if st["stopped_early"]:
                log(f"early stop at iteration {st['step']}: no {headline} improvement in "
                    f"{cfg['early_stop']['patience']} validations")
                break
            if st["step"] % cfg["checkpoint_every"] == 0:
                save_checkpoint()
            if stop_after is not None and st["step"] >= stop_after:
                raise SimulatedCrash(f"stopped after iteration {st['step']} (stop_after hook)")
        if status != "ok" or st["stopped_early"]:
            break
        st["phase"] += 1
        st["phase_iter"] = 0
        if st["phase"] < len(phases):
            save_checkpoint()  # phase boundary
    if bar is not None:
        bar.close()

    final = st["last_val"] if st["last_val_step"] == st["step"] else validate_now()
    st["seconds"] = resumed_seconds + time.perf_counter() - t_loop
    write_text(curve_path, curve_csv(st["curve"]))
    record = finish({
        "status": status,
        "metrics": finite_or_none(final),
        "wu_closed_form": float(schedule_wu(phases)),
        "wu_executed": counter.value,
        "iterations": st["step"],
        "iterations_planned": total,
        "stopped_early": st["stopped_early"],
        "schedule": [{"level": p.level, "iterations": p.iterations,
                      "batches": [d.batch for d in p.draws]} for p in phases],
        "val_images": len(val_images),
        "seconds": st["seconds"],
        "params": sum(p.numel() for p in model.parameters()),
    }, checksum)
    save_checkpoint(finished=True, status=status)
    log(f"{status}: {headline} = {record['metrics'].get(headline)}, #WU {counter.value:g}, "
        f"{st['step']} iterations, {st['seconds']:.1f} s -> {out}")
    return record


# --- CLI -----------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m mfcbench train", description="Train one cell.")
    p.add_argument("--task", required=True)
    p.add_argument("--dataset", required=True)
    p.add_argument("--arch", required=True)
    p.add_argument("--strategy", required=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--config", help="YAML of training options (see mfcbench/config.py)")
    p.add_argument("--out", required=True, help="cell folder")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p.add_argument("--set", dest="overrides", nargs="+", action="extend", default=[], metavar="KEY=VALUE")
    p.add_argument("--force", action="store_true", help="rerun a finished cell from scratch")
    p.add_argument("--on-stale", choices=("error", "restart"), default="error",
                   help="a checkpoint from another config: stop (default) or start the cell afresh")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    env_stop = os.environ.get("MFCBENCH_STOP_AFTER")
    try:
        run_cell(args.config, task=args.task, dataset=args.dataset, arch=args.arch, strategy=args.strategy,
                 seed=args.seed, out_dir=args.out, device=args.device, overrides=args.overrides,
                 force=args.force, on_stale=args.on_stale, stop_after=int(env_stop) if env_stop else None)
    except KeyboardInterrupt:
        print("mfcbench train: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - one line for batch logs; MFCBENCH_DEBUG=1 for the trace
        if os.environ.get("MFCBENCH_DEBUG") == "1":
            raise
        reason = " ".join(str(exc).split()) or type(exc).__name__
        print(f"mfcbench train: error: {type(exc).__name__}: {reason}", file=sys.stderr)
        return 2 if isinstance(exc, ValueError) else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
