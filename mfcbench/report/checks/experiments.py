"""Checks on the experiments outside the training grid: Table 9 (SAM) and Figure 8 (DDPM), and `not_run`."""

from __future__ import annotations

import math

import pandas as pd

from .. import seedcount, stats
from ..engine import (
    DEVIATES,
    INCONCLUSIVE,
    NOT_RUN,
    REPRODUCED,
    Inputs,
    Verdict,
    check,
    datasets,
    ok_rows,
    published_by_keys,
)
from ..layout import normalise


@check("not_run", inputs=lambda spec: [])
def check_not_run(data: Inputs):
    return Verdict(NOT_RUN, data.spec["reason"])


def _sam_published(spec: dict) -> str:
    cells = {(c["keys"]["data"], c["keys"]["method"], c["block"]): c["value"] for c in published_by_keys(spec["input"])}
    drops = [cells[(d, "sam", b)] - v for (d, m, b), v in cells.items() if m == "mfc_sam"]
    return f"largest drop SAM - MFC-SAM {max(drops):.3f}"


@check("sam_quality", published=_sam_published)
def check_sam_quality(data: Inputs):
    """Table 9: per dataset that ran and per metric, MFC-SAM's drop below our own SAM on the same
    images; REPRODUCED when every drop is at most tolerance.max_drop. NOT_RUN rows: their reason."""
    spec, table = data.spec, data.frame
    ran = ok_rows(table)
    if ran.empty:
        reasons = sorted({str(r) for r in table.get("reason", pd.Series(dtype=object)).dropna()} - {""})
        return data.verdict(NOT_RUN, "; ".join(reasons) or f"no {spec['input']} row ran")
    ran = ran.assign(_d=ran["data"].map(normalise), _m=ran["method"].map(normalise))
    drops = {}
    for name, group in ran.groupby("_d"):
        by = group.set_index("_m")
        if {"sam", "mfc_sam"} <= set(by.index):
            for metric in spec["metrics"]:
                drops[(name, metric)] = float(
                    pd.to_numeric(by[metric]).loc["sam"] - pd.to_numeric(by[metric]).loc["mfc_sam"]
                )
    if not drops or any(math.isnan(v) for v in drops.values()):
        return data.verdict(NOT_RUN, "needs SAM and MFC-SAM rows with both metrics on one dataset")
    limit = data.tolerance["max_drop"]
    (name, metric), worst = max(drops.items(), key=lambda kv: kv[1])
    images = pd.to_numeric(ran.get("n_images", pd.Series(dtype=float)), errors="coerce").min()
    holds = worst <= limit
    return data.verdict(
        REPRODUCED if holds else DEVIATES,
        f"largest drop {worst:.4f} ({name}, {metric}) {'<=' if holds else '>'} {limit:g}; "
        f"{'?' if pd.isna(images) else int(images)} image(s) per dataset at least (paper: 1000)",
        reproduced=", ".join(f"{d} {m}: {v:+.4f}" for (d, m), v in sorted(drops.items())),
        dataset="+".join(sorted({d for d, _ in drops})),
    )


def _fig8_numbers(table: pd.DataFrame) -> dict[str, dict[str, float]]:
    """Per run (single_scale, full_multiscale): seed means of executed #WU, confidence, Frechet distance."""
    rows = ok_rows(table).assign(_r=lambda f: f["run"].map(normalise))
    out = {}
    for run in ("single_scale", "full_multiscale"):
        group = rows[rows["_r"] == run]
        if not group.empty:
            out[run] = {
                m: float(pd.to_numeric(group[m], errors="coerce").mean())
                for m in ("wu_executed", "mean_confidence", "frechet_distance")
            }
            out[run]["seeds"] = group["seed"].nunique() if "seed" in group.columns else len(group)
    return out


