"""Segment Anything with mesh-free convolutions (paper App. D.5, Table 9, Figure 6).

The paper replaces every 3x3 convolution of SAM (ViT-B) by an MFC, trains only the MFC parameters
"on a single image" from SA-1B with the rest frozen, and compares SAM and MFC-SAM on 1000 COCO and
ADE20K validation images with `SamAutomaticMaskGenerator(points_per_side=64)`: mean predicted IoU
and mean stability score (Table 9). ViT-B SAM has exactly one 3x3 convolution,
`image_encoder.neck.2` (256 -> 256, zero padding 1, no bias); the 16x16 patch embedding and the
decoder's 2x2 / 1x1 ones stay.

Our reading (`READING`), since the paper names no loss:
- Each MFC is the Lemma 4 construction (App. B.3; the layer `mfcbench.layers.lemma4.Lemma4MFC`): a
  linear combination of m MFC filters, y = sum_k e_k * (C_k x), with the filters e_k (tau, alpha,
  gamma; the repo's Lemma 4 basis) shared across channels and C_k (Cout x Cin) channel maps. It is
  initialised by the least-squares fit (ridge-regularised, Eq. 37) of the impulse responses of every
  (out, in) 3x3 kernel of the conv it replaces (`fit_kernels`); all of e_k's parameters and the C_k
  are trainable.
- The MFC works on the image zero-padded by `pad` pixels and cropped back (zero boundary, as the
  conv's padding=1); its mesh spacing h = 1/mesh with mesh = the conv's mesh (64 in ViT-B).
- "Trained on one image" = distillation: the MFC parameters are trained (Adam, full batch) so that
  the image encoder's neck output matches the frozen original SAM's neck output on the training
  image(s) (`fit_mfc_neck`); nothing else changes. The training image is excluded from evaluation.

No weights ship and none are downloaded: Table 9 needs `sam_vit_b_01ec64.pth` (set sam.checkpoint)
and image folders (COCO val2017, ADE20K validation); without them `run_table9` returns NOT_RUN rows.
Figure 6 is drawn by `mfcbench.figures.fig6.draw_figure6`, which the caller hands to `run_table9`.
"""

from __future__ import annotations

import copy
import functools
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from ..core.atomic import write_json
from ..core.optional import require
from ..core.published import published_table
from ..layers.lemma4 import DEFAULT_BASIS, Lemma4MFC

READING = (
    "MFC-SAM (App. D.5): every 3x3 conv (ViT-B: image_encoder.neck.2) becomes a Lemma 4 MFC, a sum of m "
    "MFC filters applied after per-filter channel maps, initialised by the ridge least-squares fit of the "
    "conv's 3x3 kernels; 'trained on one image' is read as distillation: only the MFC parameters are "
    "trained (Adam, full batch) so that the image encoder's neck output matches the frozen original SAM's "
    "neck output (MSE) on the training image, which is then excluded from evaluation."
)
CHECKPOINT_NAME = "sam_vit_b_01ec64.pth"


@functools.cache
def paper_table9() -> dict[tuple[str, str], tuple[float, float]]:
    """Table 9's printed (mean predicted IoU, stability score) per (dataset, model), from the one file of
    published values (`mfcbench.core.published`), shown beside our rows for comparison only."""
    names = {"coco": "COCO", "ade20k": "ADE20k", "sam": "SAM", "mfc_sam": "MFC-SAM"}
    blocks = {b["name"]: b for b in published_table("table9")["blocks"]}
    return {(names[row["data"]], names[row["method"]]): (iou[0], stab[0])
            for row, iou, stab in zip(blocks["iou"]["rows"], blocks["iou"]["value"], blocks["stability"]["value"])}


IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


# --- SAM conversion and fitting ------------------------------------------------------------------
def encoder_mesh(sam) -> int:
    """The image encoder's token mesh (1024 / 16 = 64 for ViT-B), where the neck convs run."""
    encoder = sam.image_encoder
    return encoder.img_size // encoder.patch_embed.proj.kernel_size[0]


