"""REPORT.md: verdict summary first, then every table side by side, figures and provenance.

Reads result files and the claims/published data only; the same inputs always give the same text.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pandas as pd

from .claims import load_claims, score_claims
from .published import load_published, published_table
from .layout import OK, load_results_dir, settings_frame, table_from_results

FIGURES = {"fig3": "Figure 3", "fig4": "Figure 4", "fig5": "Figure 5", "fig7": "Figure 7"}
CAPTIONS_DIR = Path(__file__).with_name("captions")
VERDICT_ORDER = ["REPRODUCED", "DEVIATES", "NOT_RUN"]


def _cell(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return str(value).replace("|", "\\|").replace("\n", " ")


def pretty_printed(printed: str) -> str:
    """LaTeX-ish printed numbers to plain text: '2.62 \\times 10^7' -> '2.62×10^7'."""
    return str(printed).replace(" \\times ", "×").replace("\\times", "×").replace("{", "").replace("}", "")


def md_table(frame: pd.DataFrame) -> str:
    if frame.empty:
        return "_(empty)_\n"
    lines = ["| " + " | ".join(map(str, frame.columns)) + " |", "|" + "---|" * len(frame.columns)]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join(lines) + "\n"


def _num(value: float) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return f"{value:.4g}"


def summary_section(claims: pd.DataFrame) -> str:
    counts = claims["verdict"].value_counts()
    line = ", ".join(f"**{counts.get(v, 0)} {v}**" for v in VERDICT_ORDER)
    compact = claims[["id", "claim", "verdict", "reproduced", "published", "dataset", "reason"]].assign(
        claim=claims["claim"].map(lambda t: t if len(t) <= 90 else t[:87] + "..."))
    return f"## Summary of verdicts\n\n{len(claims)} claims: {line}.\n\n{md_table(compact)}"


def table_section(name: str, results: dict[str, pd.DataFrame], config: dict | None) -> str:
    spec = published_table(name)
    out = [f"### {name.replace('table', 'Table ')}: {spec.get('title', '')}", f"*{spec.get('source', '')}* — {spec.get('caption', '')}", ""]
    if spec.get("settings"):
        settings = settings_frame(name, config)
        out.append(md_table(settings if config else settings[["component", "paper"]]))
        if not config:
            out.append("_No `--config` given: the configuration used is not shown._\n")
    if spec.get("blocks"):
        table = table_from_results(name, results)
        n_ok = int((table["status"] == OK).sum())
        out.append(f"{n_ok} of {len(table)} cells measured.\n")
        view = pd.DataFrame({
            "row": table["row"], "column": table["column"], "split": table["split"],
            "reproduced (mean ± std, n)": [d.split(" | ")[0] for d in table["display"]],
            "published": table["published_printed"].map(pretty_printed),
            "difference": table["difference"].map(_num),
            "status": table["status"], "note": table["reason"], "dataset": table["dataset"],
        })
        if not view["split"].astype(bool).any():
            view = view.drop(columns="split")
        out.append(md_table(view))
    return "\n".join(out)


def figure_section(reports_dir: Path) -> str:
    out = ["## Figures", ""]
    for name, title in FIGURES.items():
        caption_path = CAPTIONS_DIR / f"{name}.rst"
        caption = caption_path.read_text().strip() if caption_path.is_file() else title
        if (reports_dir / f"{name}.png").is_file():
            out.append(f"![{title}]({name}.png)\n\n{caption} Data: [`{name}.csv`]({name}.csv)\n")
        else:
            out.append(f"- {title}: NOT_RUN (no `{name}.png` in the reports folder). {caption}\n")
    return "\n".join(out)


def provenance_section(results_dir: Path, results: dict[str, pd.DataFrame], profile: str) -> str:
    out = ["## Provenance", "", f"- profile: `{profile}`", f"- results folder: `{results_dir}`"]
    manifest_path = results_dir / "manifest.json"
    if manifest_path.is_file():
        manifest = json.loads(manifest_path.read_text())
        for key, value in sorted(manifest.items()):
            text = json.dumps(value, sort_keys=True) if isinstance(value, (dict, list)) else str(value)
            out.append(f"- manifest {key}: `{text}`")
    else:
        out.append("- manifest.json: absent (provenance below is read from the result rows)")
    for column in ("dataset", "seed", "device", "git_commit", "config_hash"):
        seen = sorted({str(v) for f in results.values() if column in f.columns for v in f[column].dropna().unique()})
        if seen:
            out.append(f"- {column} in results: {', '.join(seen[:20])}{' …' if len(seen) > 20 else ''}")
    out.append(f"- result files: {', '.join(sorted(f'{k}.csv' for k in results)) or 'none'}")
    return "\n".join(out) + "\n"


def scale_line(results_dir: Path) -> str:
    """One line on the scale the numbers come from (from the pipeline's manifest.json), so quality
    verdicts are read for what they are: a toy-scale profile is not the paper's training budget."""
    path = results_dir / "manifest.json"
    if not path.is_file():
        return ""
    manifest = json.loads(path.read_text())
    datasets = ", ".join(f"{name} at {size}px" for name, size in (manifest.get("datasets") or {}).items())
    return (f"**Scale of these results:** {manifest.get('scale', 'not recorded')}; data: {datasets or 'none'}; "
            f"commit `{str(manifest.get('git_commit'))[:12]}`{' (dirty)' if manifest.get('git_dirty') else ''}. "
            "Verdicts on quality hold for this scale only; see Provenance.\n")


def build_report(results_dir: str | Path, reports_dir: str | Path, profile: str, config: dict | None = None) -> str:
    results_dir, reports_dir = Path(results_dir), Path(reports_dir)
    results = load_results_dir(results_dir)
    claims = score_claims(load_claims(), results, profile)
    parts = [
        f"# mfcbench reproduction report — profile `{profile}`\n",
        "Reproduced numbers come from the result files below; published numbers are the paper's, "
        "shown for comparison only. NOT_RUN means the inputs were missing, with the reason given.\n",
        scale_line(results_dir),
        summary_section(claims),
        "## Tables (reproduced | published | difference)\n",
    ]
    parts += [table_section(name, results, config) for name in load_published()["tables"]]
    parts += [figure_section(reports_dir), provenance_section(results_dir, results, profile)]
    return "\n".join(parts)
