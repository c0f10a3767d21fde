"""Checks on cost in work units: Appendix C's closed-form coefficients and savings, Table 3's savings."""

from __future__ import annotations

import math
from fractions import Fraction

import pandas as pd

from ..engine import (
    DEVIATES,
    NOT_RUN,
    REPRODUCED,
    Inputs,
    check,
    datasets,
    first_metric,
    frame,
    published_by_keys,
    strategy_means,
)
from ..layout import normalise
from ..published import equal_at_printed_precision, round_like


@check("wu_coefficient", published=lambda spec: f"{spec['exact']} (printed {spec['printed']})")
def check_wu_coefficient(data: Inputs):
    """The closed-form #WU coefficient (per N0*I) from workunits.csv (strategy, coefficient)."""
    spec, table = data.spec, data.frame
    rows = table[table["strategy"].map(normalise) == normalise(spec["strategy"])]
    values = (
        pd.to_numeric(rows["coefficient"], errors="coerce").dropna()
        if "coefficient" in rows
        else pd.Series(dtype=float)
    )
    if values.empty:
        return data.verdict(NOT_RUN, f"no coefficient for {spec['strategy']} in {spec['input']}.csv")
    value, exact = float(values.iloc[0]), float(Fraction(spec["exact"]))
    holds = math.isclose(value, exact, rel_tol=data.tolerance["rel"]) and equal_at_printed_precision(
        value, spec["printed"]
    )
    return data.verdict(
        REPRODUCED if holds else DEVIATES,
        f"{value:.6g} vs exact {exact:.6g}",
        reproduced=f"{value:.6g}",
        dataset="none",
    )


@check("wu_ratio", inputs=lambda spec: [], published=lambda spec: spec["printed"])
def check_wu_ratio(data: Inputs):
    """#WU(numerator) / #WU(denominator) from the closed-form column of the first of `inputs` that has both."""
    spec = data.spec
    for name in spec["inputs"]:
        table = frame(data.results, name)
        if table is None or "wu_closed_form" not in table.columns:
            continue
        means = strategy_means(table, "wu_closed_form")
        if spec["numerator"] in means and spec["denominator"] in means:
            ratio = means[spec["numerator"]] / means[spec["denominator"]]
            rel = data.tolerance.get("rel")
            if rel is not None:  # approximate wording ("roughly 16"): a stated relative tolerance
                target = float(spec["printed"])
                holds = abs(ratio - target) <= rel * target
                reason = (
                    f"{ratio:.4g} is {abs(ratio - target) / target:.1%} from {spec['printed']} "
                    f"({'within' if holds else 'outside'} the {rel:.0%} tolerance; from {name}.csv wu_closed_form)"
                )
            else:
                holds = equal_at_printed_precision(ratio, spec["printed"])
                reason = (
                    f"{ratio:.4g} rounds to {round_like(ratio, spec['printed']):g} at the printed precision "
                    f"(from {name}.csv wu_closed_form)"
                )
            return data.verdict(REPRODUCED if holds else DEVIATES, reason, reproduced=f"{ratio:.4g}", dataset="none")
    return data.verdict(
        NOT_RUN, f"no wu_closed_form for {spec['numerator']} and {spec['denominator']} in {', '.join(spec['inputs'])}"
    )


def _savings_published(spec: dict) -> str:
    cells = {c["keys"]["strategy"]: c["value"] for c in published_by_keys(spec["input"], "wu")}
    return f"SGD/MSGD = {cells['sgd'] / cells['msgd']:.3g}, SGD/FMSGD = {cells['sgd'] / cells['fmsgd']:.3g}"


@check("wu_savings", published=_savings_published)
def check_wu_savings(data: Inputs):
    """SGD's #WU over each multiscale strategy's: the order SGD > MSGD > FMSGD and a floor on the saving."""
    spec, table = data.spec, data.frame
    metric = first_metric(table, spec["metric"])
    if metric is None:
        return data.verdict(NOT_RUN, f"results lack {', '.join(spec['metric'])}")
    means = strategy_means(table, metric)
    if not {"sgd", "msgd", "fmsgd"} <= set(means.index):
        return data.verdict(NOT_RUN, f"needs sgd, msgd and fmsgd; have {', '.join(means.index)}")
    r_m, r_f = means["sgd"] / means["msgd"], means["sgd"] / means["fmsgd"]
    floor = data.tolerance["min_ratio"]
    holds = r_m >= floor and r_f > r_m
    reason = (
        f"order SGD > MSGD > FMSGD {'holds' if r_f > r_m > 1 else 'fails'}; MSGD saving "
        f"{'>=' if r_m >= floor else '<'} {floor}x ({metric}"
        + "".join(f", {k} {v}" for k, v in (spec.get("where") or {}).items())
        + ")"
    )
    return data.verdict(
        REPRODUCED if holds else DEVIATES,
        reason,
        dataset=datasets(table),
        reproduced=f"SGD/MSGD = {r_m:.3g}, SGD/FMSGD = {r_f:.3g}",
    )
