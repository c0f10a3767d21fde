"""Findings about the paper: internal inconsistencies, each with the numbers that show it.

Pure functions over the published values (published.yaml) and, where they help, our result frames
(`results['table1']` ...). The #WU arithmetic uses `mfcbench.core.workunits`' exact closed forms (layer
0, no training code). Each finding is a dict: id, title, statement, evidence (list of lines),
and `ours` (what our results say, or '' when they do not bear on it).
"""

from __future__ import annotations

import re
from fractions import Fraction
from typing import Any, Callable

import pandas as pd

from ..core.workunits import msgd_step_wu, wu_fmsgd, wu_msgd, wu_sgd
from .published import published_cells, published_table

Finding = dict[str, Any]


def _grid(name: str, block: str | None = None) -> dict[tuple[str, str], float]:
    return {(c["row"], c["column"]): c["value"] for c in published_cells(name) if block in (None, c["block"])}


def _printed(name: str) -> dict[tuple[str, str], str]:
    return {(c["row"], c["column"]): c["printed"] for c in published_cells(name)}


def _table1_means(results: dict[str, pd.DataFrame], column: str) -> pd.DataFrame | None:
    """Our Table 1 (standard conv): mean of `column` per input x resolution, finest first; None if absent."""
    frame = results.get("table1")
    if frame is None or column not in frame.columns or not {"input", "resolution"} <= set(frame.columns):
        return None
    if "conv" in frame.columns:
        frame = frame[frame["conv"].astype(str) == "standard"]
    frame = frame.assign(_n=frame["resolution"].astype(str).map(lambda r: Fraction(r) if "/" in r else None))
    out = frame.dropna(subset=["_n"]).groupby(["input", "_n"])[column].mean().unstack("_n")
    return out[sorted(out.columns)] if not out.empty else None


def noisy_below_smooth(results: dict[str, pd.DataFrame]) -> Finding:
    """Table 1 prints a noisy discrepancy below the smooth one: impossible in expectation."""
    values, printed = _grid("table1"), _printed("table1")
    columns = [c["label"] for c in published_table("table1")["blocks"][0]["columns"]]
    below = [c for c in columns if values[("Noisy input", c)] < values[("Smooth input", c)]]
    evidence = [f"at {c}: noisy {printed[('Noisy input', c)]} < smooth {printed[('Smooth input', c)]}" for c in below]
    evidence.append(
        "Eq. 14 is linear in u, so the gradient g(u) and the level-to-level difference D u = g_2h(u) - g_h(u) are "
        "linear in u. With zero-mean noise n: E||D(u+n)||^2 = ||Du||^2 + 2 E<Du, Dn> + E||Dn||^2 = ||Du||^2 + "
        "E||Dn||^2 >= ||Du||^2 (the cross term has mean zero, the last is a variance). The noisy row can fall below "
        "the smooth one only by an unlucky single draw; the paper states no repeats.")
    ours = ""
    mean = _table1_means(results, "discrepancy")
    if mean is not None and {"noisy", "smooth"} <= set(mean.index):
        bad = [f"1/{int(1 / r)}" for r in mean.columns if mean.loc["noisy", r] < mean.loc["smooth", r]]
        ours = ("our Table 1 (mean over its noisy draws): noisy >= smooth at every resolution" if not bad
                else f"our Table 1 has noisy < smooth at {', '.join(bad)}: a mean over few noisy draws "
                     "(`discrepancy.repeats`), which the bound constrains only on average")
    return {"id": "table1_noisy_below_smooth", "title": "Table 1: a noisy value below the smooth one",
            "statement": f"Table 1's noisy row is below its smooth row at {', '.join(below) or 'no resolution'}.",
            "evidence": evidence, "ours": ours}


