"""Checks on trained cells against SGD (Tables 3-8): similar quality, time to quality, absolute values."""

from __future__ import annotations

import math
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
    base_variant,
    check,
    combine,
    datasets,
    first_metric,
    ok_rows,
    published_by_keys,
    strategy_means,
    substitution_note,
    where,
)
from ..layout import normalise


def _similar_published(spec: dict) -> str:
    if spec.get("published"):
        return spec["published"]
    pub = pd.DataFrame(
        [{**c["keys"], spec["metric"]: c["value"]} for c in published_by_keys(spec["input"]) if "arch" in c["keys"]]
    )
    return f"worst gap {_worst_gap(pub, spec['metric'], spec['higher_is_better'])[0]:+.1%}"


def pairs_summary(verdict: str, pairs: list[dict[str, Any]], instead: str = "") -> str:
    """The head of a pairs claim's reason: the verdict, the tally of its pairs' verdicts, and the reasons of
    (at most three of) the pairs that give the verdict, or `instead` of them."""
    tally = pd.Series([p["verdict"] for p in pairs]).value_counts()
    deciding = [] if instead else [p for p in pairs if p["verdict"] == verdict]
    return (f"{verdict.lower()} ({len(pairs)} pairs: " + ", ".join(f"{n} {v}" for v, n in tally.items()) + "): "
            + "; ".join([instead] if instead else [p["reason"] for p in deciding[:3]])
            + (" ..." if len(deciding) > 3 else ""))



@check("similar_quality", published=_similar_published)
def check_similar_quality(data: Inputs):
    """Per network and multiscale strategy, a pair against SGD on the same seeds (see `report.pairs`):
    the seed-paired log ratio's 95% interval against the claim's non-inferiority margin, Holm across the
    claim's pairs, both sides converged to decide either way. REPRODUCED also needs the multiscale cells
    cheaper in #WU (the claims say "at a fraction of the #WU"). A diverged multiscale cell deviates
    unless SGD's cell of the same seed diverged too (per seed, whatever other SGD seeds did); otherwise a
    diverged SGD reference decides nothing."""
    spec, table, tol = data.spec, data.frame, data.tolerance
    metric, higher = spec["metric"], spec["higher_is_better"]
    if metric not in table.columns:
        return data.verdict(NOT_RUN, f"results lack {metric}")
    pairs = [
        quality_pair(table, arch, strategy, metric, higher=higher, margin=tol["margin"], name=spec["input"])
        for arch, strategy in multiscale_pairs(table)
    ]
    if not pairs:
        return data.verdict(NOT_RUN, "no network has both SGD and a multiscale strategy")
    pairs = P.decide(pairs, tol.get("min_seeds", 3))
    verdict, cost = _with_cost(combine(p["verdict"] for p in pairs), table, spec["input"])
    worst = max(pairs, key=lambda p: (p["verdict"] == verdict, _mean(p)))
    reason = (
        pairs_summary(verdict, pairs, instead=cost[1])
        + f" (margin {tol['margin']:.0%} {'below' if higher else 'above'} SGD; #WU fraction of SGD: {cost[0]})"
        + substitution_note(table, spec["input"])
    )
    return data.verdict(
        verdict, reason, reproduced=worst["display"], dataset=datasets(table), pairs=tuple(P.public(p) for p in pairs)
    )


def _mean(pair: dict) -> float:
    interval = pair.get("_interval")
    return interval.mean if interval is not None and interval.mean == interval.mean else -math.inf


def _with_cost(verdict: str, table: pd.DataFrame, name: str) -> tuple[str, tuple[str, str]]:
    """Quality inside the margin on every pair still needs the multiscale cells cheaper than SGD's:
    not cheaper DEVIATES; no #WU recorded leaves the claim's cost half undecided (INCONCLUSIVE)."""
    table = base_variant(table)  # the claim's cells: a variant (a longer budget, SGD at equal #WU) costs otherwise
    wu_col = first_metric(table, ["wu_executed", "wu_closed_form"])
    wu = strategy_means(table, wu_col) if wu_col else pd.Series(dtype=float)
    fractions = {s: wu[s] / wu["sgd"] for s in ("msgd", "fmsgd") if s in wu and "sgd" in wu}
    shown = ", ".join(f"{s} {f:.3g}" for s, f in fractions.items()) or "no #WU"
    if verdict != REPRODUCED:
        return verdict, (shown, "")
    if not fractions:
        return INCONCLUSIVE, (
            shown,
            f"every pair is within the margin, but {name}.csv records no #WU "
            "(wu_executed or wu_closed_form): 'at a fraction of the #WU' is undecided",
        )
    dearer = {s: f for s, f in fractions.items() if f >= 1}
    if dearer:
        return DEVIATES, (
            shown,
            "every pair is within the margin, but not at a fraction of SGD's #WU: "
            + ", ".join(f"{s} {f:.3g}x SGD's" for s, f in dearer.items()),
        )
    return verdict, (shown, "")


