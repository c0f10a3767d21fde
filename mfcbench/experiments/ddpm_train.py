"""Figure 8's DDPM: the model, its loss on several meshes, training by the repo's strategies, sampling.

- Model: diffusers `UNet2DModel` built from a config (no download), standard convolutions,
  `DDPMScheduler` with `train_timesteps` (1000) linear betas. The UNet is convolutional, so one
  model runs on the 32x32, 16x16 and 8x8 meshes (two down-samplings: 8 -> 4 -> 2).
- Schedules: the repo's strategies. Single scale = `sgd` (one Draw on the finest mesh); Full-
  Multiscale = `fmsgd` (coarse-to-fine phases, warm start, Algorithm 1 telescoping draws inside a
  phase), configured by `mfcbench.strategies.schedule_config`. #WU is counted by `WorkCounter` and
  priced in closed form by `schedule_wu`, as every cell.
- One step is the runner's `optimizer_step` (zero_grad, loss, backward, gradient norm, update; a
  non-finite loss skips the update), the step every cell trains with: `DDPMObjective` gives the DDPM
  loss in `Strategy.loss`'s shape, the scheduler takes the task's place (it makes the noisy input and
  the target) and `DDPMSampler` draws the images and holds the seeded generators.
- The noise and the timestep on a coarse mesh: the clean image x0 is restricted to mesh j by
  2^j x 2^j average pooling (the repo's `pool`); eps is drawn N(0, I) on the finest mesh of the draw
  and restricted to a coarser mesh k by the same pooling times 2^(k-j), which is again exactly N(0, I)
  there and keeps the two terms of a telescoping draw l_j - l_k coupled (same x0, same t, same noise
  seen at two resolutions); the timestep t and the scheduler's alphas are the same on every mesh. The
  loss on each mesh is mean((eps_theta(x_t, t) - eps)^2).
- Sampling (stated reduction): DDPM ancestral sampling with `DDPMScheduler.set_timesteps(
  inference_steps)` (100 of the 1000 training steps by default), at the finest mesh.

Every random draw comes from a torch.Generator seeded per purpose from the run seed (`seed_for`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from ..core.optional import require
from ..core.restrict import restrict
from ..core.workunits import WorkCounter, schedule_wu
from ..strategies import build_strategy, schedule_config
from ..strategies.sampling import seed_for
from ..train.runner import optimizer_step


def generator(seed: int, purpose: str) -> torch.Generator:
    return torch.Generator().manual_seed(seed_for(seed, purpose))


# --- model and scheduler ----------------------------------------------------------------------
def build_unet(cfg: dict[str, Any]):
    """A small diffusers UNet2DModel (standard convolutions), initialised from seed_for(seed, 'init')."""
    require("diffusers", "paper")  # a missing package names its extra
    from diffusers import UNet2DModel

    blocks = tuple(int(c) for c in cfg["block_out_channels"])
    if cfg["image_size"] % 2 ** (len(blocks) - 1 + cfg["levels"] - 1):
        raise ValueError(f"image_size {cfg['image_size']} must halve {len(blocks) - 1} times on the coarsest "
                         f"of {cfg['levels']} meshes")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed_for(cfg["seed"], "init"))
        return UNet2DModel(sample_size=cfg["image_size"], in_channels=1, out_channels=1, block_out_channels=blocks,
                           layers_per_block=cfg["layers_per_block"], norm_num_groups=cfg["norm_num_groups"],
                           down_block_types=("DownBlock2D",) * len(blocks), up_block_types=("UpBlock2D",) * len(blocks))


def build_scheduler(cfg: dict[str, Any]):
    require("diffusers", "paper")  # a missing package names its extra
    from diffusers import DDPMScheduler

    return DDPMScheduler(num_train_timesteps=cfg["train_timesteps"], beta_schedule="linear", clip_sample=True)


# --- one DDPM loss on several meshes ----------------------------------------------------------
def level_noise(eps: torch.Tensor, from_level: int, to_level: int) -> torch.Tensor:
    """eps (N(0,I) on mesh `from_level`) seen on mesh `to_level`: pooled, times 2 per level: N(0,I)."""
    steps = to_level - from_level
    return eps if steps == 0 else restrict(eps, steps, "pool") * 2**steps


def ddpm_level_loss(model, scheduler, x0: torch.Tensor, eps: torch.Tensor, t: torch.Tensor, level: int, *,
                    eps_level: int, counter: WorkCounter | None = None) -> torch.Tensor:
    """Epsilon-prediction MSE on mesh `level` for finest-mesh x0, eps drawn on `eps_level`, timesteps t."""
    x0_j = restrict(x0, level, "pool")
    eps_j = level_noise(eps, eps_level, level)
    x_t = scheduler.add_noise(x0_j, eps_j, t)
    if counter is not None:
        counter.add(x_t)
    return F.mse_loss(model(x_t, t).sample, eps_j)


def draw_loss(model, scheduler, x0: torch.Tensor, levels: tuple[int, ...], gen: torch.Generator,
              counter: WorkCounter | None = None) -> torch.Tensor:
    """One Draw: +l_j, or l_j - l_k on the same x0, t and (restricted) noise."""
    finest = levels[0]
    size = x0.shape[-1] // 2**finest
    eps = torch.randn(x0.shape[0], x0.shape[1], size, size, generator=gen)
    t = torch.randint(0, scheduler.config.num_train_timesteps, (x0.shape[0],), generator=gen)
    total = 0.0
    for sign, level in zip((1.0, -1.0), levels):
        total = total + sign * ddpm_level_loss(model, scheduler, x0, eps, t, level, eps_level=finest, counter=counter)
    return total


# --- training ---------------------------------------------------------------------------------
class DDPMSampler:
    """The DDPM's draws: `images(n)` picks n training images uniformly with replacement (generator
    'data'); `generator(purpose)` is seeded per purpose from the run seed ('noise': eps and t)."""

    def __init__(self, images: torch.Tensor, seed: int):
        self.data, self.seed = images, seed
        self._generators: dict[str, torch.Generator] = {}

    def generator(self, purpose: str) -> torch.Generator:
        if purpose not in self._generators:
            self._generators[purpose] = generator(self.seed, purpose)
        return self._generators[purpose]

    def images(self, n: int) -> torch.Tensor:
        return self.data[torch.randint(0, len(self.data), (n,), generator=self.generator("data"))]


class DDPMObjective:
    """The DDPM loss of one step in `Strategy.loss`'s shape, for the runner's `optimizer_step`."""

    @staticmethod
    def loss(model, scheduler, phase, sampler: DDPMSampler, counter: WorkCounter) -> torch.Tensor:
        """Sum over the phase's draws, in order, of `draw_loss` on `draw.batch` images (data, then noise)."""
        total = 0.0
        for draw in phase.draws:
            total = total + draw_loss(model, scheduler, sampler.images(draw.batch), draw.levels,
                                      sampler.generator("noise"), counter)
        return total