def table3_wu_ratio(results: dict[str, pd.DataFrame]) -> Finding:
    """Table 3's printed #WU ratios against App. C's formulas (which Table 4 follows exactly)."""
    wu, its = _grid("table3", "wu"), _grid("table3", "iterations")
    sgd, msgd, fmsgd = (wu[(r, "#WU")] for r in ("SGD (Single Scale)", "Multiscale-SGD (Ours)", "Full-Multiscale-SGD (Ours)"))
    app_msgd = wu_sgd(1, 1) / wu_msgd(1, 1)
    app_fmsgd = wu_sgd(1, 1) / wu_fmsgd(1, 1)
    same_its = Fraction(int(sgd)) * wu_msgd(1, 1) / wu_sgd(1, 1)
    evidence = [
        f"Table 3 prints #WU SGD {sgd:,.0f}, Multiscale-SGD {msgd:,.0f}, Full-Multiscale-SGD {fmsgd:,.0f}: "
        f"ratios {sgd / msgd:.1f}x and {sgd / fmsgd:.1f}x.",
        f"App. C (eqs. 40, 41, 48): SGD/Multiscale-SGD = 15/(37/16) = {float(app_msgd):.2f}x, "
        f"SGD/Full-Multiscale-SGD = 15/(115/128) = {float(app_fmsgd):.1f}x, for any N0 and I.",
        f"Table 3 runs SGD and Multiscale-SGD for the same {its[('SGD (Single Scale)', 'Iterations')]:.0f} / "
        f"{its[('Multiscale-SGD (Ours)', 'Iterations')]:.0f} iterations, so App. C gives Multiscale-SGD "
        f"{float(same_its):,.1f} #WU, not {msgd:,.0f}.",
    ]
    return {"id": "table3_wu_ratio", "title": "Table 3's #WU ratio disagrees with App. C",
            "statement": f"Table 3's SGD/Multiscale-SGD #WU ratio is {sgd / msgd:.0f}x; App. C's formulas give "
                         f"{float(app_msgd):.1f}x.", "evidence": evidence, "ours": _ours_wu_ratio(results)}


def _ours_wu_ratio(results: dict[str, pd.DataFrame]) -> str:
    frame = results.get("table3")
    if frame is None or not {"strategy", "wu_executed"} <= set(frame.columns):
        return ""
    if "arch" in frame.columns and (frame["arch"].astype(str) == "blur_mfc").any():
        frame = frame[frame["arch"].astype(str) == "blur_mfc"]
    wu = frame.groupby(frame["strategy"].astype(str))["wu_executed"].mean()
    if not {"sgd", "msgd"} <= set(wu.index) or not wu["msgd"]:
        return ""
    return f"our Table 3 cells executed SGD/Multiscale-SGD = {wu['sgd'] / wu['msgd']:.2f}x #WU"


def _schedules() -> dict[str, list[int]]:
    text = dict(published_table("table13")["settings"])["Iterations per level"]
    out = {}
    for names, numbers in re.findall(r"([A-Za-z\- ]+?):\s*\[([\d,\s]+)\]", text):
        for name in re.split(r"\s+and\s+", names.strip()):
            out[name.strip()] = [int(x) for x in numbers.split(",")]
    return out


def fmsgd_phases_wu(n0: int, coarse_to_fine: list[int], levels: int) -> Fraction:
    """#WU of a Full-Multiscale schedule given per phase (coarsest first), App. C's batches
    (phase starting at level p: N0 2^p, doubling per coarser level)."""
    total = Fraction(0)
    for p, its in zip(range(levels - 1, -1, -1), coarse_to_fine):
        total += its * msgd_step_wu([n0 * 2**p * 2**k for k in range(levels - p)], first_level=p)
    return total


