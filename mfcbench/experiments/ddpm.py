"""DDPM trained single-scale and with Full-Multiscale-SGD (paper App. D.9, Figure 8).

The paper trains a DDPM (Ho et al., 2020: epsilon-prediction loss) on MNIST with standard
convolutions, once plainly and once with Full-Multiscale-SGD (Algorithm 2), and shows sample grids
(ground truth | single scale | Full-Multiscale). It gives no architecture, budget or number. Here:

- Model: diffusers `UNet2DModel` built from a config (no download), standard convolutions,
  `DDPMScheduler` with `train_timesteps` (1000) linear betas. The UNet is convolutional, so one
  model runs on the 32x32, 16x16 and 8x8 meshes (two down-samplings: 8 -> 4 -> 2).
- Data (option `dataset`): MNIST when `<data_root>/prepared/mnist/<image_size>/` exists with its raw
  idx files (the labels) - the paper's data; otherwise (and with `dataset: digits`) scikit-learn's
  8x8 digits through the repo's `digits` dataset, upsampled to 32x32 (bilinear). Images scaled to
  [-1, 1]; labels in the same order (for the classifier). Every row names the dataset that ran.
- Schedules: the repo's strategies. Single scale = `sgd` (one Draw on the finest mesh); Full-
  Multiscale = `fmsgd` (coarse-to-fine phases, warm start, Algorithm 1 telescoping draws inside a
  phase). #WU is counted by `WorkCounter` and priced in closed form by `schedule_wu`, as every cell.
- The noise and the timestep on a coarse mesh (`READING`): the clean image x0 is restricted to mesh
  j by 2^j x 2^j average pooling (the repo's `pool`); eps is drawn N(0, I) on the finest mesh of the
  draw and restricted to a coarser mesh k by the same pooling times 2^(k-j), which is again exactly
  N(0, I) there and keeps the two terms of a telescoping draw l_j - l_k coupled (same x0, same t,
  same noise seen at two resolutions); the timestep t and the scheduler's alphas are the same on
  every mesh. The loss on each mesh is mean((eps_theta(x_t, t) - eps)^2).
- Sampling (stated reduction): DDPM ancestral sampling with `DDPMScheduler.set_timesteps(
  inference_steps)` (100 of the 1000 training steps by default), at 32x32.
- Beyond the paper, numbers per grid: a small seeded CNN digit classifier trained on the real
  training images gives the mean max-softmax confidence, the fraction of samples classified with
  confidence >= `confident` (0.9), and the Frechet distance between the classifier's penultimate
  features of the real training images (the reference) and of the `samples` generated images
  ("FD-digits", an FID analogue). The FD of a finite sample is biased upwards, so the floor is
  measured the same way: `samples` held-out real images (the ground-truth grid, never trained on by
  the DDPM or the classifier) against the same reference (measured on the digits: 45-70 at n=64,
  28-45 at n=128, 23-32 at n=256). Each of `seeds` (default 0, 1, 2) retrains the classifier and
  both DDPMs; the rows carry each seed's floor (`frechet_floor`) and the figure draws the floors as
  a band.
- Options are `Option`s (OPTIONS): `check_options` finds every bad key or value of a profile's
  `ddpm.options` before any job runs.

Every random draw comes from a torch.Generator seeded per purpose from the run seed (`seed_for`).
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn
from torch.nn import functional as F

from ..core.restrict import restrict
from ..strategies.sampling import seed_for
from ..strategies import build_strategy
from ..core.workunits import WorkCounter, schedule_wu

from ..core.atomic import atomic_path, torch_save, write_json
from ..core.options import INT_MIN1, NUMBER_MIN1, Option

READING = (
    "DDPM on a coarse mesh: x0 restricted by average pooling; eps drawn N(0,I) on the draw's finest "
    "mesh and restricted by pooling times 2 per level (exactly N(0,I), coupled across a telescoping "
    "pair); same timestep t and same scheduler alphas on every mesh; epsilon-prediction MSE. "
    "Samples: DDPMScheduler with 1000 training timesteps sampled on a 100-step subsequence. "
    "FD floor: n held-out real images against the same reference features as the n samples."
)

_INT0 = {"type": "integer", "minimum": 0}
_ITERS = {"type": "array", "minItems": 1, "items": _INT0}
# Every option of the experiment, declared once (default, JSON-schema type, help): a profile's
# `ddpm.options` is checked against these before any job runs (`check_options`). Sizes and steps of the
# embedded default: one seed measured 133 s CPU at 64 samples (1 torch thread); sampling 64 more images per
# run costs about 2 x 35 s on this 2-core machine (loaded). The digits' FD floor (held-out vs training
# images, measured): 45-70 at n = 64, 28-45 at 128, 23-32 at 256, so `samples` 128 by default (about 3 min
# a seed, 3 seeds about 9 CPU-min, estimated) and 256 in the converged_extended profile.
OPTIONS: dict[str, Option] = {
    "dataset": Option("auto", {"enum": ["auto", "mnist", "digits"]},
                      "auto = MNIST when <data_root>/prepared/mnist/<image_size>/ and its raw labels exist, "
                      "else scikit-learn's digits; the rows' `dataset` column says which ran"),
    "image_size": Option(32, {"type": "integer", "minimum": 4}, "finest mesh; levels 3 -> meshes 32, 16, 8"),
    "levels": Option(3, INT_MIN1, "meshes of Full-Multiscale (coarsest = image_size / 2**(levels-1))"),
    "block_out_channels": Option([16, 32, 64], {"type": "array", "minItems": 1, "items": INT_MIN1},
                                 "UNet2DModel channels per block, DownBlock2D/UpBlock2D (~0.64M parameters)"),
    "layers_per_block": Option(1, INT_MIN1, "UNet2DModel layers per block"),
    "norm_num_groups": Option(8, INT_MIN1, "GroupNorm groups (must divide every block's channels)"),
    "train_timesteps": Option(1000, INT_MIN1, "DDPMScheduler training timesteps (linear betas)"),
    "inference_steps": Option(100, INT_MIN1, "DDPM ancestral sampling steps (a subsequence of train_timesteps)"),
    "batch_size": Option(16, INT_MIN1, "N0, the finest-level batch of fmsgd"),
    "batch_growth": Option(2, NUMBER_MIN1, "N_j = N0 * batch_growth**j"),
    "phase_batch_growth": Option(2, NUMBER_MIN1, "fmsgd phase r batch N0 * growth**r (App. C eq. 48)"),
    "fmsgd_iterations": Option([400, 200, 100], _ITERS,
                               "Full-Multiscale steps per phase, coarse -> fine (App. C halving): 7,800 #WU"),
    "sgd_iterations": Option(600, INT_MIN1, "single-scale steps at sgd_batch on the finest mesh: 9,600 #WU"),
    "sgd_batch": Option(16, INT_MIN1, "single-scale batch"),
    "lr": Option(2e-3, {"type": "number", "exclusiveMinimum": 0}, "Adam lr, state carried across fmsgd phases"),
    "samples": Option(128, INT_MIN1, "images per grid and per FD (generated, and held-out real for the floor); at "
                                     "most the held-out split (digits: 359, MNIST: 10,000)"),
    "train_limit": Option(None, {"type": ["integer", "null"], "minimum": 1},
                          "use only the first N training images (null: all; digits 1,438, MNIST 60,000)"),
    "classifier_epochs": Option(8, INT_MIN1, "epochs of the seeded digit classifier (FD features, confidence)"),
    "confident": Option(0.9, {"type": "number", "minimum": 0, "maximum": 1}, "confidence threshold of a sample"),
    "seeds": Option([0, 1, 2], {"type": "array", "minItems": 1, "uniqueItems": True, "items": _INT0},
                    "run seeds; each seeds the classifier, data order, noise, initialisation and sampling"),
}
DEFAULTS: dict[str, Any] = {name: opt.default for name, opt in OPTIONS.items()}

RUNS = (("single_scale", "sgd"), ("full_multiscale", "fmsgd"))


def options_schema() -> dict:
    """JSON schema of `ddpm.options` (every key optional, no other key), from OPTIONS."""
    return {"type": "object", "additionalProperties": False,
            "properties": {name: opt.json_schema() for name, opt in OPTIONS.items()}}


def check_options(options: Any) -> list[str]:
    """Every problem of a `ddpm.options` mapping, one line each naming the key and what is allowed
    (unknown keys, types, ranges, the schedule's shape); empty when the experiment can start."""
    from ..train.config import schema_error_message, strict_validator

    if not isinstance(options, dict):
        return [f"ddpm.options must be a mapping, got {options!r}"]
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        return [f"ddpm.options: unknown option(s) {', '.join(map(repr, unknown))}; valid options: {', '.join(OPTIONS)}"]
    errors = sorted(strict_validator(options_schema()).iter_errors(dict(options)), key=lambda e: list(e.path))
    problems = [schema_error_message(e).replace("config error at ", "ddpm.options/") for e in errors]
    if problems:
        return problems
    cfg = {**DEFAULTS, **options}
    if len(cfg["fmsgd_iterations"]) != cfg["levels"]:
        problems.append(f"ddpm.options: fmsgd_iterations lists {len(cfg['fmsgd_iterations'])} phases for "
                        f"{cfg['levels']} levels; give one per level, coarse -> fine")
    halvings = len(cfg["block_out_channels"]) - 1 + cfg["levels"] - 1
    if cfg["image_size"] % 2**halvings:
        problems.append(f"ddpm.options: image_size {cfg['image_size']} must halve {halvings} times "
                        f"({len(cfg['block_out_channels']) - 1} UNet down-samplings on the coarsest of "
                        f"{cfg['levels']} meshes)")
    bad = [c for c in cfg["block_out_channels"] if c % cfg["norm_num_groups"]]
    if bad:
        problems.append(f"ddpm.options: norm_num_groups {cfg['norm_num_groups']} does not divide "
                        f"block_out_channels {bad}")
    return problems


def config_with(**overrides: Any) -> dict[str, Any]:
    """DEFAULTS overlaid with `overrides`, checked (ValueError naming every problem). `seed`, the seed of
    one run, is the first of `seeds` (run_fig8 sets it per seed)."""
    problems = check_options(overrides)
    if problems:
        raise ValueError("; ".join(problems))
    cfg = copy.deepcopy({**DEFAULTS, **overrides})
    return {**cfg, "seed": cfg["seeds"][0]}


def generator(seed: int, purpose: str) -> torch.Generator:
    return torch.Generator().manual_seed(seed_for(seed, purpose))


# --- model, scheduler, data -------------------------------------------------------------------
def build_unet(cfg: dict[str, Any]):
    """A small diffusers UNet2DModel (standard convolutions), initialised from seed_for(seed, 'init')."""
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
    from diffusers import DDPMScheduler

    return DDPMScheduler(num_train_timesteps=cfg["train_timesteps"], beta_schedule="linear", clip_sample=True)


def load_digits_split(split: str, image_size: int = 32, root: str = "data") -> tuple[torch.Tensor, torch.Tensor]:
    """(images in [-1, 1] of shape (N, 1, S, S), labels (N,)): the repo's `digits` dataset + sklearn labels."""
    from sklearn.datasets import load_digits

    from ..data import load_split

    images = load_split("digits", split, image_size, root)
    target = torch.from_numpy(load_digits().target).long()
    # digits splits by position in sklearn's fixed order: train first, val last
    labels = target[: len(images)] if split == "train" else target[len(target) - len(images):]
    if len(labels) != len(images):
        raise ValueError(f"digits {split}: {len(images)} images but {len(labels)} labels")
    return images.mul(2).sub(1), labels


def mnist_unavailable(image_size: int, root: str | Path) -> str | None:
    """Why MNIST cannot run here (not prepared at image_size, or its raw label files gone), or None."""
    from ..data import prepared_dir
    from ..data.store import is_prepared

    directory = prepared_dir(root, "mnist", image_size)
    if not is_prepared(directory):
        return f"{directory} is not prepared (python -m mfcbench prepare --dataset mnist --image-size {image_size})"
    raw = Path(root) / "raw" / "mnist" / "MNIST" / "raw"
    names = [f"{part}-{kind}" for part in ("train", "t10k") for kind in ("images-idx3-ubyte", "labels-idx1-ubyte")]
    missing = [n for n in names if not (raw / n).is_file()]  # torchvision's MNIST reads the labels from these
    return f"the raw MNIST files {missing} (its labels) are missing from {raw}" if missing else None


def load_mnist_split(split: str, image_size: int = 32, root: str = "data") -> tuple[torch.Tensor, torch.Tensor]:
    """Prepared MNIST (train: the 60,000 training digits, val: the 10,000 test digits, or the first N of
    each as prepared with limits) in [-1, 1], with torchvision's labels in the same order."""
    from torchvision.datasets import MNIST

    from ..data import load_split

    images = load_split("mnist", split, image_size, root)
    labels = MNIST(str(Path(root) / "raw" / "mnist"), train=(split == "train"), download=False).targets.long()
    if len(labels) < len(images):
        raise ValueError(f"mnist {split}: {len(images)} prepared images but {len(labels)} labels")
    return images.mul(2).sub(1), labels[: len(images)]


def choose_dataset(cfg: dict[str, Any], root: str | Path) -> tuple[str, str]:
    """(dataset, why): MNIST when asked or (auto) when prepared with its labels, else the digits."""
    why_not = mnist_unavailable(cfg["image_size"], root)
    if cfg["dataset"] == "mnist" and why_not:
        raise ValueError(f"ddpm.options.dataset is mnist but {why_not}; prepare it or use dataset: auto")
    if cfg["dataset"] == "digits" or why_not:
        return "digits", "asked for" if cfg["dataset"] == "digits" else f"MNIST not used: {why_not}"
    return "mnist", "prepared MNIST found" if cfg["dataset"] == "auto" else "asked for"


def load_data(cfg: dict[str, Any], root: str | Path) -> dict[str, Any]:
    """The training images and labels (first train_limit), the held-out split, and which dataset."""
    name, why = choose_dataset(cfg, root)
    load = load_mnist_split if name == "mnist" else load_digits_split
    train_x, train_y = load("train", cfg["image_size"], str(root))
    val_x, val_y = load("val", cfg["image_size"], str(root))
    if cfg["samples"] > len(val_x):
        raise ValueError(f"ddpm.options.samples {cfg['samples']} exceeds the {len(val_x)} held-out {name} images "
                         f"that measure the FD floor at the same count; use at most {len(val_x)}")
    limit = cfg["train_limit"]
    return {"dataset": name, "why": why, "train": (train_x[:limit], train_y[:limit]), "val": (val_x, val_y)}


# --- one DDPM loss on several meshes ----------------------------------------------------------
def level_noise(eps: torch.Tensor, from_level: int, to_level: int) -> torch.Tensor:
    """eps (N(0,I) on mesh `from_level`) seen on mesh `to_level`: pooled, times 2 per level: N(0,I)."""
    steps = to_level - from_level
    return eps if steps == 0 else restrict(eps, steps, "pool") * 2**steps


def ddpm_level_loss(model, scheduler, x0: torch.Tensor, eps: torch.Tensor, t: torch.Tensor, level: int,
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
        total = total + sign * ddpm_level_loss(model, scheduler, x0, eps, t, level, finest, counter)
    return total


# --- training ---------------------------------------------------------------------------------
def strategy_config(cfg: dict[str, Any], strategy: str) -> dict[str, Any]:
    """The repo strategy config of a run: fmsgd phases coarse -> fine, or sgd's total steps."""
    iterations = list(cfg["fmsgd_iterations"]) if strategy == "fmsgd" else [0] * (cfg["levels"] - 1) + [cfg["sgd_iterations"]]
    if len(iterations) != cfg["levels"]:
        raise ValueError(f"fmsgd_iterations lists {len(iterations)} phases for {cfg['levels']} levels")
    return {"levels": cfg["levels"], "batch_size": cfg["batch_size"], "batch_growth": cfg["batch_growth"],
            "phase_batch_growth": cfg["phase_batch_growth"], "iterations": iterations, "level_batches": None,
            "sgd_batch": cfg["sgd_batch"], "restriction": "pool", "optimizer_state": "carry"}


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
    phases = build_strategy(strategy, strategy_config(cfg, strategy)).phases()
    model, scheduler = build_unet(cfg), build_scheduler(cfg)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg["lr"])
    data_gen, noise_gen = generator(cfg["seed"], "data"), generator(cfg["seed"], "noise")
    counter = WorkCounter(images.shape[-2] * images.shape[-1])
    losses: list[float] = []
    model.train()
    start = time.perf_counter()
    for phase in phases:
        for _ in range(phase.iterations):
            loss = 0.0
            for draw in phase.draws:
                x0 = images[torch.randint(0, len(images), (draw.batch,), generator=data_gen)]
                loss = loss + draw_loss(model, scheduler, x0, draw.levels, noise_gen, counter)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            losses.append(float(loss.detach()))
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


# --- the digit classifier and the numbers per grid --------------------------------------------
class DigitClassifier(nn.Module):
    """Small CNN on [-1, 1] 32x32 digits; `features` is the 64-d penultimate layer."""

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                                  nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(4),
                                  nn.Flatten(), nn.Linear(32 * 16, 64), nn.ReLU())
        self.head = nn.Linear(64, 10)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


