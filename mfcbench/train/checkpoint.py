"""A cell's checkpoint: save, load, and the stale check (a checkpoint of another cell or config, of
other data, or, for the pipeline, of other training code: a retrain on request must not resume the
old run's end).

The checkpoint file (`mfcbench.core.cell.CellFiles.checkpoint`) holds the cell's identity, the
checksum of the data it was trained on, the model, optimizer, work counter, sampler (data order and
every generator), torch/CUDA RNG states and the runner's `TrainState`; it loads with weights_only=True
(tensors and plain containers only) and is written atomically.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import torch

from ..core.atomic import DamagedFileError, torch_load, torch_save
from ..core.cell import Cell, CellFiles
from .manifest import training_code

VERSION = 2  # 2: records `data_checksum`


class CellLockedError(RuntimeError):
    """Another runner holds this cell folder."""


def make_dir(out: Path) -> None:
    """Create the cell folder `out` (and the folders above it); a file in the way is a one-line ValueError."""
    try:
        out.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        blocker = next((p for p in (out, *out.parents) if p.exists() and not p.is_dir()), out)
        raise ValueError(f"out_dir {out}: {blocker} is a file, not a folder; name a folder (it is created) "
                         f"or move the file away") from None


@contextlib.contextmanager
def lock_cell(out: Path) -> Iterator[None]:
    """Hold an exclusive lock on the cell folder for the whole run; a second runner on the same cell
    fails at once, naming the PID that holds it (the lock dies with its process, even on kill -9)."""
    created = [] if out.exists() else [p for p in (out, *out.parents) if not p.exists()]
    make_dir(out)
    lock = CellFiles(out).lock
    fresh = not lock.exists()
    handle = open(lock, "a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "unknown"
        handle.close()
        raise CellLockedError(f"{out} is being trained by another runner (PID {holder}); wait for it, or stop it "
                              f"(kill {holder}) before rerunning this cell") from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"{os.getpid()}\n")
    handle.flush()
    try:
        yield
    except BaseException:
        _undo_refused_start(out, lock if fresh else None, created)
        raise
    finally:
        handle.close()


def _undo_refused_start(out: Path, lock: Path | None, created: list[Path]) -> None:
    """A run that failed before writing any file of the cell (its builder raised, its data would not
    open) leaves nothing behind: the .lock it made goes (while still held, so no other runner locks
    the removed file), then the folders it made, innermost first, while they are empty."""
    if lock is None or any(p.name != lock.name for p in out.iterdir()):
        return
    lock.unlink(missing_ok=True)
    for folder in created:
        try:
            folder.rmdir()
        except OSError:
            return


def _load(path: Path) -> dict | None:
    """The checkpoint, or None after moving a damaged one aside (the cell then restarts)."""
    try:
        return torch_load(path, "checkpoint")
    except DamagedFileError as error:
        aside = path.with_name(f"{path.name}.damaged-{time.strftime('%Y%m%dT%H%M%S')}")
        os.replace(path, aside)
        import warnings

        warnings.warn(f"{error}; moved it to {aside.name} and starting the cell afresh", stacklevel=3)
        return None


def is_finished(path: Path, cell: Cell, config_hash: str, data_checksum: str | None = None) -> bool:
    """True when `path` is the checkpoint of this cell and config, run to its end (on the data of
    `data_checksum`, when given)."""
    if not path.exists():
        return False
    ck = _load(path)
    return (ck is not None and bool(ck.get("finished")) and ck.get("cell") == cell.identity()
            and ck.get("config_hash") == config_hash
            and (data_checksum is None or ck.get("data_checksum") == data_checksum))


def save(path: Path, *, cell: Cell, config_hash: str, model, optimizer, counter, sampler, device: torch.device,
         state: dict[str, Any], finished: bool = False, status: str = "running",
         data_checksum: str | None = None) -> None:
    torch_save({"version": VERSION, "finished": finished, "status": status, "cell": cell.identity(),
                "config_hash": config_hash, "data_checksum": data_checksum, "training_code": training_code(),
                "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                "wu": counter.state_dict(), "sampler": sampler.state_dict(),
                "torch_rng": torch.get_rng_state(),
                "cuda_rng": torch.cuda.get_rng_state_all() if device.type == "cuda" else [],
                "iteration": state["step"], "phase": state["phase"], "state": state}, path)


def load_matching(path: Path, *, cell: Cell, config_hash: str, on_stale: str, log: Callable[[str], None],
                  data_checksum: str | None = None, resume_finished: bool = True) -> dict | None:
    """The checkpoint at `path` if it belongs to this cell and config; None if there is none.

    One written for another cell or config is an error, or with on_stale="restart" (what the
    pipeline passes: it reruns a cell because its config changed) it is removed and None returned.
    So is, with on_stale="restart", one written by other training code (or before the digest was
    recorded): a cell the pipeline retrains on request (`--forcerun`) starts afresh, not at its old end.
    With `data_checksum` (the runner's: the checksum of the data the cell opened), one trained on other
    data, or recording none (written before checkpoints recorded it), is removed whatever `on_stale`
    says: resuming it would report the old data's model under the new data's checksum. With
    resume_finished=False (the runner) a finished one is removed too: the runner writes metrics.json
    before the final checkpoint and returns early when both are there, so it meets a finished checkpoint
    here only when metrics.json was removed (Snakemake deletes a job's outputs to rerun it: `--forcerun`,
    a changed input), and a rerun must train, not "resume" at its end; a metrics.json deleted by hand
    costs one retrain."""
    if not path.exists():
        return None
    ck = _load(path)
    if ck is None:
        return None
    if ck.get("config_hash") != config_hash or ck.get("cell") != cell.identity():
        if on_stale != "restart":
            raise ValueError(f"{path} was written for a different cell or config; rerun with --force")
        return _discard(path, log, "belongs to another config")
    if data_checksum is not None and ck.get("data_checksum") != data_checksum:
        recorded = ck.get("data_checksum")
        why = f"dataset checksum {recorded[:12]}" if isinstance(recorded, str) else "no dataset checksum"
        return _discard(path, log, f"was trained on other data ({why}, the data now {data_checksum[:12]})")
    if ck.get("finished") and not resume_finished:
        return _discard(path, log, "is finished but the cell's metrics.json is gone (a rerun on request)")
    if ck.get("training_code") == training_code() or on_stale != "restart":
        return ck  # by hand, a checkpoint of other training code still resumes (--force restarts)
    return _discard(path, log, "was written by other training code")


def _discard(path: Path, log: Callable[[str], None], why: str) -> None:
    log(f"{path} {why}: starting the cell afresh")
    path.unlink()
    return None


def restore(ck: dict, *, model, optimizer, counter, sampler, device: torch.device) -> dict[str, Any]:
    """Load every state of `ck` into the live objects; returns the runner's saved state dict."""
    model.load_state_dict(ck["model"])
    optimizer.load_state_dict(ck["optimizer"])
    counter.load_state_dict(ck["wu"])
    sampler.load_state_dict(ck["sampler"])
    torch.set_rng_state(ck["torch_rng"])
    if device.type == "cuda" and ck.get("cuda_rng"):
        torch.cuda.set_rng_state_all(ck["cuda_rng"])
    return ck["state"]
