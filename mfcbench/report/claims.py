"""Claims and verdicts: a pure function from result tables to one verdict row per claim.

Each claim in `claims.yaml` names a check registered here; a check reads DataFrames (never
files, never training code) and returns the reproduced value, verdict and reason. New claim
kinds are one decorated function.
"""

from __future__ import annotations

import math
from fractions import Fraction
from pathlib import Path
from typing import Any, Callable

import pandas as pd
import yaml

from ..core.registry import Registry
from .published import equal_at_printed_precision, published_cells, round_like
from .layout import OK, build_table, normalise

CLAIMS_PATH = Path(__file__).with_name("claims.yaml")
REPRODUCED, DEVIATES, INCONCLUSIVE, NOT_RUN = "REPRODUCED", "DEVIATES", "INCONCLUSIVE", "NOT_RUN"
VERDICTS = (REPRODUCED, DEVIATES, INCONCLUSIVE, NOT_RUN)
CLAIM_COLUMNS = ["id", "claim", "source", "published", "reproduced", "profile", "dataset",
                 "verdict", "reason", "tolerance"]
_NO_DATASET = {"", "synthetic", "none", "nan"}

Check = Callable[[dict, dict], dict]
CHECKS: Registry[Check] = Registry("claim check")


def load_claims(path: str | Path | None = None) -> list[dict[str, Any]]:
    with open(path or CLAIMS_PATH) as handle:
        return yaml.safe_load(handle)


def score_claims(claims: list[dict], results: dict[str, pd.DataFrame], profile: str = "") -> pd.DataFrame:
    """One row per claim. `results` maps a result name ('table4', 'lemma4', ...) to its DataFrame."""
    rows = []
    for spec in claims:
        try:
            outcome = CHECKS.get(spec["check"])(spec, results)
        except (KeyError, ValueError, TypeError) as error:  # malformed results: say so, don't crash the report
            outcome = _verdict(NOT_RUN, f"could not score: {error.__class__.__name__}: {error}")
        rows.append({
            "id": spec["id"], "claim": spec["claim"], "source": spec.get("source", ""),
            "published": outcome.get("published", ""), "reproduced": outcome.get("reproduced", ""),
            "profile": profile, "dataset": outcome.get("dataset", ""),
            "verdict": outcome["verdict"], "reason": outcome.get("reason", ""),
            "tolerance": ", ".join(f"{k}={v}" for k, v in (spec.get("tolerance") or {}).items()),
        })
    return pd.DataFrame(rows, columns=CLAIM_COLUMNS)


def _verdict(verdict: str, reason: str = "", **extra) -> dict:
    return {"verdict": verdict, "reason": reason, **extra}


def _frame(results: dict, name: str) -> pd.DataFrame | None:
    frame = results.get(name)
    return None if frame is None or frame.empty else frame


def _where(frame: pd.DataFrame, spec: dict) -> pd.DataFrame:
    """The rows a claim is about (its `where:`, e.g. {arch: blur_mfc}, the cells the paper's table shows)."""
    for column, wanted in (spec.get("where") or {}).items():
        frame = frame[frame[column].map(normalise) == normalise(wanted)] if column in frame else frame.iloc[0:0]
    return frame


def _missing(name: str) -> dict:
    return _verdict(NOT_RUN, f"no results: {name}.csv missing or empty")


def _ok_rows(frame: pd.DataFrame) -> pd.DataFrame:
    if "status" not in frame.columns:
        return frame
    return frame[frame["status"].map(normalise).isin(["ok", "nan"])]


def _filter(frame: pd.DataFrame, where: dict) -> pd.DataFrame:
    for column, wanted in (where or {}).items():
        if column not in frame.columns:
            raise KeyError(f"results lack column {column!r}")
        frame = frame[frame[column].map(normalise) == normalise(wanted)]
    return frame


def _datasets(frame: pd.DataFrame) -> str:
    return "+".join(sorted({str(d) for d in frame["dataset"].dropna()})) if "dataset" in frame.columns else ""


def _strategy_means(frame: pd.DataFrame, metric: str) -> pd.Series:
    frame = _ok_rows(frame).assign(_s=lambda f: f["strategy"].map(normalise))
    return pd.to_numeric(frame[metric], errors="coerce").groupby(frame["_s"]).mean().dropna()


def _first_metric(frame: pd.DataFrame, candidates) -> str | None:
    for name in [candidates] if isinstance(candidates, str) else candidates:
        if name in frame.columns and pd.to_numeric(frame[name], errors="coerce").notna().any():
            return name
    return None


def _published_by_keys(table: str, block: str | None = None) -> list[dict]:
    return [c for c in published_cells(table) if block is None or c["block"] == block]


# --- checks -------------------------------------------------------------------------------------
RESOLUTION_ORDER = ["1/1024", "1/512", "1/256", "1/128", "1/64", "1/32"]  # finest -> coarsest


