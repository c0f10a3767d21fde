"""Pairs: one (network, multiscale strategy) against SGD on the seeds both ran, and the rule that
turns a claim's pairs into verdicts.

A pair carries the worse-signed log ratios (see `stats`), what keeps it from deciding (a side not
converged, a miss), and after `decide` its verdict and reason. The rule, for a bound b on the
worse-signed log scale (the margin, or 0 for "fewer #WU"):

- REPRODUCED: the pair's 95% interval lies wholly below b (no correction: every pair must pass);
- DEVIATES: its one-sided p of "worse than b", Holm-corrected across the claim's pairs, is below 0.025;
- INCONCLUSIVE otherwise, or when either side is not converged, or with fewer than `min_seeds` seeds; an
  interval that straddles the margin with both sides converged says how many seeds a power calculation
  from the observed spread says would decide (`seedcount.pair_needed`; a side not converged: none).

`PAIR_COLUMNS` are pairs.csv's columns (one row per claim and pair): `table`, `arch` and `strategy` name
the pair's cells (whole images, base budget), `versus` its reference cells ("table12:fmsgd+crops"; most
often the table's SGD, "table4:sgd"); `seed_reason` (the seeds a pair
received and why) is filled from the table's seed plan by `seedplan.annotate`.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from . import seedcount, stats
from .engine import DEVIATES, INCONCLUSIVE, NOT_RUN, REPRODUCED, truthy

PAIR_COLUMNS = [
    "claim",
    "table",
    "arch",
    "strategy",
    "versus",
    "metric",
    "unit",
    "n",
    "seeds",
    "seed_reason",
    "ratio",
    "low",
    "high",
    "margin",
    "p_worse",
    "p_holm",
    "seeds_needed",
    "p_beat",
    "beat_low",
    "beat_high",
    "converged_ours",
    "converged_sgd",
    "verdict",
    "reason",
]


def versus_of(pairs: pd.DataFrame) -> pd.Series:
    """Each pairs.csv row's reference cells, "<table>:sgd" where the frame has no `versus` (older snapshots)."""
    default = pairs["table"].astype(str) + ":sgd"
    return pairs["versus"].astype(str) if "versus" in pairs else default


def new_pair(table: str, arch: str, strategy: str, metric: str, unit: str = "", versus: str = "") -> dict[str, Any]:
    """A pair of `table`'s (arch, strategy) cells against the cells `versus` names, "<table>:<strategy>[+<variant>]"
    of the same arch and seeds (default: the table's SGD); the seed planner reads both."""
    return {
        "table": table,
        "arch": arch,
        "strategy": strategy,
        "versus": versus or f"{table}:sgd",
        "metric": metric,
        "unit": unit,
        "n": 0,
        "seeds": "",
        "_worse": pd.Series(dtype=float),
        "_blocks": [],
        "_no_reproduce": [],
        "_no_deviate": [],
    }


def fill(pair: dict, worse_log: pd.Series, higher_is_better: bool, bound: float) -> dict:
    """The pair's statistics from its worse-signed log ratios (index: seed)."""
    worse_log = pd.to_numeric(worse_log, errors="coerce").dropna()
    interval = stats.paired_interval(worse_log, higher_is_better)
    wins, _, p_beat, beat_low, beat_high = stats.beat_probability(worse_log)
    pair.update(
        _worse=worse_log,
        _interval=interval,
        _bound=bound,
        n=interval.n,
        seeds=" ".join(str(s) for s in worse_log.index),
        ratio=interval.ratio,
        low=interval.ratio_low,
        high=interval.ratio_high,
        p_worse=stats.p_worse(worse_log, bound),
        p_beat=p_beat,
        beat_low=beat_low,
        beat_high=beat_high,
        _wins=wins,
    )
    return pair


def fixed(pair: dict, verdict: str, reason: str) -> dict:
    """A pair decided without statistics (a failed or diverged cell)."""
    return {**pair, "_fixed": (verdict, reason)}


def label(pair: dict) -> str:
    return f"{pair['arch']}/{pair.get('_label', pair['strategy'])}" + (f" ({pair['unit']})" if pair.get("unit") else "")


def display(pair: dict, beat: bool = True) -> str:
    """'unet/fmsgd 1.12x SGD [95% CI 1.05, 1.19] (n=3); beats SGD on 0/3 seeds (P(beat) 95% CI [0.00, 0.56])'."""
    if pair.get("n", 0) == 0:
        return label(pair)
    versus = pair.get("_versus", "SGD")
    text = f"{label(pair)} {pair['ratio']:.3g}x {versus}"
    if pair["low"] == pair["low"]:
        text += f" [95% CI {pair['low']:.3g}, {pair['high']:.3g}]"
    text += f" (n={pair['n']})"
    if beat and pair.get("p_beat") == pair.get("p_beat"):
        text += (
            f"; beats {versus} on {pair['_wins']}/{pair['n']} seeds "
            f"(P(beat) 95% CI [{max(pair['beat_low'], 0.0):.2f}, {min(pair['beat_high'], 1.0):.2f}])"
        )
    return text


