"""The verdict page's words for one claim in one snapshot: the pair that decides it, its effect with the
interval and seeds, and a one-line reason in plain words written from pairs.csv and cells.csv.

The deciding pair is, among the claim's pairs with the claim's verdict, the one furthest on the worse side
(the largest multiscale/SGD ratio for a metric where lower is better, the smallest where higher is); a
time-to-quality claim is decided on executed #WU (its training-seconds pairs are not read). A
time-to-quality reason says on how many seeds the strategy reached SGD's final quality within its budget
and what the ratio is when it did not: the strategy's whole budget (censored), which is no win.
"""

from __future__ import annotations

import math
import re
from typing import Any, Mapping

import numpy as np
import pandas as pd

from ..core.labels import arch_label, strategy_label

METRIC_WORDS = {"val_mse": "MSE", "val_ssim": "SSIM", "val_psnr": "PSNR", "val_loss": "validation loss"}
HIGHER_IS_BETTER = {"val_ssim", "val_psnr"}
MARGIN_KINDS = ("similar_quality", "reference_pairs")  # non-inferiority against a margin
SEED_LIST = re.compile(r" \((?:[^()]*seed[^()]*)\)")


def _g(value: Any) -> str:
    return f"{float(value):.3g}"


def _known(value: Any) -> bool:
    try:
        return not math.isnan(float(value))
    except (TypeError, ValueError):
        return False


def decided_pairs(pairs: pd.DataFrame) -> pd.DataFrame:
    """The pairs a verdict is decided on: a time-to-quality claim's #WU pairs, every pair otherwise."""
    if pairs.empty or "unit" not in pairs.columns:
        return pairs
    unit = pairs["unit"].fillna("").astype(str)
    keep = unit.isin(["", "wu"])
    return pairs[keep] if keep.any() else pairs


def _higher(pair: Mapping[str, Any]) -> bool:
    margin = float(pair["margin"]) if _known(pair.get("margin")) else 1.0
    return margin < 1 or str(pair.get("metric")) in HIGHER_IS_BETTER


def deciding_pair(pairs: pd.DataFrame, verdict: str) -> pd.Series | None:
    """The pair that decides the verdict (see the module); None without pairs."""
    pairs = decided_pairs(pairs)
    if pairs.empty or not {"arch", "strategy", "ratio", "verdict"} <= set(pairs.columns):
        return None
    same = pairs[pairs["verdict"].astype(str) == verdict]
    pool = same if len(same) else pairs
    ratio = pd.to_numeric(pool["ratio"], errors="coerce")
    sign = np.array([-1.0 if _higher(row) else 1.0 for _, row in pool.iterrows()])
    worse = pd.Series(np.log(ratio.where(ratio > 0)).to_numpy() * sign, index=pool.index)
    return pool.iloc[0] if worse.isna().all() else pool.loc[worse.idxmax()]


def versus(pair: Mapping[str, Any], spec: Mapping[str, Any] | None = None) -> str:
    """'SGD' for the table's own SGD cells, else the claim's name for its reference cells (Tables 10, 12)
    or the cells pairs.csv names."""
    ref = str(pair.get("versus") or "")
    if ref in ("", "nan", f"{pair.get('table')}:sgd"):
        return "SGD"
    if ref.startswith(f"{pair.get('table')}:sgd+wu_"):  # a `wu_match` variant: SGD's schedule at the same #WU
        return "SGD at equal #WU"
    return str(((spec or {}).get("reference") or {}).get("label") or ref)


def interval(pair: Mapping[str, Any]) -> str:
    return f" [95% CI {_g(pair['low'])}, {_g(pair['high'])}]" if _known(pair.get("low")) and _known(pair.get("high")) else ""


def effect(pair: Mapping[str, Any], spec: Mapping[str, Any] | None = None) -> str:
    """'mfc_unet/fmsgd 1.6x SGD [95% CI 1.46, 1.76]' (#WU to the target for a time-to-quality pair)."""
    unit = str(pair.get("unit") or "")
    shown = f"{pair['arch']}/{pair['strategy']}{' #WU' if unit == 'wu' else ''} {_g(pair['ratio'])}x {versus(pair, spec)}"
    return shown + (f" ({unit})" if unit not in ("", "wu", "nan") else "") + interval(pair)


def seeds(pair: Mapping[str, Any]) -> str:
    n = int(float(pair["n"])) if _known(pair.get("n")) else 0
    return f"n={n} (seeds {pair.get('seeds', '')})"


def why(pair: Mapping[str, Any]) -> str:
    """What keeps a pair undecided, from its reason: 'msgd not converged; the interval straddles the margin'."""
    reason = str(pair.get("reason") or "")
    tail = reason.split("): ", 1)[1] if "): " in reason else reason
    return SEED_LIST.sub("", tail).strip()


def _name(pair: Mapping[str, Any]) -> str:
    return f"{strategy_label(str(pair['strategy']))} on {arch_label(str(pair['arch']))}"


