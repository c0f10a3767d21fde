"""Claims and verdicts: a pure function from result tables to one verdict row per claim.

Each claim in `claims.yaml` names a check; the checks live in `report/checks/` (grouped by kind) and
are registered through `engine.check`, which loads the claim's declared tables and answers NOT_RUN
naming what is missing. A check reads DataFrames (never files, never training code) and returns a
`Verdict`. New claim kinds are one decorated function in the module of their kind.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from . import checks  # noqa: F401  (registers every check)
from .checks.cost import check_wu_coefficient, check_wu_ratio, check_wu_savings
from .checks.experiments import check_ddpm_quality, check_not_run, check_sam_quality
from .checks.measurements import (
    check_crossover,
    check_flops_formula,
    check_lemma4,
    check_printed_cells,
    check_speedup,
    check_trend,
)
from .checks.quality import (
    check_absolute,
    check_similar_quality,
    quality_pair,
)
from .checks.time import check_time_to_quality
from .engine import (
    CHECKS,
    DEVIATES,
    INCONCLUSIVE,
    NOT_RUN,
    REPRODUCED,
    VERDICTS,
    Verdict,
)
from .pairs import PAIR_COLUMNS, pairs_frame
from .stats import mean_interval

CLAIMS_PATH = Path(__file__).with_name("claims.yaml")
CLAIM_COLUMNS = ["id", "claim", "source", "published", "reproduced", "profile", "dataset",
                 "verdict", "reason", "tolerance"]

__all__ = ["CHECKS", "CLAIM_COLUMNS", "DEVIATES", "INCONCLUSIVE", "NOT_RUN", "REPRODUCED", "VERDICTS", "Verdict",
           "check_absolute", "check_crossover", "check_ddpm_quality", "check_flops_formula", "check_lemma4",
           "check_not_run", "check_printed_cells", "check_sam_quality", "check_similar_quality", "check_speedup",
           "check_time_to_quality", "check_trend", "check_wu_coefficient", "check_wu_ratio", "check_wu_savings",
           "load_claims", "mean_interval", "quality_pair", "score_all", "score_claims"]


def load_claims(path: str | Path | None = None) -> list[dict[str, Any]]:
    with open(path or CLAIMS_PATH) as handle:
        return yaml.safe_load(handle)


def score_claim(spec: dict, results: dict[str, pd.DataFrame]) -> Verdict:
    """One claim's verdict; malformed results say so (NOT_RUN) instead of crashing the report."""
    try:
        return CHECKS.get(spec["check"])(spec, results)
    except (KeyError, ValueError, TypeError) as error:
        return Verdict(NOT_RUN, f"could not score: {error.__class__.__name__}: {error}")


def score_claims(claims: list[dict], results: dict[str, pd.DataFrame], profile: str = "") -> pd.DataFrame:
    """One row per claim. `results` maps a result name ('table4', 'lemma4', ...) to its DataFrame."""
    return score_all(claims, results, profile)[0]


def score_all(claims: list[dict], results: dict[str, pd.DataFrame], profile: str = "") -> tuple[pd.DataFrame, pd.DataFrame]:
    """claims.csv (one row per claim) and pairs.csv (one row per claim and compared pair)."""
    rows, pairs = [], []
    for spec in claims:
        outcome = score_claim(spec, results)
        rows.append({
            "id": spec["id"], "claim": spec["claim"], "source": spec.get("source", ""),
            "published": outcome.published, "reproduced": outcome.reproduced, "profile": profile,
            "dataset": outcome.dataset, "verdict": outcome.verdict, "reason": outcome.reason,
            "tolerance": ", ".join(f"{k}={v}" for k, v in (spec.get("tolerance") or {}).items()),
        })
        if outcome.pairs:
            pairs.append(pairs_frame(spec["id"], list(outcome.pairs)))
    pair_rows = pd.concat(pairs, ignore_index=True) if pairs else pd.DataFrame(columns=PAIR_COLUMNS)
    return pd.DataFrame(rows, columns=CLAIM_COLUMNS), pair_rows