@CHECKS.register("trend")
def check_trend(spec: dict, results: dict) -> dict:
    """Ratio of the discrepancy on the finest vs the coarsest mesh, in the claimed direction."""
    frame = _frame(results, spec["input"])
    published_cells_ = [c for c in _published_by_keys(spec["input"]) if normalise(c["keys"].get("input")) == normalise(spec["where"]["input"])]
    pub = {c["keys"]["resolution"]: c["value"] for c in published_cells_}
    pub_ratio = pub[RESOLUTION_ORDER[0]] / pub[RESOLUTION_ORDER[-1]]
    published = f"d({RESOLUTION_ORDER[0]})/d({RESOLUTION_ORDER[-1]}) = {pub_ratio:.3g}"
    if frame is None:
        return {**_missing(spec["input"]), "published": published}
    rows = _ok_rows(_filter(frame, spec["where"]))
    means = pd.to_numeric(rows["discrepancy"], errors="coerce").groupby(rows["resolution"].astype(str)).mean().dropna()
    present = [r for r in RESOLUTION_ORDER if r in means.index]
    if len(present) < 2:
        return _verdict(NOT_RUN, "fewer than two resolutions measured", published=published)
    ratio = means[present[0]] / means[present[-1]]
    n = rows["seed"].nunique() if "seed" in rows.columns else len(rows)
    reproduced = f"d({present[0]})/d({present[-1]}) = {ratio:.3g} (n={n} seeds)"
    floor = spec["tolerance"]["min_ratio"]
    holds = ratio >= floor if spec["direction"] == "grows" else ratio <= 1 / floor
    reason = f"{spec['direction']} as the mesh refines {'holds' if holds else 'does not hold'} (needs ratio {'>=' if spec['direction'] == 'grows' else '<='} {floor if spec['direction'] == 'grows' else round(1 / floor, 3)})"
    return _verdict(REPRODUCED if holds else DEVIATES, reason, published=published, reproduced=reproduced, dataset="synthetic")


@CHECKS.register("wu_coefficient")
def check_wu_coefficient(spec: dict, results: dict) -> dict:
    """The closed-form #WU coefficient (per N0*I) from workunits.csv (strategy, coefficient)."""
    published = f"{spec['exact']} (printed {spec['printed']})"
    frame = _frame(results, spec["input"])
    if frame is None:
        return {**_missing(spec["input"]), "published": published}
    rows = frame[frame["strategy"].map(normalise) == normalise(spec["strategy"])]
    values = pd.to_numeric(rows.get("coefficient"), errors="coerce").dropna() if "coefficient" in rows else pd.Series(dtype=float)
    if values.empty:
        return _verdict(NOT_RUN, f"no coefficient for {spec['strategy']} in {spec['input']}.csv", published=published)
    value = float(values.iloc[0])
    exact = float(Fraction(spec["exact"]))
    holds = math.isclose(value, exact, rel_tol=spec["tolerance"]["rel"]) and equal_at_printed_precision(value, spec["printed"])
    return _verdict(REPRODUCED if holds else DEVIATES, f"{value:.6g} vs exact {exact:.6g}",
                    published=published, reproduced=f"{value:.6g}", dataset="none")


@CHECKS.register("wu_ratio")
def check_wu_ratio(spec: dict, results: dict) -> dict:
    """#WU(numerator) / #WU(denominator) from the closed-form column of the first training table present."""
    published = spec["printed"]
    for name in spec["inputs"]:
        frame = _frame(results, name)
        if frame is None or "wu_closed_form" not in frame.columns:
            continue
        means = _strategy_means(frame, "wu_closed_form")
        if spec["numerator"] in means and spec["denominator"] in means:
            ratio = means[spec["numerator"]] / means[spec["denominator"]]
            rel = (spec.get("tolerance") or {}).get("rel")
            if rel is not None:  # approximate wording ("roughly 16"): a stated relative tolerance
                target = float(spec["printed"])
                holds = abs(ratio - target) <= rel * target
                reason = (f"{ratio:.4g} is {abs(ratio - target) / target:.1%} from {spec['printed']} "
                          f"({'within' if holds else 'outside'} the {rel:.0%} tolerance; from {name}.csv wu_closed_form)")
            else:
                holds = equal_at_printed_precision(ratio, spec["printed"])
                reason = f"{ratio:.4g} rounds to {round_like(ratio, spec['printed']):g} at the printed precision (from {name}.csv wu_closed_form)"
            return _verdict(REPRODUCED if holds else DEVIATES, reason, published=published,
                            reproduced=f"{ratio:.4g}", dataset="none")
    return _verdict(NOT_RUN, f"no wu_closed_form for {spec['numerator']} and {spec['denominator']} in {', '.join(spec['inputs'])}", published=published)


