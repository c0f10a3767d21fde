"""DDPM trained single-scale and with Full-Multiscale-SGD (paper App. D.9, Figure 8).

The paper trains a DDPM (Ho et al., 2020: epsilon-prediction loss) on MNIST with standard
convolutions, once plainly and once with Full-Multiscale-SGD (Algorithm 2), and shows sample grids
(ground truth | single scale | Full-Multiscale). It gives no architecture, budget or number. Here:

- Model: diffusers `UNet2DModel` built from a config (no download), standard convolutions,
  `DDPMScheduler` with `train_timesteps` (1000) linear betas. The UNet is convolutional, so one
  model runs on the 32x32, 16x16 and 8x8 meshes (two down-samplings: 8 -> 4 -> 2).
- Data (embedded default): scikit-learn's 8x8 digits through the repo's `digits` dataset, upsampled
  to 32x32 (bilinear) and scaled to [-1, 1]; labels from sklearn in the same order (the classifier).
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
- Beyond the paper, one number per grid: a small seeded CNN digit classifier trained on the real
  training digits gives the mean max-softmax confidence, the fraction of samples classified with
  confidence >= `confident` (0.9), and the Frechet distance between the classifier's penultimate
  features of the real training digits and of the samples ("FD-digits", an FID analogue).

Every random draw comes from a torch.Generator seeded per purpose from the run seed (`seed_for`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from ..core.restrict import restrict
from ..strategies.sampling import seed_for
from ..strategies import build_strategy
from ..core.workunits import WorkCounter, schedule_wu

from ..core.atomic import atomic_path, torch_save, write_json

READING = (
    "DDPM on a coarse mesh: x0 restricted by average pooling; eps drawn N(0,I) on the draw's finest "
    "mesh and restricted by pooling times 2 per level (exactly N(0,I), coupled across a telescoping "
    "pair); same timestep t and same scheduler alphas on every mesh; epsilon-prediction MSE. "
    "Samples: DDPMScheduler with 1000 training timesteps sampled on a 100-step subsequence."
)

# Every size and step count of the embedded default (measured: 133 s CPU, 2:18 wall, 1 torch thread).
DEFAULTS: dict[str, Any] = {
    "image_size": 32,  # finest mesh; levels 3 -> meshes 32, 16, 8
    "levels": 3,
    "block_out_channels": (16, 32, 64),  # UNet2DModel, DownBlock2D/UpBlock2D, ~0.64M parameters
    "layers_per_block": 1,
    "norm_num_groups": 8,
    "train_timesteps": 1000,
    "inference_steps": 100,
    "batch_size": 16,  # N0, the finest-level batch of fmsgd
    "batch_growth": 2,  # N_j = N0 * 2**j
    "phase_batch_growth": 2,  # fmsgd phase r batch N0 * 2**r (App. C eq. 48)
    "fmsgd_iterations": (400, 200, 100),  # per phase, coarse -> fine (App. C halving): 7,800 #WU
    "sgd_iterations": 600,  # single scale, batch sgd_batch on 32x32: 9,600 #WU (executed = closed form)
    "sgd_batch": 16,
    "lr": 2e-3,  # Adam, state carried across fmsgd phases
    "samples": 64,  # images per grid
    "train_limit": None,  # use only the first N training digits (None: all 1,438); tests use fewer
    "classifier_epochs": 8,
    "confident": 0.9,
    "seed": 0,
}

RUNS = (("single_scale", "sgd"), ("full_multiscale", "fmsgd"))


def config_with(**overrides: Any) -> dict[str, Any]:
    """DEFAULTS overlaid with `overrides`; unknown keys raise listing the valid ones."""
    unknown = sorted(set(overrides) - set(DEFAULTS))
    if unknown:
        raise ValueError(f"unknown DDPM option(s) {unknown}; valid options: {', '.join(sorted(DEFAULTS))}")
    return {**DEFAULTS, **overrides}


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


PANEL_TITLES = {"ground_truth": "Ground truth (validation digits)", "single_scale": "Single scale (SGD)",
                "full_multiscale": "Full-Multiscale (FMSGD)"}


def panel_title(row: dict[str, Any]) -> str:
    """A panel's title: its name, then #WU and training seconds (trained runs), then the grid's numbers."""
    lines = [PANEL_TITLES.get(row["run"], row["run"])]
    if row["run"] != "ground_truth":
        lines.append(f"#WU {row['wu_executed']:,.6g}   training {row['train_seconds']:.1f} s")
    lines.append(f"classifier confidence {row['mean_confidence']:.3f} ({row['confident_fraction']:.0%} >= "
                 f"{row.get('confident', 0.9):g})")
    lines.append(f"Frechet distance (digit features) {row['frechet_distance']:.3g}")
    return "\n".join(lines)


def draw_figure8(grids: dict[str, torch.Tensor], path: str | Path, rows: list[dict] | None = None,
                 nrow: int = 8) -> None:
    """Figure 8: ground truth | single scale | Full-Multiscale sample grids side by side, one PNG,
    each titled with its numbers (`rows`, as run_fig8 returns them) when given."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from torchvision.utils import make_grid

    by_run = {row["run"]: row for row in rows or []}
    panels = {run: make_grid(images.add(1).div(2).clamp(0, 1), nrow=nrow, padding=2, pad_value=1.0)
              for run, images in grids.items()}
    aspect = max(p.shape[1] / p.shape[2] for p in panels.values())
    fig, axes = plt.subplots(1, len(panels), figsize=(4.6 * len(panels), 4.6 * aspect + 1.3), squeeze=False)
    for ax, (run, panel) in zip(axes[0], panels.items()):
        ax.imshow(panel[0].numpy(), cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
        ax.set_title(panel_title(by_run[run]) if run in by_run else PANEL_TITLES.get(run, run), fontsize=10)
        ax.axis("off")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)