def _tally(pairs: pd.DataFrame, what: str = "pairs") -> str:
    counts = pairs["verdict"].astype(str).value_counts()
    return f"{len(pairs)} {what}: " + ", ".join(f"{n} {v}" for v, n in counts.items())


def margin_words(pair: Mapping[str, Any]) -> str:
    margin = float(pair["margin"]) if _known(pair.get("margin")) else 1.0
    return f"{abs(margin - 1):.0%}"


def quality_reason(verdict: str, pairs: pd.DataFrame, pair: Mapping[str, Any], spec: Mapping[str, Any]) -> str:
    """A non-inferiority claim (similar quality; Tables 10, 12): where the deciding pair ends and the margin."""
    metric = METRIC_WORDS.get(str(pair.get("metric")), str(pair.get("metric")))
    ends = f"{_name(pair)} ends at {_g(pair['ratio'])}x {versus(pair, spec)}'s {metric}{interval(pair).replace('95% CI ', '')}"
    margin = margin_words(pair)
    if verdict == "DEVIATES":
        head = f"{ends}, outside the {margin} margin"
    elif verdict == "REPRODUCED":
        head = f"every pair inside the {margin} margin; closest to it, {ends}"
    else:
        head = f"no pair lies outside the {margin} margin; {ends}, undecided: {why(pair)}"
    return f"{head} ({_tally(pairs)})"


def _reached(cells: pd.DataFrame, pair: Mapping[str, Any]) -> tuple[int, int]:
    """(seeds on which the pair's strategy reached the target, seeds in the pair) from cells.csv."""
    wanted = {int(s) for s in str(pair.get("seeds", "")).split() if s.isdigit()}
    if cells.empty or not {"table", "arch", "strategy", "seed", "reached"} <= set(cells.columns):
        return 0, len(wanted)
    rows = cells[(cells["table"].astype(str) == str(pair["table"])) & (cells["arch"].astype(str) == str(pair["arch"]))
                 & (cells["strategy"].astype(str) == str(pair["strategy"]))
                 & pd.to_numeric(cells["seed"], errors="coerce").isin(wanted)]
    if "variant" in rows.columns:
        rows = rows[rows["variant"].fillna("base").astype(str).isin(["base", "", "nan"])]
    return int((rows["reached"].astype(str).str.lower() == "true").sum()), len(wanted)


def time_reason(verdict: str, pairs: pd.DataFrame, pair: Mapping[str, Any], cells: pd.DataFrame, spec: Mapping) -> str:
    """A time-to-quality claim: how often the strategy reached SGD's final quality within its budget, and
    what the #WU ratio means (a miss is the strategy's whole budget, censored: no win)."""
    metric = METRIC_WORDS.get(str(pair.get("metric")), str(pair.get("metric")))
    margin = (spec.get("tolerance") or {}).get("margin")
    target = f"SGD's final {metric}" + (f" (within {float(margin):.0%})" if margin is not None else "")
    reached, n = _reached(cells, pair)
    ratio = f"{_g(pair['ratio'])}x SGD's #WU{interval(pair).replace('95% CI ', '')}"
    if reached == 0:
        head = (f"{strategy_label(str(pair['strategy']))} reaches {target} on 0 of {n} seeds within its budget "
                f"({arch_label(str(pair['arch']))}; censored at its budget, {ratio})")
    elif verdict == "REPRODUCED":
        head = f"{_name(pair)} reaches {target} on {reached} of {n} seeds, at {ratio}"
    elif verdict == "DEVIATES":
        head = f"{_name(pair)} needs {ratio} to reach {target}, reaching it on {reached} of {n} seeds"
    else:
        head = f"{_name(pair)} reaches {target} on {reached} of {n} seeds ({ratio}, censored where missed), undecided: {why(pair)}"
    never = sum(_reached(cells, p)[0] == 0 for _, p in pairs.iterrows())
    return f"{head}; {never} of {len(pairs)} networks never reach it"


def generic_reason(pairs: pd.DataFrame, pair: Mapping[str, Any]) -> str:
    """Any other claim on pairs (at equal #WU, a ladder's trend): the deciding pair's own reason, its seed lists
    left out, and the tally."""
    return f"{SEED_LIST.sub('', str(pair.get('reason') or effect(pair)))} ({_tally(pairs)})"


def pair_reason(spec: Mapping[str, Any], verdict: str, pairs: pd.DataFrame, cells: pd.DataFrame) -> tuple[str, str, str]:
    """(effect, seeds, reason) of a claim decided on pairs; ('', '', '') without any."""
    pair = deciding_pair(pairs, verdict)
    if pair is None:
        return "", "", ""
    pairs, kind = decided_pairs(pairs), spec.get("check")
    if kind == "time_to_quality":
        reason = time_reason(verdict, pairs, pair, cells, spec)
    elif kind in MARGIN_KINDS:
        reason = quality_reason(verdict, pairs, pair, spec)
    else:
        reason = generic_reason(pairs, pair)
    return effect(pair, spec), seeds(pair), reason