@CHECKS.register("wu_savings")
def check_wu_savings(spec: dict, results: dict) -> dict:
    cells = {c["keys"]["strategy"]: c["value"] for c in _published_by_keys(spec["input"], "wu")}
    published = f"SGD/MSGD = {cells['sgd'] / cells['msgd']:.3g}, SGD/FMSGD = {cells['sgd'] / cells['fmsgd']:.3g}"
    frame = _frame(results, spec["input"])
    if frame is None:
        return {**_missing(spec["input"]), "published": published}
    frame = _where(frame, spec)
    metric = _first_metric(frame, spec["metric"])
    if metric is None:
        return _verdict(NOT_RUN, f"results lack {', '.join(spec['metric'])}", published=published)
    means = _strategy_means(frame, metric)
    if not {"sgd", "msgd", "fmsgd"} <= set(means.index):
        return _verdict(NOT_RUN, f"needs sgd, msgd and fmsgd; have {', '.join(means.index)}", published=published)
    r_m, r_f = means["sgd"] / means["msgd"], means["sgd"] / means["fmsgd"]
    floor = spec["tolerance"]["min_ratio"]
    holds = r_m >= floor and r_f > r_m
    return _verdict(REPRODUCED if holds else DEVIATES,
                    f"order SGD > MSGD > FMSGD {'holds' if r_f > r_m > 1 else 'fails'}; MSGD saving {'>=' if r_m >= floor else '<'} {floor}x ({metric}"
                    + "".join(f", {k} {v}" for k, v in (spec.get("where") or {}).items()) + ")",
                    published=published, reproduced=f"SGD/MSGD = {r_m:.3g}, SGD/FMSGD = {r_f:.3g}", dataset=_datasets(frame))


@CHECKS.register("similar_quality")
def check_similar_quality(spec: dict, results: dict) -> dict:
    """Per network and multiscale strategy: the seed-paired ratio multiscale/SGD of the metric, its
    mean and 95% Student-t interval; REPRODUCED when every interval lies inside the margin (and the
    multiscale cells are cheaper) against converged SGD cells, DEVIATES when one lies wholly outside
    with converged cells on both sides, INCONCLUSIVE when an SGD reference is not converged, fewer
    than `min_seeds` seeds ran, a worse multiscale cell had not converged (more budget might close the
    gap), or an interval straddles the margin. A diverged multiscale cell beside a finished SGD cell
    deviates."""
    metric, higher = spec["metric"], spec["higher_is_better"]
    tol = spec["tolerance"]
    pub = pd.DataFrame([{**c["keys"], "value": c["value"]} for c in _published_by_keys(spec["input"]) if "arch" in c["keys"]])
    published = spec.get("published") or f"worst gap {_worst_gap(pub.rename(columns={'value': metric}), metric, higher)[0]:+.1%}"
    frame = _frame(results, spec["input"])
    if frame is None:
        return {**_missing(spec["input"]), "published": published}
    frame = _where(frame, spec)
    if metric not in frame.columns:
        return _verdict(NOT_RUN, f"results lack {metric}", published=published)
    pairs = [quality_pair(frame, arch, strategy, metric, higher, tol["margin"], tol.get("min_seeds", 3))
             for arch, strategy in _multiscale_pairs(frame)]
    if not pairs:
        return _verdict(NOT_RUN, "no network has both SGD and a multiscale strategy", published=published)
    wu_col = _first_metric(frame, ["wu_executed", "wu_closed_form"])
    wu = _strategy_means(frame, wu_col) if wu_col else pd.Series(dtype=float)
    fractions = {s: wu[s] / wu["sgd"] for s in ("msgd", "fmsgd") if s in wu and "sgd" in wu}
    verdict = _combine([p["verdict"] for p in pairs])
    if verdict == REPRODUCED and not (fractions and all(f < 1 for f in fractions.values())):
        verdict = DEVIATES
    worst = max(pairs, key=lambda p: (p["verdict"] == verdict, p["excess"] if p["excess"] == p["excess"] else -1))
    frac = ", ".join(f"{s} {f:.3g}" for s, f in fractions.items()) or "no #WU"
    deciding = [p for p in pairs if p["verdict"] == verdict]
    tally = pd.Series([p["verdict"] for p in pairs]).value_counts()
    reason = (f"{verdict.lower()} ({len(pairs)} pairs: " + ", ".join(f"{n} {v}" for v, n in tally.items()) + "): "
              + "; ".join(p["reason"] for p in deciding[:3]) + (" ..." if len(deciding) > 3 else "")
              + f" (margin {tol['margin']:.0%} {'below' if higher else 'above'} SGD; #WU fraction of SGD: {frac})"
              + _substitution_note(frame, spec["input"]))
    return _verdict(verdict, reason, published=published, reproduced=worst["display"], dataset=_datasets(frame))


def _multiscale_pairs(frame: pd.DataFrame) -> list[tuple[str, str]]:
    arch, strategy = frame["arch"].map(normalise), frame["strategy"].map(normalise)
    have = set(zip(arch, strategy))
    return sorted({(a, s) for a, s in have if s != "sgd" and (a, "sgd") in have})


def _combine(verdicts: list[str]) -> str:
    for verdict in (DEVIATES, INCONCLUSIVE, NOT_RUN):
        if verdict in verdicts:
            return verdict
    return REPRODUCED


