"""Claims beyond the paper (issue 32): multiscale against SGD given the same executed #WU, and the
paper's open readings (Full-Multiscale's budget, the data on coarse meshes) as claims of their own.

- `beats_equal_wu`: per network, a multiscale cell (`strategy`, its `variant`) against the SGD cell whose
  schedule the pipeline compressed to that cell's closed-form #WU (`reference_variant`, a `wu_match`
  variant: pipeline/cells.py), on paired seeds. One-sided superiority on the worse-signed log ratio
  (bound 0: multiscale better means a log ratio < 0 for MSE, > 0 for SSIM): a pair is REPRODUCED when its
  one-sided p of "better", Holm-corrected across the claim's pairs, is below 0.025 (its 95% interval then
  lies wholly on the multiscale side), DEVIATES when its p of "worse" is, after Holm; both sides converged,
  `min_seeds` seeds and the power calculation as every pair (`report.pairs`). A side that has not
  plateaued leaves the pair INCONCLUSIVE, named, never dropped.
- `similar_quality_reading`: the `similar_quality` claim (the same pairs, margin, cost and convergence
  rules) with the multiscale side's cells taken from a variant (`wu16`: Table 4's printed #WU;
  `nearest`: the coarse data by injection) against the base SGD cells, its reason saying whether the
  verdict differs from the base reading's.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from ...core.cell import METRICS_FILE
from .. import pairs as P
from .. import stats
from ..engine import (
    DEVIATES,
    INCONCLUSIVE,
    NOT_RUN,
    REPRODUCED,
    Inputs,
    check,
    combine,
    datasets,
    first_metric,
    substitution_note,
)
from ..layout import normalise
from .quality import _rows, _similar_published, _status, check_similar_quality, pairs_summary

MATCHED = "matched SGD"
# `report.pairs` words its reasons for a margin; a superiority pair's bound is "no difference"
_WORDS = (("within the margin", f"better than the {MATCHED}"), ("outside the margin", f"worse than the {MATCHED}"),
          ("straddles the margin", "straddles 1 (no difference)"))


def equal_pair(table: pd.DataFrame, arch: str, spec: dict) -> dict[str, Any]:
    """One network's multiscale cells against its matched SGD cells on the same seeds (undecided)."""
    strategy, variant, reference = spec["strategy"], spec.get("variant", "base"), spec["reference_variant"]
    metric, higher, name = spec["metric"], spec["higher_is_better"], spec["input"]
    ours = _rows(table, arch, strategy, variant).set_index("seed")
    theirs = _rows(table, arch, "sgd", reference).set_index("seed")
    label = strategy if variant == "base" else f"{strategy}+{variant}"
    pair = {**P.new_pair(name, arch, strategy, metric, versus=f"{name}:sgd+{reference}"), "margin": 1.0,
            "_versus": MATCHED, "_label": label}
    status = {label: _status(ours), MATCHED: _status(theirs)}
    failed = [f"{s} seed {k}" for s, st in status.items() for k, v in st.items() if v not in ("ok", "nan", "diverged")]
    worse_log = stats.worse(stats.log_ratios(ours[metric], theirs[metric]), higher)
    P.fill(pair, worse_log, higher, 0.0)
    if failed:
        return P.fixed(pair, NOT_RUN, f"failed to run ({', '.join(failed)}; see the cell's {METRICS_FILE} error)")
    diverged = {s: set(st[st == "diverged"].index) for s, st in status.items()}
    if diverged[label] - diverged[MATCHED]:  # per paired seed: its matched SGD finished there
        return P.fixed(pair, DEVIATES, f"diverged on seed(s) {sorted(diverged[label] - diverged[MATCHED])}")
    if diverged[MATCHED]:
        return P.fixed(pair, INCONCLUSIVE, f"its {MATCHED} diverged on seed(s) {sorted(diverged[MATCHED])}")
    return P.convergence(pair, {label: ours, "sgd": theirs}, label, list(worse_log.index), MATCHED)