def run_fig8(out_dir: str | Path | None = None, root: str = "data", **overrides: Any) -> list[dict[str, Any]]:
    """App. D.9 / Figure 8: rows for ground truth, single scale and Full-Multiscale, with grids saved.

    Returns one dict per run: run, strategy, n_samples, mean_confidence, confident_fraction,
    frechet_distance, class_counts, wu_executed, wu_closed_form, train_seconds, final_loss,
    classifier_val_accuracy, status; with `out_dir`, writes <run>.png, samples.pt, figure8.png, fig8.json.
    """
    cfg = config_with(**overrides)
    train_x, train_y = load_digits_split("train", cfg["image_size"], root)
    train_x, train_y = train_x[: cfg["train_limit"]], train_y[: cfg["train_limit"]]
    val_x, val_y = load_digits_split("val", cfg["image_size"], root)
    clf = train_classifier(train_x, train_y, cfg["seed"], cfg["classifier_epochs"])
    real_feats, _ = classifier_outputs(clf, train_x)
    val_accuracy = float((classifier_outputs(clf, val_x)[1].argmax(-1) == val_y).float().mean())
    n = min(cfg["samples"], len(val_x))
    pick = torch.randperm(len(val_x), generator=generator(cfg["seed"], "ground_truth"))[:n]
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
        row.update(n_samples=n, classifier_val_accuracy=val_accuracy, status="OK", seed=cfg["seed"],
                   confident=cfg["confident"],
                   **grid_scores(clf, real_feats, grids[row["run"]], cfg["confident"]))
    if out_dir is not None:
        _save_fig8(Path(out_dir), grids, rows, cfg)
    return rows


def _save_fig8(out: Path, grids: dict[str, torch.Tensor], rows: list[dict], cfg: dict[str, Any]) -> None:
    for run, images in grids.items():
        save_grid_png(out / f"{run}.png", images)
    draw_figure8(grids, out / "figure8.png", rows)
    torch_save({run: images.clone() for run, images in grids.items()}, out / "samples.pt")
    write_json(out / "fig8.json", {"rows": rows, "config": cfg, "reading": READING})
