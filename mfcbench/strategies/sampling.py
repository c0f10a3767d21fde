"""Where a strategy's images and noise come from: the `Sampler` protocol and the runner's `TrainSampler`.

Everything random in a cell is drawn from torch.Generators seeded per purpose from the cell seed
(`seed_for`): data order, the task's corruption, crops, validation noise and initialisation never
share a stream, and every generator state goes into the checkpoint, so a resumed cell continues
the identical draws.
"""

from __future__ import annotations

import hashlib
from typing import Protocol

import torch

from ..tasks.base import Batch, Task


def seed_for(seed: int, purpose: str) -> int:
    """A stable 63-bit seed per (cell seed, purpose): data order, noise, init... never share a stream."""
    digest = hashlib.sha256(f"mfcbench:{seed}:{purpose}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


class Sampler(Protocol):
    """What the runner hands a strategy: training images and seeded generators."""

    def images(self, n: int) -> torch.Tensor: ...  # (n, C, H, W) clean finest-mesh images, CPU

    def batch(self, images: torch.Tensor) -> Batch: ...  # task.make_batch, moved to the device

    def generator(self, purpose: str) -> torch.Generator: ...  # seeded per purpose, checkpointed


def to_device(batch: Batch, device: torch.device) -> Batch:
    cond = None if batch.cond is None else batch.cond.to(device)
    return Batch(batch.inputs.to(device), batch.targets.to(device), cond)


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


class FixedSampler:
    """The `Sampler` protocol over a fixed pool of images (benchmarks: Table 15, the bench): `images(n)`
    returns the first n (cycled), `batch` draws the task's corruption from a seeded generator and moves
    it to the device, as `TrainSampler` does, so a timed `Strategy.loss` is the trained step without
    the data order."""

    def __init__(self, images: torch.Tensor, task: Task, device: torch.device | str = "cpu", seed: int = 0):
        self.data, self.task, self.device, self.seed = images, task, torch.device(device), seed
        self._generators: dict[str, torch.Generator] = {}

    def generator(self, purpose: str) -> torch.Generator:
        if purpose not in self._generators:
            self._generators[purpose] = torch.Generator().manual_seed(seed_for(self.seed, purpose))
        return self._generators[purpose]

    def images(self, n: int) -> torch.Tensor:
        return self.data[torch.arange(n) % len(self.data)]

    def batch(self, images: torch.Tensor) -> Batch:
        return to_device(self.task.make_batch(images, self.generator("noise")), self.device)