def ddpm_schedule(cfg: dict[str, Any], strategy: str) -> dict[str, Any]:
    """The strategy config of a run: fmsgd phases coarse -> fine, or sgd's total steps on the finest mesh."""
    iterations = list(cfg["fmsgd_iterations"]) if strategy == "fmsgd" else [0] * (cfg["levels"] - 1) + [cfg["sgd_iterations"]]
    if len(iterations) != cfg["levels"]:
        raise ValueError(f"fmsgd_iterations lists {len(iterations)} phases for {cfg['levels']} levels")
    return schedule_config(cfg["levels"], cfg["batch_size"], iterations, cfg["batch_growth"], cfg["phase_batch_growth"],
                           sgd_batch=cfg["sgd_batch"])


@dataclass
class TrainResult:
    model: nn.Module
    wu_executed: float
    wu_closed_form: Fraction
    seconds: float
    losses: list[float]


def train_ddpm(strategy: str, cfg: dict[str, Any], images: torch.Tensor) -> TrainResult:
    """Train a fresh UNet (seeded init) on `images` ([-1, 1], finest mesh) with strategy sgd or fmsgd."""
    if strategy not in ("sgd", "fmsgd"):
        raise ValueError(f"strategy must be 'sgd' or 'fmsgd', got {strategy!r}")
    phases = build_strategy(strategy, ddpm_schedule(cfg, strategy)).phases()
    model, scheduler = build_unet(cfg), build_scheduler(cfg)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg["lr"])
    sampler = DDPMSampler(images, cfg["seed"])
    counter = WorkCounter(images.shape[-2] * images.shape[-1])
    losses: list[float] = []
    model.train()
    start = time.perf_counter()
    for phase in phases:
        for _ in range(phase.iterations):
            loss, _ = optimizer_step(model, optimizer, DDPMObjective(), scheduler, phase, sampler=sampler,
                                     counter=counter)
            losses.append(loss)
    seconds = time.perf_counter() - start
    model.eval()
    return TrainResult(model, counter.value, schedule_wu(phases), seconds, losses)


@torch.no_grad()
def sample_ddpm(model, cfg: dict[str, Any], n: int, purpose: str = "sample") -> torch.Tensor:
    """n samples in [-1, 1] at the finest mesh: DDPM ancestral sampling on `inference_steps` steps."""
    scheduler = build_scheduler(cfg)
    scheduler.set_timesteps(cfg["inference_steps"])
    gen = generator(cfg["seed"], purpose)
    x = torch.randn(n, 1, cfg["image_size"], cfg["image_size"], generator=gen)
    for t in scheduler.timesteps:
        x = scheduler.step(model(x, t).sample, t, x, generator=gen).prev_sample
    return x.clamp(-1, 1)