def convert_sam(sam, basis=DEFAULT_BASIS, pad: int = 3) -> list[str]:
    """Replace every 3x3 Conv2d of `sam` by a Lemma4MFC (in place), freeze all else; converted names."""
    mesh = encoder_mesh(sam)
    names = [name for name, mod in sam.named_modules() if isinstance(mod, nn.Conv2d) and mod.kernel_size == (3, 3)]
    for param in sam.parameters():
        param.requires_grad_(False)
    for name in names:
        parent_name, _, attr = name.rpartition(".")
        parent = sam.get_submodule(parent_name)
        setattr(parent, attr, Lemma4MFC.from_conv(getattr(parent, attr), basis, mesh, pad))
    return names


def mfc_modules(sam) -> dict[str, Lemma4MFC]:
    return {name: mod for name, mod in sam.named_modules() if isinstance(mod, Lemma4MFC)}


def sam_input(sam, image: np.ndarray) -> torch.Tensor:
    """HxWx3 uint8 RGB -> the encoder's (1, 3, S, S) input, as SamPredictor.set_image prepares it."""
    require("segment_anything.utils.transforms", "paper")  # a missing package names its extra
    from segment_anything.utils.transforms import ResizeLongestSide

    resized = ResizeLongestSide(sam.image_encoder.img_size).apply_image(image)
    x = torch.as_tensor(resized, device=sam.device).permute(2, 0, 1).contiguous()[None]
    return sam.preprocess(x)


@torch.no_grad()
def neck_inputs(sam, images: Sequence[np.ndarray]) -> torch.Tensor:
    """(N, C, h, w): the frozen ViT trunk's output that enters image_encoder.neck, per image."""
    captured: list[torch.Tensor] = []
    handle = sam.image_encoder.neck.register_forward_pre_hook(lambda _m, args: captured.append(args[0]))
    try:
        for image in images:
            sam.image_encoder(sam_input(sam, image))
    finally:
        handle.remove()
    return torch.cat(captured)


