"""The claims engine: a `Verdict` record, the registry of checks, and the one way a check gets its inputs.

A check is a function of a `Inputs` (the claim's spec, its declared result tables, the published value)
that returns a `Verdict`. A check gets its inputs only through the `check` decorator, which looks up
the tables the claim declares, answers NOT_RUN naming the ones missing, applies the claim's `where:`
(the one row filter, `where`) to the first of them, and fills the published value in. Checks live in
`report/checks/`, grouped by kind; statistics in `report/stats.py`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from ..core.registry import Registry
from .layout import normalise
from .published import published_cells

REPRODUCED, DEVIATES, INCONCLUSIVE, NOT_RUN = "REPRODUCED", "DEVIATES", "INCONCLUSIVE", "NOT_RUN"
VERDICTS = (REPRODUCED, DEVIATES, INCONCLUSIVE, NOT_RUN)
_NO_DATASET = {"", "synthetic", "none", "nan"}


@dataclass(frozen=True)
class Verdict:
    """What a check says about one claim. `pairs`: one dict per compared pair (pairs.csv), if any."""

    verdict: str
    reason: str = ""
    published: str = ""
    reproduced: str = ""
    dataset: str = ""
    pairs: tuple[dict[str, Any], ...] = field(default=())

    def __post_init__(self):
        if self.verdict not in VERDICTS:
            raise ValueError(f"unknown verdict {self.verdict!r}; valid: {', '.join(VERDICTS)}")

    def get(self, key: str, default: Any = None) -> Any:
        return getattr(self, key, default)

    def replace(self, **changes: Any) -> Verdict:
        return dataclasses.replace(self, **changes)


@dataclass
class Inputs:
    """A check's inputs: the claim, its declared tables (present and non-empty), the published value."""

    spec: dict
    frames: dict[str, pd.DataFrame]
    published: str
    results: dict[str, pd.DataFrame]

    @property
    def frame(self) -> pd.DataFrame:
        """The first declared table, limited to the claim's `where:` rows."""
        return where(next(iter(self.frames.values())), self.spec.get("where"))

    @property
    def tolerance(self) -> dict:
        return self.spec.get("tolerance") or {}

    def verdict(self, verdict: str, reason: str = "", **extra: Any) -> Verdict:
        return Verdict(verdict, reason, **{"published": self.published, **extra})


Check = Callable[[dict, dict], Verdict]
CHECKS: Registry[Check] = Registry("claim check")


def _declared_input(spec: dict) -> list[str]:
    return [spec["input"]]


def check(
    name: str,
    *,
    inputs: Callable[[dict], Iterable[str]] = _declared_input,
    published: Callable[[dict], str] | None = None,
) -> Callable[[Callable[[Inputs], Verdict]], Check]:
    """Register `fn(Inputs) -> Verdict` as claim check `name`. `inputs(spec)`: the result tables it
    needs (default: the claim's `input`); a missing or empty one gives NOT_RUN naming it.
    `published(spec)`: the published value shown beside the verdict (also when NOT_RUN)."""

    def decorator(fn: Callable[[Inputs], Verdict]) -> Check:
        def run(spec: dict, results: dict) -> Verdict:
            shown = published(spec) if published else str(spec.get("published", ""))
            names = list(inputs(spec))
            missing = [n for n in names if frame(results, n) is None]
            if missing:
                return Verdict(
                    NOT_RUN,
                    "no results: " + ", ".join(f"{n}.csv" for n in missing) + " missing or empty",
                    published=shown,
                )
            outcome = fn(Inputs(spec, {n: results[n] for n in names}, shown, results))
            return outcome if outcome.published else outcome.replace(published=shown)

        run.__name__, run.__doc__, run.__wrapped__ = fn.__name__, fn.__doc__, fn
        return CHECKS.register(name)(run)

    return decorator


# --- the one row filter and small helpers the checks share -----------------------------------------
def frame(results: dict, name: str) -> pd.DataFrame | None:
    table = results.get(name)
    return None if table is None or table.empty else table


def where(table: pd.DataFrame, wanted: dict | None) -> pd.DataFrame:
    """The rows whose columns equal `wanted` (spellings normalised: 'Blur-MFC' == 'blur_mfc').
    A column the table lacks is an error naming it (score_claims turns it into NOT_RUN)."""
    for column, value in (wanted or {}).items():
        if column not in table.columns:
            raise KeyError(f"results lack column {column!r}")
        table = table[table[column].map(normalise) == normalise(value)]
    return table


def ok_rows(table: pd.DataFrame) -> pd.DataFrame:
    """Rows that finished (status ok, or no status recorded)."""
    if "status" not in table.columns:
        return table
    return table[table["status"].map(normalise).isin(["ok", "nan"])]


def base_variant(table: pd.DataFrame) -> pd.DataFrame:
    """The plain strategies' rows: variants (e.g. +crops, a longer budget) are other rows."""
    if "variant" not in table.columns:
        return table
    return table[table["variant"].map(normalise).isin(["base", "nan", "none", ""])]


def datasets(table: pd.DataFrame) -> str:
    return "+".join(sorted({str(d) for d in table["dataset"].dropna()})) if "dataset" in table.columns else ""


def strategy_means(table: pd.DataFrame, metric: str) -> pd.Series:
    table = ok_rows(table).assign(_s=lambda f: f["strategy"].map(normalise))
    return pd.to_numeric(table[metric], errors="coerce").groupby(table["_s"]).mean().dropna()


def first_metric(table: pd.DataFrame, candidates: str | Iterable[str]) -> str | None:
    for name in [candidates] if isinstance(candidates, str) else candidates:
        if name in table.columns and pd.to_numeric(table[name], errors="coerce").notna().any():
            return name
    return None


def published_by_keys(table: str, block: str | None = None) -> list[dict]:
    return [c for c in published_cells(table) if block is None or c["block"] == block]


def combine(verdicts: Iterable[str]) -> str:
    """A claim over several parts: DEVIATES if any part does, else INCONCLUSIVE, else NOT_RUN, else REPRODUCED."""
    verdicts = list(verdicts)
    for verdict in (DEVIATES, INCONCLUSIVE, NOT_RUN):
        if verdict in verdicts:
            return verdict
    return REPRODUCED


def truthy(value: Any) -> bool:
    return normalise(value) in ("true", "1")


def paper_dataset(table: str) -> str:
    from .published import published_table

    return str(published_table(table).get("dataset", ""))


def substituted(used: str, paper: str) -> bool:
    return bool(used) and normalise(paper) not in _NO_DATASET and normalise(used) != normalise(paper)


def substitution_note(table: pd.DataFrame, name: str) -> str:
    used, paper = datasets(table), paper_dataset(name)
    return (
        f"; checked on {used} (substitute for {paper}: the qualitative claim only)" if substituted(used, paper) else ""
    )
