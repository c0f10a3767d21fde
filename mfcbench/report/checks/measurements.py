"""Checks on measured or deterministic numbers: discrepancy trends (Tables 1, 2), FLOP formulas and
printed cells (Tables 11, 13), the conv/MFC crossover (Table 11), per-iteration speed-ups (Table 15), Lemma 4."""

from __future__ import annotations

import pandas as pd

from ..engine import (
    DEVIATES,
    NOT_RUN,
    REPRODUCED,
    Inputs,
    check,
    frame,
    ok_rows,
    published_by_keys,
    where,
)
from ..layout import OK, build_table, normalise
from ..published import equal_at_printed_precision

RESOLUTION_ORDER = ["1/1024", "1/512", "1/256", "1/128", "1/64", "1/32"]  # finest -> coarsest


def _trend_published(spec: dict) -> str:
    cells = [
        c
        for c in published_by_keys(spec["input"])
        if normalise(c["keys"].get("input")) == normalise(spec["where"]["input"])
    ]
    pub = {c["keys"]["resolution"]: c["value"] for c in cells}
    return f"d({RESOLUTION_ORDER[0]})/d({RESOLUTION_ORDER[-1]}) = {pub[RESOLUTION_ORDER[0]] / pub[RESOLUTION_ORDER[-1]]:.3g}"


@check("trend", published=_trend_published)
def check_trend(data: Inputs):
    """Ratio of the discrepancy on the finest vs the coarsest mesh, in the claimed direction."""
    spec, rows = data.spec, ok_rows(data.frame)
    means = pd.to_numeric(rows["discrepancy"], errors="coerce").groupby(rows["resolution"].astype(str)).mean().dropna()
    present = [r for r in RESOLUTION_ORDER if r in means.index]
    if len(present) < 2:
        return data.verdict(NOT_RUN, "fewer than two resolutions measured")
    ratio = means[present[0]] / means[present[-1]]
    n = rows["seed"].nunique() if "seed" in rows.columns else len(rows)
    floor, grows = data.tolerance["min_ratio"], spec["direction"] == "grows"
    holds = ratio >= floor if grows else ratio <= 1 / floor
    reason = (
        f"{spec['direction']} as the mesh refines {'holds' if holds else 'does not hold'} "
        f"(needs ratio {'>=' if grows else '<='} {floor if grows else round(1 / floor, 3)})"
    )
    return data.verdict(
        REPRODUCED if holds else DEVIATES,
        reason,
        dataset="synthetic",
        reproduced=f"d({present[0]})/d({present[-1]}) = {ratio:.3g} (n={n} seeds)",
    )


@check("flops_formula", published=lambda spec: f"n^2 k^2 * {spec['channels']}^2")
def check_flops_formula(data: Inputs):
    table = data.frame
    conv = table[table["op"].map(normalise) == "conv"]
    if conv.empty:
        return data.verdict(NOT_RUN, "no conv rows")
    expected = conv["n"].astype("int64") ** 2 * conv["k"].astype("int64") ** 2 * data.spec["channels"] ** 2
    wrong = int((pd.to_numeric(conv["flops"]).astype("int64") != expected).sum())
    return data.verdict(
        DEVIATES if wrong else REPRODUCED,
        f"{wrong} of {len(conv)} (n, k) cells differ from the formula",
        reproduced=f"{len(conv) - wrong}/{len(conv)} exact",
        dataset="none",
    )


@check("printed_cells", inputs=lambda spec: [])
def check_printed_cells(data: Inputs):
    """Every measured cell of a table block equals the printed value at the printed precision."""
    spec = data.spec
    results = frame(data.results, spec["table"])
    table = build_table(spec["table"], results, None if results is not None else [f"{spec['table']}.csv missing"])
    block = table[table["block"] == spec["block"]]
    published = f"{block['published_printed'].nunique()} printed value(s)"
    cells = block.drop_duplicates(["row", "column"]).shape[0]
    not_measured = int(cells - block[block["status"] == OK].drop_duplicates(["row", "column"]).shape[0])
    if spec.get("split"):
        block = block[block["split"] == spec["split"]]
    measured = block[block["status"] == OK]
    if measured.empty:
        reason = block["reason"].iloc[0] if len(block) else "no cells"
        split = " for " + spec["split"] if spec.get("split") else ""
        return data.verdict(NOT_RUN, f"nothing measured{split}: {reason}", published=published)
    equal = [
        equal_at_printed_precision(m, p) for m, p in zip(measured["reproduced_mean"], measured["published_printed"])
    ]
    bad = measured[[not e for e in equal]]
    examples = "; ".join(
        f"{r.row}/{r.column}: {r.reproduced_mean:.4g} vs {r.published:.4g}" for r in bad.head(3).itertuples()
    )
    reason = (
        f"{sum(equal)}/{len(measured)} measured cells equal at printed precision ({not_measured} cell(s) not measured)"
    )
    return data.verdict(
        REPRODUCED if bad.empty else DEVIATES,
        reason + (f"; e.g. {examples}" if examples else ""),
        published=published,
        reproduced=f"{sum(equal)}/{len(measured)} equal",
        dataset="none",
    )


def _crossover_points(spec: dict) -> dict[int, int]:
    """Per image size n in the claim's table: the smallest printed k whose conv costs more than the MFC."""
    cells, pub = published_by_keys(spec["input"]), {}
    mfc = {c["keys"]["n"]: c["value"] for c in cells if c["block"] == "mfc"}
    for c in sorted((c for c in cells if c["block"] == "conv"), key=lambda c: c["keys"]["k"]):
        n = c["keys"]["n"]
        if n not in pub and c["value"] > mfc[n]:
            pub[n] = c["keys"]["k"]
    return pub