def table13_schedule(results: dict[str, pd.DataFrame]) -> Finding:
    """Table 13's Full-Multiscale schedule executes a quarter of Table 4's printed #WU."""
    t4, schedules = _grid("table4", "wu"), _schedules()
    sgd_its, fm = schedules.get("SGD", [2000] * 4), schedules.get("Full-Multiscale-SGD", [2000, 1000, 500, 250])
    levels, iterations = len(fm), sum(sgd_its)
    printed_sgd, printed_fm = t4[("SGD (Single Scale)", "#WU")], t4[("Full-Multiscale-SGD (Ours)", "#WU")]
    n0 = Fraction(int(printed_sgd)) / (wu_sgd(1, 1, levels) * iterations)
    as_listed = fmsgd_phases_wu(int(n0), fm, levels)
    reversed_ = fmsgd_phases_wu(int(n0), fm[::-1], levels)
    evidence = [
        f"Table 4's SGD {printed_sgd:,.0f} = 15 N0 I with I = {iterations:,} (Table 13's {sgd_its}) gives N0 = {n0}; "
        f"then Multiscale-SGD (37/16) N0 I = {float(wu_msgd(n0, iterations, levels)):,.0f} "
        f"(printed {t4[('Multiscale-SGD (Ours)', '#WU')]:,.0f}).",
        f"Full-Multiscale-SGD with Table 13's schedule {fm} read coarse to fine (App. C: I = I_8h = 2 I_4h = ...) "
        f"executes {float(as_listed):,.1f} #WU (= (115/128) N0 {fm[0]}); read fine to coarse, {float(reversed_):,.1f}.",
        f"Table 4 prints {printed_fm:,.0f} = (115/128) N0 {iterations:,}: the coarsest phase would need "
        f"{iterations:,} iterations, i.e. a schedule {[iterations // 2**p for p in range(levels)]}.",
    ]
    return {"id": "table13_fmsgd_schedule", "title": "Table 13's schedule vs Table 4's Full-Multiscale #WU",
            "statement": f"Table 13's schedule {fm} with N0 = {n0} executes {float(as_listed):,.1f} #WU; Table 4 prints "
                         f"{printed_fm:,.0f} ({printed_fm / float(as_listed):.0f}x).", "evidence": evidence, "ours": ""}


def table1_norm(results: dict[str, pd.DataFrame]) -> Finding:
    """Table 1's smooth row doubles per coarser level: the plain norm (O(h)), not Eq. 16's square (O(h^2))."""
    values = _grid("table1")
    columns = [c["label"] for c in published_table("table1")["blocks"][0]["columns"]]
    smooth = [values[("Smooth input", c)] for c in columns]
    ratios = [b / a for a, b in zip(smooth, smooth[1:])]
    evidence = [
        f"smooth row {', '.join(f'{v:.2g}' for v in smooth)} ({columns[0]} .. {columns[-1]}): ratios per coarser "
        f"level {', '.join(f'{r:.2f}' for r in ratios)} (mean {sum(ratios) / len(ratios):.2f}).",
        "Lemma 1: ||g_2h - g_h|| = O(h), so the plain norm doubles per level and Eq. 16's squared norm quadruples.",
    ]
    ours = []
    for column in ("discrepancy_plain", "discrepancy_squared"):
        mean = _table1_means(results, column)
        if mean is not None and "smooth" in mean.index and mean.shape[1] > 1:
            row = mean.loc["smooth"].to_numpy()
            ours.append(f"{column}: x{sum(row[1:] / row[:-1]) / (len(row) - 1):.2f} per level")
    return {"id": "table1_plain_norm", "title": "Table 1 reports the plain norm, not Eq. 16's squared norm",
            "statement": f"Table 1's smooth row grows x{sum(ratios) / len(ratios):.1f} per coarser level, as the plain "
                         "norm does; Eq. 16 defines the squared norm, which would grow x4.",
            "evidence": evidence, "ours": ("our smooth standard-conv row: " + "; ".join(ours)) if ours else ""}


FINDINGS: list[Callable[[dict[str, pd.DataFrame]], Finding]] = [
    noisy_below_smooth, table3_wu_ratio, table13_schedule, table1_norm]


def all_findings(results: dict[str, pd.DataFrame] | None = None) -> list[Finding]:
    return [finding(results or {}) for finding in FINDINGS]


def findings_markdown(results: dict[str, pd.DataFrame] | None = None) -> str:
    out = ["## Findings about the paper", "",
           "Inconsistencies inside the paper, computed from its printed values (and our results where they bear on it).", ""]
    for i, f in enumerate(all_findings(results), 1):
        out.append(f"{i}. **{f['title']}** (`{f['id']}`). {f['statement']}")
        out += [f"   - {line}" for line in f["evidence"]]
        if f["ours"]:
            out.append(f"   - Ours: {f['ours']}.")
        out.append("")
    return "\n".join(out)
