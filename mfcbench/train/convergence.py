"""Convergence of a trained cell, judged from its validation curve: the plateau statistic and the
`converged` flag of metrics.json (docs/architecture.md "Training protocol").

Algorithm 2 solves one level after another, so a run is judged on its last phase only (`last_phase`).
The runner records `convergence(...)` in every metrics.json, and the pipeline's start-up checks
(`mfcbench.pipeline.checks.unjudgeable_cells`) run `plateau_statistic` on a schedule's validation
steps to find cells whose convergence no curve could ever show. Plain Python: no torch.
"""

from __future__ import annotations

import math
from typing import Any


def plateau_statistic(curve: list[dict], steps: int, higher_is_better: bool) -> float | None:
    """Relative improvement of the validation metric over the last quarter of the steps, on window
    means (single validations of a constant-lr run scatter by 20-30%, measured on the default
    profile's Table 4 networks): (m3 - m4) / |m3| with m3 the mean validation in (T/2, 3T/4] and m4
    in (3T/4, T]; sign flipped when higher is better. None when either window has no validation."""
    vals = [(r["iteration"], r["val_metric"]) for r in curve if r.get("val_metric") is not None]
    third = [v for it, v in vals if steps / 2 < it <= 0.75 * steps and math.isfinite(v)]
    fourth = [v for it, v in vals if it > 0.75 * steps and math.isfinite(v)]
    if not third or not fourth:
        return None
    m3, m4 = sum(third) / len(third), sum(fourth) / len(fourth)
    if m3 == 0:
        return None
    gain = (m4 - m3) if higher_is_better else (m3 - m4)
    return gain / abs(m3)


def last_phase(curve: list[dict], steps: int) -> tuple[list[dict], int]:
    """The curve rows of the last phase (the trailing rows on the last row's level), renumbered from 1,
    and the iteration before its first row: Algorithm 2's convergence is judged on its last level."""
    if not curve or "level" not in curve[-1]:
        return curve, 0
    start = len(curve)
    while start > 0 and curve[start - 1].get("level") == curve[-1]["level"]:
        start -= 1
    offset = int(curve[start]["iteration"]) - 1
    return [{**r, "iteration": r["iteration"] - offset} for r in curve[start:]], offset


def convergence(curve: list[dict], steps: int, higher_is_better: bool, threshold: float, status: str,
                stopped_early: bool) -> dict[str, Any]:
    """`plateau` (see plateau_statistic, on the last phase's steps only) and `converged`: the metric moved
    by at most `plateau_threshold` over the last quarter, or the run stopped early on a plateau, and never
    a worsening curve (plateau < -threshold) nor a diverged cell."""
    rows, offset = last_phase(curve, steps)
    plateau = plateau_statistic(rows, steps - offset, higher_is_better)
    worsening = plateau is not None and plateau < -threshold
    converged = status == "ok" and not worsening and (stopped_early or (plateau is not None and plateau <= threshold))
    return {"plateau": plateau, "plateau_threshold": threshold, "plateau_from": offset, "converged": bool(converged)}