def relative_error(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(torch.linalg.vector_norm(a - b) / torch.linalg.vector_norm(b).clamp_min(1e-12))


def fit_mfc_neck(sam, reference_neck: nn.Module, images: Sequence[np.ndarray], steps: int = 200,
                 lr: float = 3e-4, *, filter_lr_scale: float = 0.1,
                 heldout: Sequence[np.ndarray] = ()) -> dict[str, Any]:
    """Train the MFC parameters so sam.image_encoder.neck reproduces `reference_neck` (the frozen
    original) on the neck inputs of `images` (MSE, Adam, full batch); deterministic (no sampling).
    The channel maps C_k learn at `lr`, the filters' (tau, alpha, gamma) at lr * filter_lr_scale
    (a filter is shared by all channels, so a full-size step on it moves every output at once).

    Returns initial/final relative L2 errors of the neck output on the training images (and on the
    `heldout` images, which are not trained on: one image can be over-fitted), steps and seconds."""
    feats = neck_inputs(sam, images)
    held = neck_inputs(sam, heldout) if len(heldout) else None
    neck = sam.image_encoder.neck
    with torch.no_grad():
        target = reference_neck(feats)
        held_target = reference_neck(held) if held is not None else None
        initial = relative_error(neck(feats), target)
        held_initial = relative_error(neck(held), held_target) if held is not None else float("nan")
    mfcs = [m for m in neck.modules() if isinstance(m, Lemma4MFC)]
    if not mfcs:
        raise ValueError("sam.image_encoder.neck has no MFC: run convert_sam first")
    filters = [p for m in mfcs for p in (m.log_tau, m.chol, m.gamma)]
    maps = [p for m in mfcs for p in (m.coef, m.bias) if p is not None]
    optimizer = torch.optim.Adam([{"params": maps, "lr": lr}, {"params": filters, "lr": lr * filter_lr_scale}])
    start = time.perf_counter()
    for _ in range(steps):
        loss = F.mse_loss(neck(feats), target)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    seconds = round(time.perf_counter() - start, 2)
    with torch.no_grad():
        final = relative_error(neck(feats), target)
        held_final = relative_error(neck(held), held_target) if held is not None else float("nan")
    return {"initial_rel_error": initial, "final_rel_error": final, "heldout_initial_rel_error": held_initial,
            "heldout_final_rel_error": held_final, "n_heldout": len(heldout), "steps": steps, "seconds": seconds}


def make_mfc_sam(sam, train_images: Sequence[np.ndarray], basis=DEFAULT_BASIS, steps: int = 200,
                 lr: float = 3e-4, heldout: Sequence[np.ndarray] = ()) -> tuple[Any, dict[str, Any]]:
    """A converted, fitted copy of `sam` (the original is untouched) and its fit report."""
    mfc_sam = copy.deepcopy(sam)
    reference = copy.deepcopy(sam.image_encoder.neck).requires_grad_(False)
    names = convert_sam(mfc_sam, basis)
    report = {"converted": names, "trainable_parameters": sum(p.numel() for p in mfc_sam.parameters() if p.requires_grad),
              "lemma4_residual": {n: m.lemma4_residual for n, m in mfc_modules(mfc_sam).items()}}
    report.update(fit_mfc_neck(mfc_sam, reference, train_images, steps, lr, heldout=heldout))
    return mfc_sam.eval(), report


# --- mask evaluation -------------------------------------------------------------------------------
def generate_masks(sam, image: np.ndarray, points_per_side: int = 64, **options: Any) -> list[dict]:
    """SamAutomaticMaskGenerator's masks for one HxWx3 uint8 image (options: its keyword arguments)."""
    require("segment_anything", "paper")  # a missing package names its extra
    from segment_anything import SamAutomaticMaskGenerator

    with torch.no_grad():
        return SamAutomaticMaskGenerator(sam, points_per_side=points_per_side, **options).generate(image)


def evaluate_masks(sam, images: Sequence[np.ndarray], points_per_side: int = 64, **options: Any) -> dict[str, Any]:
    """Table 9's columns: mean over images of each image's mean predicted IoU and mean stability
    score of the kept masks (the generator's default filters unless `options` change them)."""
    ious, stabilities, n_masks, empty = [], [], 0, 0
    for image in images:
        masks = generate_masks(sam, image, points_per_side, **options)
        if not masks:
            empty += 1
            continue
        n_masks += len(masks)
        ious.append(float(np.mean([m["predicted_iou"] for m in masks])))
        stabilities.append(float(np.mean([m["stability_score"] for m in masks])))
    mean = lambda xs: float(np.mean(xs)) if xs else float("nan")  # noqa: E731
    return {"mean_predicted_iou": mean(ious), "mean_stability_score": mean(stabilities),
            "n_images": len(images), "n_images_without_masks": empty, "n_masks": n_masks}


# --- Table 9 ----------------------------------------------------------------------------------------
def load_images(folder: str | Path, limit: int | None = None) -> list[tuple[str, np.ndarray]]:
    """(file name, HxWx3 uint8 RGB) of the images in `folder`, sorted by name, at most `limit`."""
    paths = sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not paths:
        raise FileNotFoundError(f"no {'/'.join(IMAGE_SUFFIXES)} images in {folder}")
    return [(p.name, load_image(p)) for p in paths[:limit]]


def load_image(path: str | Path) -> np.ndarray:
    """One image file as HxWx3 uint8 RGB."""
    from PIL import Image

    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def parse_image_sets(images: str | dict[str, str] | None) -> dict[str, str]:
    """'COCO=/data/coco/val2017,ADE20k=/data/ade/validation' (or one folder, or a dict) -> label: folder."""
    if not images:
        return {}
    if isinstance(images, dict):
        return dict(images)
    sets = {}
    for part in str(images).split(","):
        label, sep, folder = part.partition("=")
        sets.update({label.strip(): folder.strip()} if sep else {Path(part.strip()).name: part.strip()})
    return sets


def not_run_rows(reason: str) -> list[dict[str, Any]]:
    """Table 9's four cells, each NOT_RUN with `reason` and the published values."""
    return [{"dataset": dataset, "model": model, "mean_predicted_iou": float("nan"), "mean_stability_score": float("nan"),
             "paper_predicted_iou": iou, "paper_stability_score": stab, "n_images": 0, "status": "NOT_RUN",
             "reason": reason} for (dataset, model), (iou, stab) in paper_table9().items()]


def table9_records(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """run_table9's rows keyed as published.yaml's Table 9 layout: `data` (coco | ade20k) and `method`
    (sam | mfc_sam) in the spelling its matching uses, instead of the display labels dataset/model."""
    out = []
    for row in rows:
        row = dict(row)
        label, model = str(row.pop("dataset")), str(row.pop("model"))
        out.append({"data": label.lower(), "method": model.lower().replace("-", "_"), "data_label": label,
                    "method_label": model, **row})
    return out


def load_sam_checkpoint(checkpoint: str | Path, sha256: str | None = None, device: str = "cpu"):
    """sam_model_registry['vit_b'](checkpoint) after checking the file (and its sha256 when given)."""
    require("segment_anything", "paper")  # a missing package names its extra
    from segment_anything import sam_model_registry

    from ..data.fetch import file_digest

    path = Path(checkpoint)
    if not path.is_file():
        raise FileNotFoundError(f"SAM checkpoint {path} not found (expected {CHECKPOINT_NAME})")
    if sha256 and file_digest(path, "sha256") != sha256.lower():
        raise ValueError(f"SAM checkpoint {path}: sha256 differs from {sha256}")
    return sam_model_registry["vit_b"](checkpoint=str(path)).to(device).eval()


def run_table9(checkpoint: str | None, images: str | dict[str, str] | None, sha256: str | None = None, *,
               train_image: str | None = None, limit: int | None = 1000, points_per_side: int = 64,
               fit_steps: int = 200, lr: float = 3e-4, basis=DEFAULT_BASIS, out_dir: str | Path | None = None,
               device: str = "cpu", generator_options: dict[str, Any] | None = None,
               figure6: Callable[[np.ndarray, list[dict], list[dict], Path], None] | None = None) -> list[dict[str, Any]]:
    """Table 9 (App. D.5): rows (dataset, model SAM | MFC-SAM, the two metrics, published values, status).

    Without a checkpoint or images: NOT_RUN rows with the reason. The MFC is fitted on `train_image`
    (default: the first image of the first set, then excluded from evaluation). With `out_dir`:
    table9.json (rows, fit report, reading), and with `figure6` too (a drawer such as
    `mfcbench.figures.fig6.draw_figure6`) figure6.png: the first evaluated image, SAM's and MFC-SAM's masks."""
    if not checkpoint:
        return not_run_rows(f"no SAM checkpoint given: set sam.checkpoint to {CHECKPOINT_NAME} (ViT-B, from "
                            "github.com/facebookresearch/segment-anything; not downloaded at run time)")
    sets = parse_image_sets(images)
    if not sets:
        return not_run_rows("no evaluation images given: set sam.images to COCO=<val2017 folder>,ADE20k=<folder>")
    sam = load_sam_checkpoint(checkpoint, sha256, device)
    loaded = {label: load_images(folder, None if limit is None else limit + 1) for label, folder in sets.items()}
    first = next(iter(loaded))
    if train_image:
        train = [load_image(train_image)]
    else:
        train, loaded[first] = [loaded[first][0][1]], loaded[first][1:]
    mfc_sam, report = make_mfc_sam(sam, train, basis, fit_steps, lr, heldout=[img for _, img in loaded[first][:2]])
    options = dict(generator_options or {})
    rows = []
    for label, named in loaded.items():
        arrays = [img for _, img in named[:limit]]
        for model_name, model in (("SAM", sam), ("MFC-SAM", mfc_sam)):
            paper = paper_table9().get((label, model_name), (float("nan"), float("nan")))
            rows.append({"dataset": label, "model": model_name, **evaluate_masks(model, arrays, points_per_side, **options),
                         "paper_predicted_iou": paper[0], "paper_stability_score": paper[1], "status": "OK", "reason": ""})
    if out_dir is not None and figure6 is not None:
        image = loaded[first][0][1]
        figure6(image, generate_masks(sam, image, points_per_side, **options),
                generate_masks(mfc_sam, image, points_per_side, **options), Path(out_dir) / "figure6.png")
    if out_dir is not None:
        write_json(Path(out_dir) / "table9.json", {"rows": rows, "fit": report, "reading": READING})
    return rows