@check(
    "crossover", published=lambda spec: ", ".join(f"n={n}: k={k}" for n, k in sorted(_crossover_points(spec).items()))
)
def check_crossover(data: Inputs):
    """Per image size n: the smallest kernel size k at which the conv costs more FLOPs than the MFC."""
    table, spec = data.frame, data.spec
    pub = _crossover_points(spec)
    ops = table["op"].map(normalise)
    conv, ours = table[ops == "conv"], table[ops == normalise(spec["mfc_op"])]
    if conv.empty or ours.empty:
        return data.verdict(NOT_RUN, f"needs conv and {spec['mfc_op']} rows")
    mfc_by_n = pd.to_numeric(ours["flops"]).groupby(ours["n"].astype(int)).mean()
    found = {}
    for n, group in conv.groupby(conv["n"].astype(int)):
        if n in mfc_by_n:
            over = group[pd.to_numeric(group["flops"]) > mfc_by_n[n]]
            found[n] = int(over["k"].min()) if not over.empty else None
    largest = int(conv["k"].max())
    reproduced = ", ".join(f"n={n}: k={k if k is not None else '>' + str(largest)}" for n, k in sorted(found.items()))
    common = [n for n in found if n in pub]
    if not common:
        return data.verdict(NOT_RUN, f"no image size in common with {spec['input']}", reproduced=reproduced)
    same = all(found[n] == pub[n] for n in common)
    return data.verdict(
        REPRODUCED if same else DEVIATES,
        f"compared at n = {', '.join(map(str, sorted(common)))} with {spec['mfc_op']}",
        reproduced=reproduced,
        dataset="none",
    )


def _published_speedups(spec: dict) -> dict[str, float]:
    cells = published_by_keys(spec["input"])
    out = {}
    for model in {c["keys"]["model"] for c in cells}:
        by = {c["keys"]["strategy"]: c["value"] for c in cells if c["keys"]["model"] == model}
        out[model] = by["sgd"] / by["msgd"]
    return out


@check(
    "speedup",
    published=lambda spec: (
        ", ".join(f"{m} {r:.3g}x" for m, r in sorted(_published_speedups(spec).items())) + " (cuda, A6000)"
    ),
)
def check_speedup(data: Inputs):
    """SGD / Multiscale-SGD time per iteration, per model, on the requested device."""
    spec, pub = data.spec, _published_speedups(data.spec)
    table = data.frame.assign(_ms=pd.to_numeric(data.frame["ms_median"], errors="coerce")).dropna(subset=["_ms"])
    measured = _ratios(table)
    wanted = normalise(spec["device"])
    rows = {k: v for k, v in measured.items() if wanted == "any" or k[0] == wanted}
    seen = ", ".join(f"{m} on {d}: {r:.3g}x" for (d, m), r in sorted(measured.items())) or "nothing"
    if not rows:
        return data.verdict(NOT_RUN, f"needs a {spec['device']} device; measured: {seen}")
    tol = data.tolerance
    if "min_ratio" in tol:
        holds = all(r >= tol["min_ratio"] for r in rows.values())
        reason = f"every ratio {'>=' if holds else 'not all >='} {tol['min_ratio']}x"
    else:
        compared = [(r, pub[m]) for (d, m), r in rows.items() if m in pub]
        if not compared:
            return data.verdict(NOT_RUN, f"no model in common with {spec['input']}")
        holds = all(abs(r - p) <= tol["rel"] * p for r, p in compared)
        reason = f"within +-{tol['rel']:.0%} of the printed ratio: {'yes' if holds else 'no'}"
    reproduced = ", ".join(f"{m} {r:.3g}x on {d}" for (d, m), r in sorted(rows.items()))
    return data.verdict(REPRODUCED if holds else DEVIATES, reason, reproduced=reproduced, dataset="none")


def _ratios(table: pd.DataFrame) -> dict[tuple[str, str], float]:
    out = {}
    device = table["device"].map(normalise) if "device" in table.columns else pd.Series("nan", index=table.index)
    for (dev, model), group in table.groupby([device, table["model"].map(normalise)]):
        by = group.groupby(group["strategy"].map(normalise))["_ms"].median()
        if "sgd" in by and "msgd" in by and by["msgd"] > 0:
            out[(dev, model)] = float(by["sgd"] / by["msgd"])
    return out


@check("lemma4", published=lambda spec: "any eps > 0")
def check_lemma4(data: Inputs):
    # The lemma says an MFC *exists*: score the best basis family, each at its largest m, worst seed.
    table = data.frame
    families = table.groupby("family") if "family" in table.columns else [("mfc", table)]
    best = None
    for family, group in families:
        largest = group["m"].max()
        worst_seed = float(pd.to_numeric(group.loc[group["m"] == largest, "residual"]).max())
        if best is None or worst_seed < best[0]:
            best = (worst_seed, family, largest)
    worst, family, largest = best
    limit = data.tolerance["max_residual"]
    n = table["seed"].nunique() if "seed" in table.columns else len(table)
    return data.verdict(
        REPRODUCED if worst <= limit else DEVIATES,
        f"best family {family}: worst residual at m={largest} over {n} seed(s) {'<=' if worst <= limit else '>'} {limit:g}",
        reproduced=f"{worst:.3g}",
        dataset="synthetic",
    )


__all__ = [
    "RESOLUTION_ORDER",
    "check_crossover",
    "check_flops_formula",
    "check_lemma4",
    "check_printed_cells",
    "check_speedup",
    "check_trend",
    "where",
]