def _fig8_paired(table: pd.DataFrame) -> dict[str, pd.Series]:
    """Per seed both runs finished: the worse-signed evidence of Full-Multiscale against single scale,
    log(FD_fm / FD_ss) and confidence_ss - confidence_fm (> 0: Full-Multiscale worse)."""
    rows = ok_rows(table).assign(_r=lambda f: f["run"].map(normalise))
    if "seed" not in rows.columns:
        rows = rows.assign(seed=0)
    by = {run: rows[rows["_r"] == run].groupby("seed")[["frechet_distance", "mean_confidence"]].mean()
          for run in ("single_scale", "full_multiscale")}
    ss, fm = by["single_scale"], by["full_multiscale"]
    return {"fd": stats.log_ratios(fm["frechet_distance"], ss["frechet_distance"]),
            "confidence": (ss["mean_confidence"] - fm["mean_confidence"]).dropna()}


def fig8_decision(paired: dict[str, pd.Series], tol: dict) -> tuple[str, str, int | None]:
    """Seed-paired tests of both tolerances: REPRODUCED when both one-sided intervals sit inside, DEVIATES
    when one is worse than its tolerance after a Holm correction over the two, else INCONCLUSIVE with
    the largest count the power calculation asks for among the tests not yet inside their tolerance (the
    third item; None when decided or not computable: `seedcount.tests_needed`)."""
    bounds = {"fd": math.log1p(tol["frechet_rel"]), "confidence": tol["confidence_abs"]}
    worse = stats.holm([stats.p_worse(paired[k], bounds[k]) for k in ("fd", "confidence")])
    inside = [stats.p_inside(paired[k], bounds[k]) for k in ("fd", "confidence")]
    fd = stats.paired_interval(paired["fd"], higher_is_better=False)
    conf = stats.mean_interval(paired["confidence"])
    text = (f"FD ratio {fd.ratio:.3g} [{fd.ratio_low:.3g}, {fd.ratio_high:.3g}] (tol {1 + tol['frechet_rel']:g}), "
            f"confidence gap {conf[0]:+.3f} [{conf[1]:+.3f}, {conf[2]:+.3f}] (tol {tol['confidence_abs']:g}); "
            f"n={fd.n} paired seeds")
    if any(p < stats.ALPHA for p in worse if p == p):
        return DEVIATES, f"worse than a tolerance after Holm over the two tests: {text}", None
    if all(p < stats.ALPHA for p in inside if p == p) and all(p == p for p in inside):
        return REPRODUCED, f"inside both tolerances: {text}", None
    # a count only for a test still undecided: one already inside its tolerance asks for no seeds
    most = seedcount.tests_needed((float(paired[k].mean()), float(paired[k].std(ddof=1)), bounds[k], p < stats.ALPHA)
                                  for k, p in zip(("fd", "confidence"), inside) if len(paired[k]) > 1)
    return INCONCLUSIVE, f"undecided: {text}" + (f"; needs {most} seeds" if most else ""), most


def fig8_tolerance(claims: list[dict]) -> dict:
    """The tolerance of the claim checked by ddpm_quality (claims.yaml), for the DDPM's seed plan."""
    return next(c["tolerance"] for c in claims if c.get("check") == "ddpm_quality")


def fig8_seed_plan(table: pd.DataFrame, tol: dict, cap: int) -> tuple[int, str]:
    """How many seeds Figure 8 should have in all after a round (`table`: the rows so far), and
    why: the power calculation's count, at most `cap`, when the seed-paired tests leave the claim
    undecided; the seeds it has when decided, when the count is unknown, or at the cap. The same rule as
    a table's seed plan (report/seedcount.py), asked after every round until it adds none."""
    paired = _fig8_paired(table)
    n = int(min(len(paired["fd"]), len(paired["confidence"])))
    if n < tol["min_seeds"]:
        return n, f"{n} paired seed(s) < min_seeds {tol['min_seeds']}: no power calculation, none added"
    verdict, _, needed = fig8_decision(paired, tol)
    if verdict != INCONCLUSIVE:
        return n, f"{n} seeds decide it ({verdict}): none added"
    if needed is None:
        return n, f"{n} seeds leave it undecided and the power calculation gives no count: none added"
    target = seedcount.grow_to(n, needed, cap)  # the tables' rule (report/seedcount.py), step 1
    said = f"{n} seeds leave it undecided, the power calculation asks for {needed}"
    if target == n:
        return n, f"{said}; the cap of {cap} seeds is reached: none added"
    return target, f"{said}: {target - n} added (cap {cap})"


