"""The numbers of a grid of generated digits (Figure 8): a seeded digit classifier and the Frechet distance.

A small CNN (`DigitClassifier`) is trained on the real training images of one seed; a grid of images is
scored by the classifier's mean max-softmax confidence, the fraction classified with confidence >=
`confident`, and the Frechet distance between the classifier's penultimate features of the grid and of
the real training images ("FD-digits", an FID analogue). `mfcbench.experiments.ddpm` scores every grid
of every seed with them.

Every random draw comes from a torch.Generator seeded per purpose from the run seed (`seed_for`).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from ..strategies.sampling import seed_for


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
    gen = torch.Generator().manual_seed(seed_for(seed, "classifier_data"))
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
