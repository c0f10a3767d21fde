"""DDPM trained single-scale and with Full-Multiscale-SGD (paper App. D.9, Figure 8): options, data, runs.

The paper trains a DDPM (Ho et al., 2020: epsilon-prediction loss) on MNIST with standard
convolutions, once plainly and once with Full-Multiscale-SGD (Algorithm 2), and shows sample grids
(ground truth | single scale | Full-Multiscale). It gives no architecture, budget or number. Here:

- Model, loss on several meshes, training by the repo's strategies (one step = the runner's
  `optimizer_step`) and sampling: `mfcbench.experiments.ddpm_train` (`READING` states the reading).
- Data (option `dataset`): MNIST when `<data_root>/prepared/mnist/<image_size>/` exists with its raw
  idx files (the labels) - the paper's data; otherwise (and with `dataset: digits`) scikit-learn's
  8x8 digits through the repo's `digits` dataset, upsampled to 32x32 (bilinear). Images scaled to
  [-1, 1]; labels in the same order (for the classifier). Every row names the dataset that ran.
- Beyond the paper, numbers per grid (`mfcbench.experiments.sample_scores`): a small seeded CNN digit
  classifier trained on the real training images gives the mean max-softmax confidence, the fraction
  of samples classified with confidence >= `confident` (0.9), and the Frechet distance between the
  classifier's penultimate features of the real training images (the reference) and of the `samples`
  generated images ("FD-digits", an FID analogue). The FD of a finite sample is biased upwards, so the
  floor is measured the same way: `samples` held-out real images (the ground-truth grid, never trained
  on by the DDPM or the classifier) against the same reference (measured on the digits: 45-70 at n=64,
  28-45 at n=128, 23-32 at n=256). Each of `seeds` (default 0, 1, 2) retrains the classifier and
  both DDPMs; the rows carry each seed's floor (`frechet_floor`).
- Options are `Option`s (OPTIONS): `check_options` finds every bad key or value of a profile's
  `ddpm.options` before any job runs.
- Files: `run_fig8(out_dir)` writes samples.pt and fig8.json; `mfcbench.figures.fig8` draws the grids
  and Figure 8 (the floors as a band) from them.

Every random draw comes from a torch.Generator seeded per purpose from the run seed (`seed_for`).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Callable

import torch

from ..core.atomic import torch_save, write_json
from ..core.optional import require
from ..core.options import INT_MIN1, NUMBER_MIN1, Option
from .ddpm_train import generator, sample_ddpm, train_ddpm
from .sample_scores import classifier_outputs, grid_scores, train_classifier

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
# `ddpm.options` is checked against these before any job runs (`check_options`). `samples` is the count of
# every FD and of its floor; a finite sample's FD is biased upwards and its floor narrows with n (the digits:
# 45-70 at n = 64, 28-45 at 128, 23-32 at 256), so it is 128 by default and 256 where a profile affords it.
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



# --- data -------------------------------------------------------------------------------------
def load_digits_split(split: str, image_size: int = 32, root: str = "data") -> tuple[torch.Tensor, torch.Tensor]:
    """(images in [-1, 1] of shape (N, 1, S, S), labels (N,)): the repo's `digits` dataset + sklearn labels."""
    require("sklearn.datasets", "harness")  # a missing package names its extra
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
    classifier_val_accuracy, status, seed_round (1: `seeds`; 2, 3, ...: added by the seed plan); with `out_dir`,
    writes samples.pt (every seed's grids) and fig8.json (the rows), which `mfcbench.figures.fig8.draw_fig8`
    draws (<run>.png of the first seed, figure8.png).

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
    """samples.pt (every seed's grids: seed -> run -> images in [-1, 1]) and fig8.json (rows, config,
    reading): what `mfcbench.figures.fig8.draw_fig8` draws from."""
    every = {seed: {run: x.clone() for run, x in by_run.items()} for seed, by_run in grids.items()}
    torch_save(every, out / "samples.pt")
    write_json(out / "fig8.json", {"rows": rows, "config": cfg, "reading": READING})