def multiscale_pairs(table: pd.DataFrame) -> list[tuple[str, str]]:
    arch, strategy = table["arch"].map(normalise), table["strategy"].map(normalise)
    have = set(zip(arch, strategy))
    return sorted({(a, s) for a, s in have if s != "sgd" and (a, "sgd") in have})


def _status(cells: pd.DataFrame) -> pd.Series:
    return cells["status"].map(normalise) if "status" in cells else pd.Series("ok", index=cells.index)


def quality_pair(
    table: pd.DataFrame, arch: str, strategy: str, metric: str, *, higher: bool, margin: float, name: str = ""
) -> dict[str, Any]:
    """The evidence of one (network, multiscale strategy) against SGD on the same seeds (undecided). A
    multiscale seed that diverged where SGD's did not decides the pair (DEVIATES); otherwise an SGD seed
    that diverged leaves it INCONCLUSIVE."""
    rows = base_variant(table[table["arch"].map(normalise) == arch])
    cells = {s: rows[rows["strategy"].map(normalise) == s].set_index("seed") for s in (strategy, "sgd")}
    bound = stats.margin_bound(margin, higher)
    pair = {**P.new_pair(name, arch, strategy, metric), "margin": (1 - margin) if higher else (1 + margin)}
    status = {s: _status(c) for s, c in cells.items()}
    failed = [f"{s} seed {k}" for s, st in status.items() for k, v in st.items() if v not in ("ok", "nan", "diverged")]
    if failed:
        return P.fixed(pair, NOT_RUN, f"failed to run ({', '.join(failed)}; see the cell's {METRICS_FILE} error)")
    worse_log = stats.worse(stats.log_ratios(cells[strategy][metric], cells["sgd"][metric]), higher)
    P.fill(pair, worse_log, higher, bound)  # on the seeds both finished, also when a verdict is fixed below
    diverged = {s: set(st[st == "diverged"].index) for s, st in status.items()}
    deviating = sorted(diverged[strategy] - diverged["sgd"])  # per paired seed: SGD did not diverge there
    if deviating:
        return P.fixed(pair, DEVIATES, f"diverged on seed(s) {deviating}")
    if diverged["sgd"]:
        return P.fixed(pair, INCONCLUSIVE, "its SGD reference diverged")
    return P.convergence(pair, cells, strategy, list(worse_log.index))


def _worst_gap(table: pd.DataFrame, metric: str, higher: bool) -> tuple[float, str, int]:
    table = table.assign(_a=table["arch"].map(normalise), _s=table["strategy"].map(normalise))
    means = pd.to_numeric(table[metric], errors="coerce").groupby([table["_a"], table["_s"]]).mean().dropna()
    worst, at, archs = -math.inf, "", set()
    for (arch, strategy), value in means.items():
        if strategy == "sgd" or (arch, "sgd") not in means.index:
            continue
        base = means[(arch, "sgd")]
        gap = (base - value) / base if higher else (value - base) / base
        archs.add(arch)
        if gap > worst:
            worst, at = gap, f"{arch}/{strategy}"
    return (worst if archs else float("nan")), at, len(archs)


def _absolute_cell(spec: dict) -> dict:
    return next(
        c
        for c in published_by_keys(spec["table"])
        if all(normalise(c["keys"].get(k)) == normalise(v) for k, v in spec["cell"].items())
    )


@check("absolute", published=lambda spec: _absolute_cell(spec)["printed"])
def check_absolute(data: Inputs):
    """One cell's absolute value, on the paper's dataset only (another dataset standing in: NOT_RUN)."""
    spec, cell = data.spec, _absolute_cell(data.spec)
    rows = where(ok_rows(data.frame), spec["cell"])
    used = datasets(rows if not rows.empty else data.frame)
    needed = spec["requires_dataset"]
    if normalise(used) != normalise(needed):
        return data.verdict(
            NOT_RUN, f"needs {needed} (network download); this profile ran on {used or 'nothing'}", dataset=used
        )
    values = pd.to_numeric(rows[spec["metric"]], errors="coerce").dropna()
    if values.empty:
        return data.verdict(NOT_RUN, "no finished run for this cell", dataset=used)
    mean, tol = float(values.mean()), data.tolerance
    limit = tol["abs"] if "abs" in tol else tol["rel"] * cell["value"]
    holds = abs(mean - cell["value"]) <= limit
    return data.verdict(
        REPRODUCED if holds else DEVIATES,
        f"|{mean:.4g} - {cell['value']:g}| {'<=' if holds else '>'} {limit:.3g}",
        reproduced=f"{mean:.4g} (n={len(values)})",
        dataset=used,
    )