def quality_pair(frame: pd.DataFrame, arch: str, strategy: str, metric: str, higher: bool, margin: float,
                 min_seeds: int) -> dict[str, Any]:
    """The verdict of one (network, multiscale strategy) against SGD on the same seeds."""
    rows = frame[frame["arch"].map(normalise) == arch]
    if "variant" in rows:  # the claim is about the plain strategies; variants (e.g. +crops) are other rows
        rows = rows[rows["variant"].map(normalise).isin(["base", "nan", "none", ""])]
    cells = {s: rows[rows["strategy"].map(normalise) == s].set_index("seed") for s in (strategy, "sgd")}
    label = f"{arch}/{strategy}"
    status = {s: c["status"].map(normalise) if "status" in c else pd.Series("ok", index=c.index) for s, c in cells.items()}
    failed = [f"{s} seed {k}" for s, st in status.items() for k, v in st.items() if v not in ("ok", "nan", "diverged")]
    if failed:
        return _pair(NOT_RUN, label, f"failed to run ({', '.join(failed)}; see the cell's metrics.json error)")
    if (status["sgd"] == "diverged").any():
        return _pair(INCONCLUSIVE, label, "its SGD reference diverged")
    if (status[strategy] == "diverged").any():
        return _pair(DEVIATES, label, f"diverged on seed(s) {sorted(status[strategy][status[strategy] == 'diverged'].index)}")
    seeds = sorted(set(cells["sgd"].index) & set(cells[strategy].index))
    ratio = (pd.to_numeric(cells[strategy].loc[seeds, metric], errors="coerce")
             / pd.to_numeric(cells["sgd"].loc[seeds, metric], errors="coerce")).dropna()
    excess = (1 - ratio) if higher else (ratio - 1)  # > 0: worse than SGD
    mean, low, high = mean_interval(excess)
    display = f"{label} {1 + (-mean if higher else mean):.3g}x SGD" + (
        f" [95% CI {1 + (-high if higher else low):.3g}, {1 + (-low if higher else high):.3g}]" if low == low else "") + f" (n={len(excess)})"
    unconverged = [f"{s} seed {k}" for s, c in cells.items() if "converged" in c
                   for k, v in c.loc[seeds, "converged"].items() if not _truthy(v)]
    if "converged" not in rows:
        unconverged = ["convergence not recorded"]
    reference = [u for u in unconverged if u.startswith(("sgd", "convergence"))]  # SGD's quality not known yet
    if len(excess) == 0:
        return _pair(NOT_RUN, label, "no seed with both cells finished", display)
    enough = len(excess) >= min_seeds
    if high <= margin and enough and not reference:  # it got there: its own convergence does not matter
        return _pair(REPRODUCED, label, f"{display} within the margin", display, mean)
    if low > margin and enough and not unconverged:  # worse, and more steps would not have helped
        return _pair(DEVIATES, label, f"{display} outside the margin (converged cells)", display, mean)
    why = (f"SGD not converged ({', '.join(reference[:3])})" if reference
           else f"only {len(excess)} seed(s) (needs {min_seeds})" if not enough
           else f"outside the margin but not converged ({', '.join(unconverged[:3])})" if low > margin
           else "the interval straddles the margin")
    return _pair(INCONCLUSIVE, label, f"{display}: {why}", display, mean)


def _pair(verdict: str, label: str, reason: str, display: str = "", excess: float = float("nan")) -> dict:
    return {"verdict": verdict, "reason": f"{label} {reason}" if not reason.startswith(label) else reason,
            "display": display or label, "excess": excess}


def _truthy(value: Any) -> bool:
    return normalise(value) in ("true", "1")


def mean_interval(values: pd.Series, level: float = 0.95) -> tuple[float, float, float]:
    """Mean and the two-sided Student-t interval (NaN bounds with fewer than 2 values)."""
    values = pd.to_numeric(values, errors="coerce").dropna()
    if values.empty:
        return float("nan"), float("nan"), float("nan")
    mean = float(values.mean())
    if len(values) < 2:
        return mean, float("nan"), float("nan")
    from scipy import stats

    half = float(stats.t.ppf(0.5 + level / 2, len(values) - 1) * values.std(ddof=1) / math.sqrt(len(values)))
    return mean, mean - half, mean + half


def _substitution_note(frame: pd.DataFrame, table: str) -> str:
    datasets, paper = _datasets(frame), _paper_dataset(table)
    return f"; checked on {datasets} (substitute for {paper}: the qualitative claim only)" if _substituted(datasets, paper) else ""


def _worst_gap(frame: pd.DataFrame, metric: str, higher: bool) -> tuple[float, str, int]:
    frame = frame.assign(_a=frame["arch"].map(normalise), _s=frame["strategy"].map(normalise))
    means = pd.to_numeric(frame[metric], errors="coerce").groupby([frame["_a"], frame["_s"]]).mean().dropna()
    worst, where, archs = -math.inf, "", set()
    for (arch, strategy), value in means.items():
        if strategy == "sgd" or (arch, "sgd") not in means.index:
            continue
        base = means[(arch, "sgd")]
        gap = (base - value) / base if higher else (value - base) / base
        archs.add(arch)
        if gap > worst:
            worst, where = gap, f"{arch}/{strategy}"
    return (worst if archs else float("nan")), where, len(archs)


