"""A cell's checkpoint: save, load, and the stale check (a checkpoint of another cell or config).

`checkpoint.pt` holds the model, optimizer, work counter, sampler (data order and every
generator), torch/CUDA RNG states and the runner's `TrainState`; it loads with weights_only=True
(tensors and plain containers only) and is written atomically.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import torch

from .atomic import torch_load, torch_save

VERSION = 1


def is_finished(path: Path) -> bool:
    """True when `path` is the checkpoint of a cell that ran to its end."""
    return path.exists() and bool(torch_load(path).get("finished"))


def save(path: Path, *, cell: dict, config_hash: str, model, optimizer, counter, sampler, device: torch.device,
         state: dict[str, Any], finished: bool = False, status: str = "running") -> None:
    torch_save({"version": VERSION, "finished": finished, "status": status, "cell": cell,
                "config_hash": config_hash, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                "wu": counter.state_dict(), "sampler": sampler.state_dict(),
                "torch_rng": torch.get_rng_state(),
                "cuda_rng": torch.cuda.get_rng_state_all() if device.type == "cuda" else [],
                "iteration": state["step"], "phase": state["phase"], "state": state}, path)


def load_matching(path: Path, *, cell: dict, config_hash: str, on_stale: str,
                  log: Callable[[str], None]) -> dict | None:
    """The checkpoint at `path` if it belongs to this cell and config; None if there is none.

    One written for another cell or config is an error, or with on_stale="restart" (what the
    pipeline passes: it reruns a cell because its config changed) it is removed and None returned."""
    if not path.exists():
        return None
    ck = torch_load(path)
    if ck.get("config_hash") == config_hash and ck.get("cell") == cell:
        return ck
    if on_stale != "restart":
        raise ValueError(f"{path} was written for a different cell or config; rerun with --force")
    log(f"{path} belongs to another config: starting the cell afresh")
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