def train_classifier(images: torch.Tensor, labels: torch.Tensor, seed: int, epochs: int = 8,
                     batch: int = 64, lr: float = 3e-3) -> DigitClassifier:
    """Seeded Adam training of DigitClassifier (init, order from seed_for(seed, 'classifier*'))."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed_for(seed, "classifier_init"))
        clf = DigitClassifier()
    gen = generator(seed, "classifier_data")
    optimizer = torch.optim.Adam(clf.parameters(), lr=lr)
    clf.train()
    for _ in range(epochs):
        for idx in torch.randperm(len(images), generator=gen).split(batch):
            loss = F.cross_entropy(clf(images[idx]), labels[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    return clf.eval()


@torch.no_grad()
def classifier_outputs(clf: DigitClassifier, images: torch.Tensor, batch: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    """(features (N, 64) float64, softmax probabilities (N, 10))."""
    feats = torch.cat([clf.features(chunk) for chunk in images.split(batch)])
    return feats.double(), clf.head(feats).softmax(-1)


def frechet_distance(a: torch.Tensor, b: torch.Tensor) -> float:
    """||mu_a - mu_b||^2 + tr(Sa + Sb - 2 (Sa^1/2 Sb Sa^1/2)^1/2) of two (N, D) feature sets (float64)."""
    a, b = a.double(), b.double()
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = torch.cov(a.T), torch.cov(b.T)
    vals, vecs = torch.linalg.eigh(cov_a)
    root_a = vecs @ torch.diag(vals.clamp_min(0).sqrt()) @ vecs.T
    middle = root_a @ cov_b @ root_a
    trace_root = torch.linalg.eigvalsh((middle + middle.T) / 2).clamp_min(0).sqrt().sum()
    value = (mu_a - mu_b).pow(2).sum() + cov_a.trace() + cov_b.trace() - 2 * trace_root
    return max(0.0, float(value))


def grid_scores(clf: DigitClassifier, real_features: torch.Tensor, samples: torch.Tensor,
                confident: float = 0.9) -> dict[str, float]:
    """The numbers of one sample grid: mean confidence, confident fraction, Frechet distance to real."""
    feats, probs = classifier_outputs(clf, samples)
    top = probs.max(-1)
    counts = torch.bincount(top.indices, minlength=10).tolist()
    return {"mean_confidence": float(top.values.mean()), "confident_fraction": float((top.values >= confident).float().mean()),
            "frechet_distance": frechet_distance(real_features, feats), "class_counts": " ".join(map(str, counts))}


# --- Figure 8 ---------------------------------------------------------------------------------
def save_grid_png(path: str | Path, images: torch.Tensor, nrow: int = 8) -> None:
    """Atomically save images in [-1, 1] as one PNG grid."""
    from torchvision.utils import save_image

    with atomic_path(path) as tmp:
        save_image(images.add(1).div(2), tmp, nrow=nrow, padding=2, pad_value=1.0, format="PNG")


PANEL_TITLES = {"ground_truth": "Ground truth (held-out {dataset})", "single_scale": "Single scale (SGD)",
                "full_multiscale": "Full-Multiscale (FMSGD)"}
SHOWN = 64  # images per panel of figure8.png (the PNG per run holds all n; every number uses all n)


def panel_title(row: dict[str, Any]) -> str:
    """A panel's title: its name, then #WU and training seconds (trained runs), then the grid's numbers
    (the ground truth's Frechet distance is the same-distribution floor at the same count)."""
    lines = [PANEL_TITLES.get(row["run"], row["run"]).format(dataset=row.get("dataset", "digits"))
             + f", seed {row.get('seed', '?')}"]
    if row["run"] != "ground_truth":
        lines.append(f"#WU {row['wu_executed']:,.6g}   training {row['train_seconds']:.1f} s")
    lines.append(f"classifier confidence {row['mean_confidence']:.3f} ({row['confident_fraction']:.0%} >= "
                 f"{row.get('confident', 0.9):g})")
    floor = " = the FD floor" if row["run"] == "ground_truth" else ""
    lines.append(f"Frechet distance {row['frechet_distance']:.3g}{floor} (n={row.get('n_samples', '?')})")
    return "\n".join(lines)


def draw_fd_panel(ax, rows: list[dict]) -> None:
    """Frechet distance per seed of each trained run (points), against the floor: the band spans the
    seeds' floors (n held-out real images vs the same reference), the line is their mean."""
    floors = [r["frechet_distance"] for r in rows if r["run"] == "ground_truth"]
    if floors:
        ax.axhspan(min(floors), max(floors), color="0.85", label=f"same-distribution floor ({len(floors)} seeds)")
        ax.axhline(sum(floors) / len(floors), color="0.5", lw=1)
    highest = max(floors, default=0.0)
    for x, (run, _) in enumerate(RUNS):  # the x tick names the run: no legend entry over the points
        values = [r["frechet_distance"] for r in rows if r["run"] == run]
        ax.plot([x] * len(values), values, "o", ms=6, alpha=0.8)
        highest = max([highest, *values])
    ax.set_xticks(range(len(RUNS)), [PANEL_TITLES[run].split(" (")[0] + " (per seed)" for run, _ in RUNS])
    ax.set_xlim(-0.6, len(RUNS) - 0.4)
    ax.set_ylim(0, highest * 1.08 or 1.0)
    n = rows[0].get("n_samples", "?") if rows else "?"
    ax.set_ylabel(f"Frechet distance of classifier features (n={n})")
    ax.set_title("Frechet distance per seed vs the floor", fontsize=10)
    if floors:  # below the axes, off the data
        ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.08), frameon=False)