@CHECKS.register("time_to_quality")
def check_time_to_quality(spec: dict, results: dict) -> dict:
    """Full-Multiscale reaches SGD's final metric (within the margin) at fewer executed #WU than SGD
    itself needs to get there: per network, on every seed; INCONCLUSIVE with unconverged cells or
    fewer than min_seeds seeds; DEVIATES when, with converged cells, it never gets there or needs more."""
    from .quality import time_to_quality

    tol, strategy = spec["tolerance"], spec.get("strategy", "fmsgd")
    published = "fewer #WU than SGD (Figure 5)"
    cells, curves = _frame(results, spec["input"]), _frame(results, f"curves_{spec['input']}")
    if cells is None or curves is None or "val_metric" not in curves or spec["metric"] not in cells:
        return _verdict(NOT_RUN, f"needs {spec['input']}.csv and curves_{spec['input']}.csv with validation curves",
                        published=published)
    ttq = time_to_quality(cells, curves, spec["metric"], spec["higher_is_better"], tol["margin"])
    outcomes = [_ttq_network(arch, group, strategy, tol.get("min_seeds", 3)) for arch, group in ttq.groupby("arch")]
    outcomes = [o for o in outcomes if o is not None]
    if not outcomes:
        return _verdict(NOT_RUN, f"no network has both SGD and {strategy}", published=published)
    verdict = _combine([o[0] for o in outcomes])
    reasons = [o[1] for o in outcomes if o[0] == verdict]
    others = [f"{o[1]} ({o[0]})" for o in outcomes if o[0] != verdict]
    reason = "; ".join(reasons[:4]) + (" ..." if len(reasons) > 4 else "") + f" (margin {tol['margin']:.0%})"
    return _verdict(verdict, reason + (f"; the other networks: {'; '.join(others[:3])}" if others else ""),
                    published=published, reproduced="; ".join(o[2] for o in outcomes[:4]), dataset=_datasets(cells))


def _ttq_network(arch: str, group: pd.DataFrame, strategy: str, min_seeds: int) -> tuple[str, str, str] | None:
    by = {s: g.set_index("seed") for s, g in group.groupby("strategy")}
    if "sgd" not in by or strategy not in by:
        return None
    seeds = sorted(set(by["sgd"].index) & set(by[strategy].index))
    ours, sgd = by[strategy].loc[seeds], by["sgd"].loc[seeds]
    ratio = ours["wu_to_quality"] / sgd["wu_to_quality"]
    shown = (f"{arch}: {strategy} reached on {int(ours['reached'].sum())}/{len(seeds)} seeds"
             + (f", at {ratio.mean():.2g}x SGD's #WU" if ratio.notna().any() else ""))
    reference = [f"sgd seed {k}" for k, v in sgd["converged"].items() if not _truthy(v)]
    mine = [f"{strategy} seed {k}" for k, v in ours["converged"].items() if not _truthy(v)]
    if reference:  # SGD's final value, the target, is not settled yet
        return INCONCLUSIVE, f"{shown}; SGD not converged ({', '.join(reference[:3])})", shown
    if len(seeds) < min_seeds:
        return INCONCLUSIVE, f"{shown}; only {len(seeds)} seed(s) (needs {min_seeds})", shown
    if ours["reached"].all() and (ratio < 1).all():
        return REPRODUCED, shown, shown
    if (~ours["reached"] | (ratio >= 1)).all():
        if mine:  # it never got there, but it was still improving: our budget, not the claim
            return INCONCLUSIVE, f"{shown}; {strategy} not converged ({', '.join(mine[:3])})", shown
        return DEVIATES, f"{shown}; SGD and {strategy} converged on every seed", shown
    return INCONCLUSIVE, f"{shown}; the seeds disagree", shown


def _paper_dataset(table: str) -> str:
    from .published import published_table
    return str(published_table(table).get("dataset", ""))


def _substituted(used: str, paper: str) -> bool:
    return bool(used) and normalise(paper) not in _NO_DATASET and normalise(used) != normalise(paper)


@CHECKS.register("absolute")
def check_absolute(spec: dict, results: dict) -> dict:
    cell = next(c for c in _published_by_keys(spec["table"]) if all(normalise(c["keys"].get(k)) == normalise(v) for k, v in spec["cell"].items()))
    published = cell["printed"]
    frame = _frame(results, spec["input"])
    if frame is None:
        return {**_missing(spec["input"]), "published": published}
    rows = _ok_rows(frame)
    for column, wanted in spec["cell"].items():
        rows = rows[rows[column].map(normalise) == normalise(wanted)]
    datasets = _datasets(rows if not rows.empty else frame)
    needed = spec["requires_dataset"]
    if normalise(datasets) != normalise(needed):
        return _verdict(NOT_RUN, f"needs {needed} (network download); this profile ran on {datasets or 'nothing'}",
                        published=published, dataset=datasets)
    values = pd.to_numeric(rows[spec["metric"]], errors="coerce").dropna()
    if values.empty:
        return _verdict(NOT_RUN, "no finished run for this cell", published=published, dataset=datasets)
    mean = float(values.mean())
    tol = spec["tolerance"]
    limit = tol["abs"] if "abs" in tol else tol["rel"] * cell["value"]
    holds = abs(mean - cell["value"]) <= limit
    return _verdict(REPRODUCED if holds else DEVIATES, f"|{mean:.4g} - {cell['value']:g}| {'<=' if holds else '>'} {limit:.3g}",
                    published=published, reproduced=f"{mean:.4g} (n={len(values)})", dataset=datasets)