@check("ddpm_quality", published=lambda spec: "samples alike (pictures only; no number printed)")
def check_ddpm_quality(data: Inputs):
    """Figure 8: Full-Multiscale's executed #WU below single scale's, and its samples as good: classifier
    confidence at most `confidence_abs` lower and Frechet distance at most `frechet_rel` higher
    (relative), tested on the seed-paired differences (`fig8_decision`). Fewer than `min_seeds` seeds
    decide only the cost (more #WU deviates); the quality comparison is then INCONCLUSIVE, saying how far
    apart the numbers are. The reason sets the FD beside its same-distribution floor."""
    spec, table, tol = data.spec, data.frame, data.tolerance
    numbers = _fig8_numbers(table)
    if set(numbers) != {"single_scale", "full_multiscale"}:
        return data.verdict(NOT_RUN, f"{spec['input']}.csv lacks a finished single_scale and full_multiscale run")
    ss, fm = numbers["single_scale"], numbers["full_multiscale"]
    conf_gap = ss["mean_confidence"] - fm["mean_confidence"]  # > 0: Full-Multiscale less confident
    fd_ratio = fm["frechet_distance"] / ss["frechet_distance"] if ss["frechet_distance"] > 0 else float("inf")
    seeds = int(min(ss["seeds"], fm["seeds"]))
    floor = pd.to_numeric(table.get("frechet_floor", pd.Series(dtype=float)), errors="coerce").dropna()
    reproduced = (
        f"#WU {fm['wu_executed']:,.6g} vs {ss['wu_executed']:,.6g}; confidence {fm['mean_confidence']:.3f} "
        f"vs {ss['mean_confidence']:.3f}; FD {fm['frechet_distance']:.3g} vs {ss['frechet_distance']:.3g}"
        + (f" (same-distribution floor {floor.mean():.3g})" if len(floor) else "")
        + f" (n={seeds} seed{'s' if seeds != 1 else ''})"
    )
    within = conf_gap <= tol["confidence_abs"] and fd_ratio <= 1 + tol["frechet_rel"]
    decisive = tol["decisive"]
    clearly_worse = conf_gap > decisive * tol["confidence_abs"] or fd_ratio > 1 + decisive * tol["frechet_rel"]
    gaps = f"confidence gap {conf_gap:+.3f} (tol {tol['confidence_abs']:g}), FD ratio {fd_ratio:.3g} (tol {1 + tol['frechet_rel']:g})"
    if not fm["wu_executed"] < ss["wu_executed"]:
        verdict, reason = DEVIATES, "Full-Multiscale executed no fewer #WU than single scale"
    elif seeds >= tol["min_seeds"]:
        verdict, reason, _ = fig8_decision(_fig8_paired(table), tol)
    else:  # one seed, and no record that either run converged: never DEVIATES for want of budget
        verdict = INCONCLUSIVE
        reason = (
            f"{seeds} seed(s) < {tol['min_seeds']} and convergence not recorded: {gaps} "
            f"({'clearly outside' if clearly_worse else 'within' if within else 'outside'} the tolerance)"
        )
    reason += "; a fixed training schedule (no convergence test for the DDPM)"
    planned = sorted(set(table["seed_reason"].dropna().astype(str)) - {""}) if "seed_reason" in table.columns else []
    if planned:  # written by the DDPM's seed plan (experiment ddpm --seed-cap)
        reason += f"; seed plan: {' / '.join(planned)}"
    used = datasets(table) or "digits"
    if normalise(used) != "mnist":
        reason += f"; {used} stand in for the paper's MNIST"
    return data.verdict(verdict, reason, reproduced=reproduced, dataset=used)