def draw_figure8(grids: dict[str, torch.Tensor], path: str | Path, rows: list[dict] | None = None,
                 nrow: int = 8) -> None:
    """Figure 8: ground truth | single scale | Full-Multiscale sample grids (the first SHOWN of the first
    seed) titled with their numbers, and, given `rows` (all seeds, as run_fig8 returns them), a panel of
    the Frechet distance per seed against the same-distribution floor band."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from torchvision.utils import make_grid

    first = rows[0]["seed"] if rows else None
    by_run = {row["run"]: row for row in rows or [] if row.get("seed") == first}
    panels = {run: make_grid(images[:SHOWN].add(1).div(2).clamp(0, 1), nrow=nrow, padding=2, pad_value=1.0)
              for run, images in grids.items()}
    aspect = max(p.shape[1] / p.shape[2] for p in panels.values())
    count = len(panels) + bool(rows)
    fig, axes = plt.subplots(1, count, figsize=(4.6 * count, 4.6 * aspect + 1.3), squeeze=False)
    for ax, (run, panel) in zip(axes[0], panels.items()):
        ax.imshow(panel[0].numpy(), cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
        ax.set_title(panel_title(by_run[run]) if run in by_run else PANEL_TITLES.get(run, run), fontsize=10)
        ax.axis("off")
    if rows:
        draw_fd_panel(axes[0][-1], rows)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)


def run_seed(cfg: dict[str, Any], data: dict[str, Any], seed: int) -> tuple[list[dict], dict[str, torch.Tensor]]:
    """One seed: a classifier, the ground truth (n held-out real images: the floor), both DDPM runs."""
    cfg = {**cfg, "seed": seed}
    (train_x, train_y), (val_x, val_y) = data["train"], data["val"]
    clf = train_classifier(train_x, train_y, seed, cfg["classifier_epochs"])
    real_feats, _ = classifier_outputs(clf, train_x)  # the reference of every FD of this seed
    val_accuracy = float((classifier_outputs(clf, val_x)[1].argmax(-1) == val_y).float().mean())
    n = cfg["samples"]
    pick = torch.randperm(len(val_x), generator=generator(seed, "ground_truth"))[:n]
    grids = {"ground_truth": val_x[pick]}
    rows = [{"run": "ground_truth", "strategy": "", "wu_executed": 0.0, "wu_closed_form": 0.0, "train_seconds": 0.0,
             "final_loss": float("nan")}]
    for run, strategy in RUNS:
        result = train_ddpm(strategy, cfg, train_x)
        grids[run] = sample_ddpm(result.model, cfg, n)
        tail = result.losses[-max(1, len(result.losses) // 20):]
        rows.append({"run": run, "strategy": strategy, "wu_executed": result.wu_executed,
                     "wu_closed_form": float(result.wu_closed_form), "train_seconds": round(result.seconds, 2),
                     "final_loss": sum(tail) / len(tail)})
    for row in rows:
        row.update(n_samples=n, n_reference=len(train_x), classifier_val_accuracy=val_accuracy, status="OK",
                   seed=seed, dataset=data["dataset"], confident=cfg["confident"],
                   **grid_scores(clf, real_feats, grids[row["run"]], cfg["confident"]))
    for row in rows:
        row["frechet_floor"] = rows[0]["frechet_distance"]
    return rows, grids


def run_fig8(out_dir: str | Path | None = None, root: str = "data",
             more_seeds: Callable[[list[dict[str, Any]]], tuple[list[int], str]] | None = None,
             **overrides: Any) -> list[dict[str, Any]]:
    """App. D.9 / Figure 8: per seed of `seeds`, rows for ground truth, single scale and Full-Multiscale.

    Returns one dict per seed and run: run, strategy, seed, dataset (mnist or digits), n_samples,
    n_reference, mean_confidence, confident_fraction, frechet_distance, frechet_floor (that seed's
    ground-truth FD: n held-out real images against the same reference, the same-distribution floor
    at the same count), class_counts, wu_executed, wu_closed_form, train_seconds, final_loss,
    classifier_val_accuracy, status, seed_round (1: `seeds`; 2, 3, ...: added by the seed plan); with `out_dir`, writes <run>.png
    (first seed), samples.pt (every seed), figure8.png, fig8.json.

    `more_seeds` (a seed plan; the CLI builds it from the claim's statistics) sees the rows after each round
    and returns the seeds to add and why; they run as the next round, until it adds none (decided, or its
    cap reached), and every row carries every round's reason.
    """
    cfg = config_with(**overrides)
    data = load_data(cfg, root)
    print(f"Figure 8 on {data['dataset']} ({data['why']}), seeds {cfg['seeds']}, {cfg['samples']} samples each")
    rows: list[dict[str, Any]] = []
    grids: dict[int, dict[str, torch.Tensor]] = {}

    def run_round(seeds: list[int], round_no: int) -> None:
        for seed in seeds:
            seed_rows, grids[seed] = run_seed(cfg, data, seed)
            rows.extend({**row, "seed_round": round_no} for row in seed_rows)

    run_round(cfg["seeds"], 1)
    reason = _plan_rounds(more_seeds, rows, grids, run_round) if more_seeds is not None else ""
    for row in rows:
        row["seed_reason"] = reason
    if out_dir is not None:
        _save_fig8(Path(out_dir), grids, rows, {**cfg, "seeds_run": sorted(grids), "dataset_used": data["dataset"],
                                                "dataset_why": data["why"]})
    return rows


def _plan_rounds(more_seeds: Callable, rows: list[dict[str, Any]], grids: dict, run_round: Callable) -> str:
    """Asks the seed plan after every round and runs the seeds it adds as the next round, until it adds
    none (the claim decided, no power calculation, or the cap reached); returns every round's reason."""
    reasons, round_no = [], 1
    while True:
        added, reason = more_seeds(rows)
        added = [int(s) for s in added if s not in grids]
        reasons.append(reason)
        print(f"Figure 8 seed plan after round {round_no}: {reason}" + (f"; running seeds {added}" if added else ""),
              flush=True)
        if not added:
            return "; then ".join(reasons)
        round_no += 1
        run_round(added, round_no)


def added_seeds(seeds: list[int], target: int) -> list[int]:
    """The seeds after the largest of `seeds` that bring their count to `target`."""
    start = max(seeds, default=-1) + 1
    return list(range(start, start + max(0, target - len(seeds))))


def _save_fig8(out: Path, grids: dict[int, dict[str, torch.Tensor]], rows: list[dict], cfg: dict[str, Any]) -> None:
    first = grids[cfg["seeds"][0]]
    for run, images in first.items():
        save_grid_png(out / f"{run}.png", images, nrow=16)
    draw_figure8(first, out / "figure8.png", rows)
    every = {seed: {run: x.clone() for run, x in by_run.items()} for seed, by_run in grids.items()}
    torch_save(every, out / "samples.pt")
    write_json(out / "fig8.json", {"rows": rows, "config": cfg, "reading": READING})