@CHECKS.register("flops_formula")
def check_flops_formula(spec: dict, results: dict) -> dict:
    frame = _frame(results, spec["input"])
    published = f"n^2 k^2 * {spec['channels']}^2"
    if frame is None:
        return {**_missing(spec["input"]), "published": published}
    conv = frame[frame["op"].map(normalise) == "conv"]
    if conv.empty:
        return _verdict(NOT_RUN, "no conv rows", published=published)
    expected = conv["n"].astype("int64") ** 2 * conv["k"].astype("int64") ** 2 * spec["channels"] ** 2
    wrong = int((pd.to_numeric(conv["flops"]).astype("int64") != expected).sum())
    return _verdict(DEVIATES if wrong else REPRODUCED, f"{wrong} of {len(conv)} (n, k) cells differ from the formula",
                    published=published, reproduced=f"{len(conv) - wrong}/{len(conv)} exact", dataset="none")


@CHECKS.register("printed_cells")
def check_printed_cells(spec: dict, results: dict) -> dict:
    """Every measured cell of a table block equals the printed value at the printed precision."""
    frame = _frame(results, spec["table"])
    table = build_table(spec["table"], frame, None if frame is not None else [f"{spec['table']}.csv missing"])
    block = table[table["block"] == spec["block"]]
    published = f"{block['published_printed'].nunique()} printed value(s)"
    not_measured = int(block.drop_duplicates(["row", "column"]).shape[0] - block[block["status"] == OK].drop_duplicates(["row", "column"]).shape[0])
    if spec.get("split"):
        block = block[block["split"] == spec["split"]]
    measured = block[block["status"] == OK]
    if measured.empty:
        reason = block["reason"].iloc[0] if len(block) else "no cells"
        return _verdict(NOT_RUN, f"nothing measured{' for ' + spec['split'] if spec.get('split') else ''}: {reason}", published=published)
    equal = [equal_at_printed_precision(m, p) for m, p in zip(measured["reproduced_mean"], measured["published_printed"])]
    bad = measured[[not e for e in equal]]
    examples = "; ".join(f"{r.row}/{r.column}: {r.reproduced_mean:.4g} vs {r.published:.4g}" for r in bad.head(3).itertuples())
    reason = f"{sum(equal)}/{len(measured)} measured cells equal at printed precision ({not_measured} cell(s) not measured)"
    return _verdict(REPRODUCED if bad.empty else DEVIATES, reason + (f"; e.g. {examples}" if examples else ""),
                    published=published, reproduced=f"{sum(equal)}/{len(measured)} equal", dataset="none")


@CHECKS.register("crossover")
def check_crossover(spec: dict, results: dict) -> dict:
    """Per image size n: the smallest kernel size k at which the conv costs more FLOPs than the MFC."""
    pub = {}
    cells = _published_by_keys("table11")
    mfc = {c["keys"]["n"]: c["value"] for c in cells if c["block"] == "mfc"}
    for c in sorted((c for c in cells if c["block"] == "conv"), key=lambda c: c["keys"]["k"]):
        n = c["keys"]["n"]
        if n not in pub and c["value"] > mfc[n]:
            pub[n] = c["keys"]["k"]
    published = ", ".join(f"n={n}: k={k}" for n, k in sorted(pub.items()))
    frame = _frame(results, spec["input"])
    if frame is None:
        return {**_missing(spec["input"]), "published": published}
    ops = frame["op"].map(normalise)
    conv, ours = frame[ops == "conv"], frame[ops == normalise(spec["mfc_op"])]
    if conv.empty or ours.empty:
        return _verdict(NOT_RUN, f"needs conv and {spec['mfc_op']} rows", published=published)
    mfc_by_n = pd.to_numeric(ours["flops"]).groupby(ours["n"].astype(int)).mean()
    found = {}
    for n, group in conv.groupby(conv["n"].astype(int)):
        if n not in mfc_by_n:
            continue
        over = group[pd.to_numeric(group["flops"]) > mfc_by_n[n]]
        found[n] = int(over["k"].min()) if not over.empty else None
    reproduced = ", ".join(f"n={n}: k={k if k is not None else '>' + str(int(conv['k'].max()))}" for n, k in sorted(found.items()))
    common = [n for n in found if n in pub]
    if not common:
        return _verdict(NOT_RUN, "no image size in common with Table 11", published=published, reproduced=reproduced)
    same = all(found[n] == pub[n] for n in common)
    return _verdict(REPRODUCED if same else DEVIATES, f"compared at n = {', '.join(map(str, sorted(common)))} with {spec['mfc_op']}",
                    published=published, reproduced=reproduced, dataset="none")