def _reference_inputs(spec: dict) -> list[str]:
    other = spec["reference"].get("input")
    return [spec["input"]] + ([other] if other and other != spec["input"] else [])


def _rows(frame: pd.DataFrame, arch: str, strategy: str, variant: str) -> pd.DataFrame:
    rows = frame[(frame["arch"].map(normalise) == arch) & (frame["strategy"].map(normalise) == strategy)]
    if variant == "base":
        return base_variant(rows)
    return rows[rows.get("variant", pd.Series("", index=rows.index)).map(normalise) == variant]


def reference_pair(data: Inputs, arch: str, strategy: str) -> dict[str, Any]:
    """One (network, strategy): the claim's cells (`input`, `variant`) against its reference cells (the
    `reference:` input and variant) on the same seeds, worse-signed, both sides converged to decide."""
    spec, ref = data.spec, data.spec["reference"]
    metric, higher = spec["metric"], spec["higher_is_better"]
    ours = _rows(data.frames[spec["input"]], arch, strategy, spec.get("variant", "base")).set_index("seed")
    theirs = _rows(data.frames[ref.get("input", spec["input"])], arch, strategy, ref.get("variant", "base"))
    theirs = theirs.set_index("seed")
    label = f"{strategy}, {spec.get('label', spec['input'])}"
    variant = ref.get("variant", "base")
    versus = f"{ref.get('input', spec['input'])}:{strategy}" + ("" if variant == "base" else f"+{variant}")
    pair = {**P.new_pair(spec["input"], arch, strategy, metric, versus=versus), "margin": 1 + spec["tolerance"]["margin"],
            "_versus": ref["label"], "_label": label}
    failed = [f"seed {k}" for k, v in pd.concat([_status(ours), _status(theirs)]).items() if v not in ("ok", "nan")]
    worse_log = stats.worse(stats.log_ratios(ours[metric], theirs[metric]), higher)
    P.fill(pair, worse_log, higher, stats.margin_bound(spec["tolerance"]["margin"], higher))
    if failed:
        return P.fixed(pair, NOT_RUN, f"a cell did not finish ({', '.join(failed)})")
    if not spec.get("judge_convergence", True):  # Table 10: the doubling is itself the convergence test
        return {**pair, "converged_ours": "n/a", "converged_sgd": "n/a"}
    return P.convergence(pair, {label: ours, "sgd": theirs}, label, list(worse_log.index), ref["label"])


@check("reference_pairs", inputs=_reference_inputs)
def check_reference_pairs(data: Inputs):
    """Tables 10 and 12: per network and strategy, the claim's cells against reference cells of the same
    network, strategy and seeds (another variant, or another table), with the pair rule of the quality
    claims: seed-paired log ratio, non-inferiority margin, Holm, both sides converged."""
    spec, tol = data.spec, data.tolerance
    ours = data.frames[spec["input"]]
    if spec["metric"] not in ours.columns:
        return data.verdict(NOT_RUN, f"results lack {spec['metric']}")
    keys = sorted(set(zip(ours["arch"].map(normalise), ours["strategy"].map(normalise))))
    keys = [(a, s) for a, s in keys if s in spec.get("strategies", [s]) and a in spec.get("archs", [a])]
    pairs = [reference_pair(data, a, s) for a, s in keys]
    pairs = [p for p in pairs if p["n"] or p["verdict"] == NOT_RUN]
    if not pairs:
        return data.verdict(NOT_RUN, f"no cell has its reference ({spec['reference']['label']}) on the same seeds")
    pairs = P.decide(pairs, tol.get("min_seeds", 3))
    verdict = combine(p["verdict"] for p in pairs)
    reason = (pairs_summary(verdict, pairs) + f" (margin {tol['margin']:.0%} against {spec['reference']['label']})"
              + substitution_note(ours, spec["input"]))
    worst = max(pairs, key=lambda p: (p["verdict"] == verdict, _mean(p)))
    return data.verdict(verdict, reason, reproduced=worst["display"], dataset=datasets(ours),
                        pairs=tuple(P.public(p) for p in pairs))
