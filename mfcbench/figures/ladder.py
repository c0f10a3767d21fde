"""The ladder figure (beyond the paper, issue 32 item 2): the multiscale/SGD ratio against each axis.

From the gathered tables of the ladder profile (one CSV per rung, each row naming its `table`) and the
`ladder_trend` claims of report/claims.yaml, which name every axis's rungs, the paper's setting and the
margin: one column of panels per axis (width, budget, resolution), one row per paper table; in each panel
one line per (network, strategy) at the geometric mean ratio over seeds with its 95% Student-t seed
interval (`report.checks.ladder.ladder_points`, the claims' own pairing), the ratio 1.0, the claim's
"similar" margin and the paper's setting drawn. Log scales on both axes (the claims fit the log ratio on
log2 of the axis). A rung not run is absent; one whose side did not converge is drawn hollow.

`ladder_figure(frame) -> (Figure, data)` has the signature of `mfcbench.figures.paper` figures.
"""

from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from ..core.labels import STRATEGY_COLORS, arch_label, strategy_label  # noqa: E402
from ..report.checks.ladder import ladder_points  # noqa: E402
from ..report.claims import load_claims  # noqa: E402
from ..report.stats import mean_interval  # noqa: E402

REQUIRED = ["table", "arch", "strategy", "seed"]
AXES = ("width", "budget", "resolution")
AXIS_LABELS = {"width": "network width (x the paper's)", "budget": "budget (x I, the converged iterations)",
               "resolution": "finest mesh (pixels per side)"}
MARKERS = ("o", "s", "^", "D")
Y_TICKS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95, 1.0, 1.05, 1.1, 1.2, 1.3, 1.5, 1.75, 2.0, 2.5, 3.0,
           4.0, 5.0, 7.0, 10.0)


def ladder_claims() -> list[dict]:
    return [c for c in load_claims() if c.get("check") == "ladder_trend"]


def ladder_data(frame: pd.DataFrame, claims: list[dict] | None = None) -> pd.DataFrame:
    """One row per claim, rung, network and strategy: the geometric mean ratio and its seed interval."""
    results = {str(t): rows for t, rows in frame.groupby("table")}
    out = []
    for spec in ladder_claims() if claims is None else claims:
        points, _ = ladder_points(spec, results)
        margin = float(spec["tolerance"]["margin"])
        for (table, value, arch, strategy), rows in points.groupby(["table", "value", "arch", "strategy"], sort=False):
            mean, low, high = mean_interval(rows["log_ratio"].dropna())
            out.append({"claim": spec["id"], "paper_table": next(iter(spec["rungs"])), "axis": spec["axis"],
                        "table": table, "value": value, "arch": arch, "strategy": strategy,
                        "n": int(rows["log_ratio"].notna().sum()), "ratio": math.exp(mean),
                        "low": math.exp(low), "high": math.exp(high), "converged": bool(rows["converged"].all()),
                        "paper": float(spec["paper"]),
                        "margin": (1 - margin) if spec["higher_is_better"] else (1 + margin)})
    return pd.DataFrame(out)


def _panel(ax, part: pd.DataFrame, styles: dict) -> None:
    series = list(part.groupby(["arch", "strategy"], sort=False))
    for i, ((arch, strategy), line) in enumerate(series):
        line = line.sort_values("value")
        colour, marker = STRATEGY_COLORS.get(strategy, "black"), styles[arch]
        err = [line["ratio"] - line["low"], line["high"] - line["ratio"]]
        x = line["value"] * 1.04 ** (i - (len(series) - 1) / 2)  # dodged, so that the seed intervals do not overlap
        ax.errorbar(x, line["ratio"], yerr=err, color=colour, marker=marker, ms=5, capsize=3, lw=1.2,
                    label=f"{arch_label(arch)}, {strategy_label(strategy)}")
        hollow = line[~line["converged"]]
        ax.plot(x[hollow.index], hollow["ratio"], linestyle="none", marker=marker, ms=8, mfc="white", mec=colour)
    ax.axhline(1.0, color="black", lw=0.8, alpha=0.6)
    margin = float(part["margin"].iloc[0])
    ax.axhline(margin, color="dimgrey", lw=1.0, linestyle=(0, (6, 4)))
    ax.annotate(f"margin {margin:g}", (0.02, margin), xycoords=("axes fraction", "data"), fontsize=7, va="bottom",
                color="dimgrey")
    paper = float(part["paper"].iloc[0])
    ax.axvline(paper, color="tab:red", lw=1.0, linestyle=":")
    ax.annotate("paper", (paper, 0.98), xycoords=("data", "axes fraction"), fontsize=7, ha="right", va="top",
                rotation=90, color="tab:red")


def _ticks(ax, part: pd.DataFrame) -> None:
    """Rungs and the paper's setting on x; plain ratios on the log y axis, its range holding 1.0 and the margin."""
    xs = sorted(set(part["value"]) | {float(part["paper"].iloc[0])})
    ax.set_xlim(xs[0] / 1.25, xs[-1] * 1.25)
    ax.set_xticks(xs, [f"{x:g}" for x in xs])
    values = pd.concat([part["low"], part["high"], part["ratio"], part["margin"]]).dropna().tolist() + [1.0]
    low, high = min(values) / 1.05, max(values) * 1.05
    ax.set_ylim(low, high)
    ys, gap = [], math.log(high / low) / 8  # at most about 8 ticks, 1.0 always among them
    for y in sorted(Y_TICKS, key=lambda v: (v != 1.0, abs(math.log(v)))):
        if low <= y <= high and all(abs(math.log(y / other)) >= gap for other in ys):
            ys.append(y)
    ys.sort()
    ax.set_yticks(ys, [f"{y:g}" for y in ys])
    ax.minorticks_off()


def ladder_figure(frame: pd.DataFrame) -> tuple[plt.Figure, pd.DataFrame]:
    """Rows: paper tables; columns: axes; the data behind each point beside it."""
    data = ladder_data(frame)
    if data.empty:
        raise ValueError("the ladder figure found no rung of any ladder_trend claim in its inputs "
                         "(the gathered tables of workflow/config/ladder.yaml)")
    tables = list(dict.fromkeys(data["paper_table"]))
    styles = {arch: MARKERS[i % len(MARKERS)] for i, arch in enumerate(dict.fromkeys(data["arch"]))}
    fig, axes = plt.subplots(len(tables), len(AXES), figsize=(4.2 * len(AXES), 3.4 * len(tables) + 1.0),
                             squeeze=False)
    for row, table in enumerate(tables):
        for col, axis in enumerate(AXES):
            ax, part = axes[row][col], data[(data["paper_table"] == table) & (data["axis"] == axis)]
            ax.set(xlabel=AXIS_LABELS[axis], title=f"{table}: {axis}")
            if part.empty:
                ax.set(xticks=[], yticks=[])
                ax.text(0.5, 0.5, "not run", transform=ax.transAxes, ha="center", color="grey")
                continue
            ax.set(xscale="log", yscale="log")
            _panel(ax, part, styles)
            _ticks(ax, part)
        axes[row][0].set_ylabel("multiscale / SGD (headline metric)")
    handles = {}
    for ax in axes.flat:
        for h, label in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(label, h)
    fig.legend(list(handles.values()), list(handles), loc="lower center", ncol=min(4, max(1, len(handles))),
               fontsize=8, frameon=False)  # below the panels: never over the data
    fig.suptitle("The gap to SGD along each axis toward the paper's setting (95% seed intervals; hollow: not converged)")
    fig.tight_layout(rect=(0, 0.04 + 0.03 * math.ceil(len(handles) / 4), 1, 0.95))
    return fig, data