@CHECKS.register("speedup")
def check_speedup(spec: dict, results: dict) -> dict:
    """SGD / Multiscale-SGD time per iteration, per model, on the requested device."""
    cells = _published_by_keys("table15")
    pub = {}
    for model in {c["keys"]["model"] for c in cells}:
        by = {c["keys"]["strategy"]: c["value"] for c in cells if c["keys"]["model"] == model}
        pub[model] = by["sgd"] / by["msgd"]
    published = ", ".join(f"{m} {r:.3g}x" for m, r in sorted(pub.items())) + " (cuda, A6000)"
    frame = _frame(results, spec["input"])
    if frame is None:
        return {**_missing(spec["input"]), "published": published}
    frame = frame.assign(_ms=pd.to_numeric(frame["ms_median"], errors="coerce")).dropna(subset=["_ms"])
    measured = _ratios(frame)
    wanted = normalise(spec["device"])
    rows = {k: v for k, v in measured.items() if wanted == "any" or k[0] == wanted}
    seen = ", ".join(f"{m} on {d}: {r:.3g}x" for (d, m), r in sorted(measured.items())) or "nothing"
    if not rows:
        return _verdict(NOT_RUN, f"needs a {spec['device']} device; measured: {seen}", published=published)
    tol = spec["tolerance"]
    if "min_ratio" in tol:
        holds = all(r >= tol["min_ratio"] for r in rows.values())
        reason = f"every ratio {'>=' if holds else 'not all >='} {tol['min_ratio']}x"
    else:
        compared = [(r, pub[m]) for (d, m), r in rows.items() if m in pub]
        if not compared:
            return _verdict(NOT_RUN, "no model in common with Table 15", published=published)
        holds = all(abs(r - p) <= tol["rel"] * p for r, p in compared)
        reason = f"within +-{tol['rel']:.0%} of the printed ratio: {'yes' if holds else 'no'}"
    reproduced = ", ".join(f"{m} {r:.3g}x on {d}" for (d, m), r in sorted(rows.items()))
    return _verdict(REPRODUCED if holds else DEVIATES, reason, published=published, reproduced=reproduced, dataset="none")


def _ratios(frame: pd.DataFrame) -> dict[tuple[str, str], float]:
    out = {}
    device = frame["device"].map(normalise) if "device" in frame.columns else pd.Series("nan", index=frame.index)
    for (dev, model), group in frame.groupby([device, frame["model"].map(normalise)]):
        by = group.groupby(group["strategy"].map(normalise))["_ms"].median()
        if "sgd" in by and "msgd" in by and by["msgd"] > 0:
            out[(dev, model)] = float(by["sgd"] / by["msgd"])
    return out


@CHECKS.register("lemma4")
def check_lemma4(spec: dict, results: dict) -> dict:
    frame = _frame(results, spec["input"])
    published = "any eps > 0"
    if frame is None:
        return {**_missing(spec["input"]), "published": published}
    # The lemma says an MFC *exists*: score the best basis family, each at its largest m, worst seed.
    families = frame.groupby("family") if "family" in frame.columns else [("mfc", frame)]
    best = None
    for family, group in families:
        largest = group["m"].max()
        worst_seed = float(pd.to_numeric(group.loc[group["m"] == largest, "residual"]).max())
        if best is None or worst_seed < best[0]:
            best = (worst_seed, family, largest)
    worst, family, largest = best
    limit = spec["tolerance"]["max_residual"]
    n = frame["seed"].nunique() if "seed" in frame.columns else len(frame)
    return _verdict(REPRODUCED if worst <= limit else DEVIATES, f"best family {family}: worst residual at m={largest} over {n} seed(s) {'<=' if worst <= limit else '>'} {limit:g}",
                    published=published, reproduced=f"{worst:.3g}", dataset="synthetic")


@CHECKS.register("not_run")
def check_not_run(spec: dict, results: dict) -> dict:
    return _verdict(NOT_RUN, spec["reason"])


# --- Table 9 and Figure 8 (experiments: `mfcbench experiment sam` / `ddpm`) -----------------------
@CHECKS.register("sam_quality")
def check_sam_quality(spec: dict, results: dict) -> dict:
    """Table 9: per dataset that ran and per metric, MFC-SAM's drop below our own SAM on the same
    images; REPRODUCED when every drop is at most tolerance.max_drop. NOT_RUN rows: their reason."""
    cells = {(c["keys"]["data"], c["keys"]["method"], c["block"]): c["value"] for c in _published_by_keys(spec["input"])}
    pub = {(d, b): cells[(d, "sam", b)] - v for (d, m, b), v in cells.items() if m == "mfc_sam"}
    published = f"largest drop SAM - MFC-SAM {max(pub.values()):.3f}"
    frame = _frame(results, spec["input"])
    if frame is None:
        return {**_missing(spec["input"]), "published": published}
    ran = _ok_rows(frame)
    if ran.empty:
        reasons = sorted({str(r) for r in frame.get("reason", pd.Series(dtype=object)).dropna()} - {""})
        return _verdict(NOT_RUN, "; ".join(reasons) or f"no {spec['input']} row ran", published=published)
    ran = ran.assign(_d=ran["data"].map(normalise), _m=ran["method"].map(normalise))
    drops = {}
    for data, group in ran.groupby("_d"):
        by = group.set_index("_m")
        if {"sam", "mfc_sam"} <= set(by.index):
            for metric in spec["metrics"]:
                drops[(data, metric)] = float(pd.to_numeric(by[metric]).loc["sam"] - pd.to_numeric(by[metric]).loc["mfc_sam"])
    if not drops or any(math.isnan(v) for v in drops.values()):
        return _verdict(NOT_RUN, "needs SAM and MFC-SAM rows with both metrics on one dataset", published=published)
    limit = spec["tolerance"]["max_drop"]
    (data, metric), worst = max(drops.items(), key=lambda kv: kv[1])
    images = pd.to_numeric(ran.get("n_images", pd.Series(dtype=float)), errors="coerce").min()
    holds = worst <= limit
    return _verdict(REPRODUCED if holds else DEVIATES,
                    f"largest drop {worst:.4f} ({data}, {metric}) {'<=' if holds else '>'} {limit:g}; "
                    f"{'?' if pd.isna(images) else int(images)} image(s) per dataset at least (paper: 1000)",
                    published=published, reproduced=", ".join(f"{d} {m}: {v:+.4f}" for (d, m), v in sorted(drops.items())),
                    dataset="+".join(sorted({d for d, _ in drops})))