def superiority(pairs: list[dict], min_seeds: int) -> list[dict]:
    """`pairs.decide` with bound 0, then Holm on the one-sided p of "better" too: a pair whose interval
    lies below 1 but whose Holm-corrected p of "better" is not below 0.025 stays INCONCLUSIVE, with the
    seeds a power calculation at Holm's strictest step asks for."""
    decided = P.decide(pairs, min_seeds)
    better = [stats.p_inside(p["_worse"], 0.0) if p["verdict"] == REPRODUCED else float("nan") for p in decided]
    adjusted = stats.holm(better)
    family = max(sum(a == a for a in stats.holm([p.get("p_worse", float("nan")) for p in decided])), 1)
    out = []
    for pair, p, holm in zip(decided, better, adjusted):
        if pair["verdict"] == REPRODUCED and not holm < stats.ALPHA:
            interval = pair["_interval"]
            needs = stats.seeds_needed(interval.mean, interval.sd, 0.0, stats.ALPHA / family)
            pair = {**pair, "verdict": INCONCLUSIVE, "seeds_needed": needs,
                    "reason": f"{P.display(pair, beat=False)}: better before Holm's correction, not after "
                              f"(p={p:.2g}, Holm over {family} pairs {holm:.2g}); needs {needs} seeds"}
        elif pair["verdict"] == REPRODUCED:
            pair = {**pair, "reason": f"{pair['reason']} (p={p:.2g}, Holm over {family} pairs {holm:.2g})"}
        reason = pair["reason"]
        for old, new in _WORDS:
            reason = reason.replace(old, new)
        out.append({**pair, "reason": reason})
    return out


def _wu_note(table: pd.DataFrame, pairs: list[dict], spec: dict) -> str:
    """The executed (or closed-form) #WU of the multiscale cells over their matched SGD's, per network."""
    column = first_metric(table, ["wu_executed", "wu_closed_form"])
    if column is None:
        return "no #WU recorded"
    ratios = []
    for pair in pairs:
        ours = pd.to_numeric(_rows(table, pair["arch"], spec["strategy"], spec.get("variant", "base"))[column], errors="coerce")
        theirs = pd.to_numeric(_rows(table, pair["arch"], "sgd", spec["reference_variant"])[column], errors="coerce")
        if ours.notna().any() and theirs.notna().any():
            ratios.append(f"{pair['arch']} {ours.mean() / theirs.mean():.3g}")
    return f"#WU over the {MATCHED}'s: " + (", ".join(ratios) or "n/a")


@check("beats_equal_wu")
def check_beats_equal_wu(data: Inputs):
    """Per network, the multiscale cells against SGD given the same #WU (see the module)."""
    spec, table = data.spec, data.frame
    if spec["metric"] not in table.columns:
        return data.verdict(NOT_RUN, f"results lack {spec['metric']}")
    arch = table["arch"].map(normalise)
    archs = sorted(set(arch))
    pairs = [equal_pair(table, a, spec) for a in archs]
    pairs = [p for p in pairs if p["n"] or "_fixed" in p]
    if not pairs:
        return data.verdict(NOT_RUN, f"no network has both {spec['strategy']} and its {MATCHED} "
                                     f"(sgd+{spec['reference_variant']}) on the same seeds")
    pairs = superiority(pairs, data.tolerance.get("min_seeds", 3))
    verdict = combine(p["verdict"] for p in pairs)
    reason = (pairs_summary(verdict, pairs) + f" ({_wu_note(table, pairs, spec)})" + substitution_note(table, spec["input"]))
    best = min(pairs, key=lambda p: (p["verdict"] != verdict, -_high(p)))
    return data.verdict(verdict, reason, reproduced=best["display"], dataset=datasets(table),
                        pairs=tuple(P.public(p) for p in pairs))


def _high(pair: dict) -> float:
    interval = pair.get("_interval")
    return interval.high if interval is not None and interval.high == interval.high else float("inf")


def reading_frame(table: pd.DataFrame, variant: str) -> pd.DataFrame:
    """The base SGD rows beside the multiscale rows of `variant`, relabelled as the base variant, so the
    `similar_quality` check reads the reading as it reads the base cells."""
    if "variant" not in table.columns:
        return table.iloc[0:0]
    variants, strategies = table["variant"].map(normalise), table["strategy"].map(normalise)
    sgd = table[(strategies == "sgd") & variants.isin(["base", "nan", "none", ""])]
    ours = table[(strategies != "sgd") & (variants == normalise(variant))].assign(variant="base")
    return pd.concat([sgd, ours]) if not ours.empty else table.iloc[0:0]


@check("similar_quality_reading", published=_similar_published)
def check_similar_quality_reading(data: Inputs):
    """`similar_quality` on a reading's multiscale cells (`variant`) against the base SGD cells; the
    reason says whether the verdict differs from the base reading's."""
    spec = data.spec
    run = check_similar_quality.__wrapped__
    frame = reading_frame(data.frame, spec["variant"])
    if frame.empty:
        return data.verdict(NOT_RUN, f"{spec['input']}.csv has no multiscale cell of the {spec['variant']} variant")
    reading = run(Inputs(spec, {spec["input"]: frame}, data.published, data.results))
    base = run(Inputs(spec, {spec["input"]: data.frame}, data.published, data.results))
    if base.verdict == reading.verdict:
        note = f"; the same verdict as the base reading ({base.verdict})"
    else:
        note = f"; DIFFERS from the base reading, {base.verdict}"
    return reading.replace(reason=f"{spec['variant']} reading: {reading.reason}{note}")