def decide(pairs: list[dict], min_seeds: int) -> list[dict]:
    """Verdict and reason of every pair of one claim (Holm across the pairs that have a p-value)."""
    adjusted = stats.holm([float("nan") if "_fixed" in p else p.get("p_worse", float("nan")) for p in pairs])
    family = sum(a == a for a in adjusted)
    return [_decide_one({**p, "p_holm": a}, min_seeds, max(family, 1)) for p, a in zip(pairs, adjusted)]


def _decide_one(pair: dict, min_seeds: int, family: int) -> dict:
    if "_fixed" in pair:
        verdict, reason = pair["_fixed"]
        return {
            **pair,
            "verdict": verdict,
            "reason": f"{label(pair)} {reason}",
            "display": display(pair) if pair["n"] else label(pair),
        }
    shown = display(pair, beat=False)
    if pair["n"] == 0:
        return {
            **pair,
            "verdict": NOT_RUN,
            "reason": f"{label(pair)}: no seed with both cells finished",
            "display": label(pair),
        }
    interval, bound = pair["_interval"], pair["_bound"]
    inside = interval.high == interval.high and interval.high < bound
    outside = pair["p_holm"] == pair["p_holm"] and pair["p_holm"] < stats.ALPHA
    enough = pair["n"] >= min_seeds
    if enough and inside and not (pair["_blocks"] or pair["_no_reproduce"]):
        return {**pair, "verdict": REPRODUCED, "reason": f"{shown} within the margin", "display": display(pair)}
    if enough and outside and not (pair["_blocks"] or pair["_no_deviate"]):
        return {
            **pair,
            "verdict": DEVIATES,
            "display": display(pair),
            "reason": f"{shown} outside the margin (p={pair['p_worse']:.2g}, Holm over {family} pairs {pair['p_holm']:.2g})",
        }
    return {
        **pair,
        "verdict": INCONCLUSIVE,
        "display": display(pair),
        **_undecided(pair, inside, outside, enough, min_seeds, family),
    }


def _undecided(pair: dict, inside: bool, outside: bool, enough: bool, min_seeds: int, family: int) -> dict:
    interval, bound = pair["_interval"], pair["_bound"]
    reasons = list(pair["_blocks"])
    reasons += pair["_no_reproduce"] if inside else pair["_no_deviate"] if outside else []
    needs = None
    if not (inside or outside):  # a side not converged: no count, more seeds would not decide it
        needs = seedcount.pair_needed(interval.mean, interval.sd, bound, family, converged=not pair["_blocks"])
        if pair["p_worse"] == pair["p_worse"] and pair["p_worse"] < stats.ALPHA:
            reasons.append(
                f"outside the margin before Holm's correction, not after (p={pair['p_worse']:.2g}, "
                f"Holm over {family} pairs {pair['p_holm']:.2g})"
            )
        elif interval.low == interval.low:
            reasons.append("the interval straddles the margin")
    if not enough:
        reasons.append(f"only {pair['n']} seed(s) (needs {min_seeds})")
    if needs is not None:
        reasons.append("needs more than 10000 seeds" if needs > stats.MAX_SEEDS else f"needs {needs} seeds")
    elif pair["n"] < 2 and enough:
        reasons.append(f"needs at least {max(min_seeds, 2)} seeds to estimate a spread")
    return {"reason": f"{display(pair, beat=False)}: {'; '.join(reasons)}", "seeds_needed": needs}


def pairs_frame(claim: str, pairs: list[dict]) -> pd.DataFrame:
    """pairs.csv rows of one claim (the private '_' fields left out)."""
    rows = [{"claim": claim, **{k: v for k, v in p.items() if not k.startswith("_")}} for p in pairs]
    return pd.DataFrame(rows).reindex(columns=PAIR_COLUMNS)


def public(pair: dict) -> dict:
    """The pair without its private fields (what pairs.csv and the Verdict carry)."""
    return {k: v for k, v in pair.items() if not k.startswith("_")}


def convergence(pair: dict, cells: dict[str, pd.DataFrame], strategy: str, seeds: list,
                reference: str = "SGD") -> dict:
    """Record both sides' convergence on the paired seeds; a side not converged (or not recorded)
    keeps the pair from deciding either way: the same standard on both sides. `cells["sgd"]` is the
    reference side, named `reference` in the reasons."""
    blocks = []
    for side, name in ((strategy, "converged_ours"), ("sgd", "converged_sgd")):
        shown = reference if side == "sgd" else side
        side_cells = cells[side].loc[[s for s in seeds if s in cells[side].index]]
        if "converged" not in side_cells:
            pair[name] = "not recorded"
            blocks.append(f"{shown} convergence not recorded")
            continue
        flags = side_cells["converged"].map(truthy)
        pair[name] = f"{int(flags.sum())}/{len(flags)}"
        off = [f"{side if reference == 'SGD' else shown} seed {k}" for k, v in flags.items() if not v]
        if off:
            blocks.append(f"{shown} not converged ({', '.join(off[:3])})")
    pair["_blocks"] = pair["_blocks"] + sorted(blocks, key=lambda b: not b.startswith(reference))
    return pair