def _fig8_numbers(frame: pd.DataFrame) -> dict[str, dict[str, float]]:
    """Per run (single_scale, full_multiscale): seed means of executed #WU, confidence, Frechet distance."""
    rows = _ok_rows(frame).assign(_r=lambda f: f["run"].map(normalise))
    out = {}
    for run in ("single_scale", "full_multiscale"):
        group = rows[rows["_r"] == run]
        if not group.empty:
            out[run] = {m: float(pd.to_numeric(group[m], errors="coerce").mean())
                        for m in ("wu_executed", "mean_confidence", "frechet_distance")}
            out[run]["seeds"] = group["seed"].nunique() if "seed" in group.columns else len(group)
    return out


@CHECKS.register("ddpm_quality")
def check_ddpm_quality(spec: dict, results: dict) -> dict:
    """Figure 8: Full-Multiscale's executed #WU below single scale's, and its samples as good:
    classifier confidence at most `confidence_abs` lower and Frechet distance at most `frechet_rel`
    higher (relative). Fewer than `min_seeds` seeds decide only the cost (more #WU deviates); the
    quality comparison is then INCONCLUSIVE, saying how far apart the numbers are."""
    published = "samples alike (pictures only; no number printed)"
    frame = _frame(results, spec["input"])
    if frame is None:
        return {**_missing(spec["input"]), "published": published}
    numbers = _fig8_numbers(frame)
    if set(numbers) != {"single_scale", "full_multiscale"}:
        return _verdict(NOT_RUN, f"{spec['input']}.csv lacks a finished single_scale and full_multiscale run",
                        published=published)
    ss, fm = numbers["single_scale"], numbers["full_multiscale"]
    tol = spec["tolerance"]
    conf_gap = ss["mean_confidence"] - fm["mean_confidence"]  # > 0: Full-Multiscale less confident
    fd_ratio = fm["frechet_distance"] / ss["frechet_distance"] if ss["frechet_distance"] > 0 else float("inf")
    seeds = int(min(ss["seeds"], fm["seeds"]))
    reproduced = (f"#WU {fm['wu_executed']:,.6g} vs {ss['wu_executed']:,.6g}; confidence {fm['mean_confidence']:.3f} "
                  f"vs {ss['mean_confidence']:.3f}; FD {fm['frechet_distance']:.3g} vs {ss['frechet_distance']:.3g} "
                  f"(n={seeds} seed{'s' if seeds != 1 else ''})")
    cheaper = fm["wu_executed"] < ss["wu_executed"]
    within = conf_gap <= tol["confidence_abs"] and fd_ratio <= 1 + tol["frechet_rel"]
    decisive = tol["decisive"]
    clearly_worse = conf_gap > decisive * tol["confidence_abs"] or fd_ratio > 1 + decisive * tol["frechet_rel"]
    gaps = f"confidence gap {conf_gap:+.3f} (tol {tol['confidence_abs']:g}), FD ratio {fd_ratio:.3g} (tol {1 + tol['frechet_rel']:g})"
    if not cheaper:
        verdict, reason = DEVIATES, "Full-Multiscale executed no fewer #WU than single scale"
    elif seeds >= tol["min_seeds"]:
        verdict, reason = (REPRODUCED if within else DEVIATES), f"seed means: {gaps}"
    else:  # one seed, and no record that either run converged: never DEVIATES for want of budget
        verdict = INCONCLUSIVE
        reason = (f"{seeds} seed(s) < {tol['min_seeds']} and convergence not recorded: {gaps} "
                  f"({'clearly outside' if clearly_worse else 'within' if within else 'outside'} the tolerance)")
    used = _datasets(frame) or "digits"
    if normalise(used) != "mnist":
        reason += f"; {used} stand in for the paper's MNIST"
    return _verdict(verdict, reason, published=published, reproduced=reproduced, dataset=used)
