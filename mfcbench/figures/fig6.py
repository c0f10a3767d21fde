"""Figure 6 (App. D.5): one image, SAM's masks and MFC-SAM's masks side by side.

`mfcbench.experiments.sam.run_table9` hands the first evaluated image and both models' masks
(SamAutomaticMaskGenerator's records: `segmentation`, `area`, ...) to `draw_figure6`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .save import pyplot, save_png


def mask_overlay(image: np.ndarray, masks: list[dict], seed: int = 0, alpha: float = 0.5) -> np.ndarray:
    """The image with each mask (largest first) painted in a seeded random colour, float in [0, 1]."""
    import torch

    out = image.astype(np.float64) / 255.0
    colours = torch.rand(max(1, len(masks)), 3, generator=torch.Generator().manual_seed(seed)).numpy()
    for colour, mask in zip(colours, sorted(masks, key=lambda m: -m["area"])):
        seg = mask["segmentation"]
        out[seg] = (1 - alpha) * out[seg] + alpha * colour
    return out


def draw_figure6(image: np.ndarray, sam_masks: list[dict], mfc_masks: list[dict], path: str | Path) -> None:
    """Figure 6: input | SAM masks | MFC-SAM masks, one PNG (written atomically)."""
    plt = pyplot()
    panels = (("Input", image / 255.0), (f"SAM ({len(sam_masks)} masks)", mask_overlay(image, sam_masks)),
              (f"MFC-SAM ({len(mfc_masks)} masks)", mask_overlay(image, mfc_masks)))
    fig, axes = plt.subplots(1, 3, figsize=(12, 4.2))
    for ax, (title, panel) in zip(axes, panels):
        ax.imshow(panel)
        ax.set_title(title)
        ax.axis("off")
    fig.tight_layout()
    save_png(fig, path)
