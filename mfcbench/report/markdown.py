"""REPORT.md: verdict summary first, then every table side by side, figures and provenance.

Reads result files and the claims/published data only; the same inputs always give the same text.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pandas as pd

from .claims import CLAIM_COLUMNS, load_claims, score_all
from .deciders import decided_by, shipped_profiles
from .findings import findings_markdown
from .layout import OK, load_results_dir, settings_frame, table_from_results
from .pairs import PAIR_COLUMNS, versus_of
from .published import load_published, published_table
from .seedplan import annotate, load_plans

FIGURES = {f"fig{n}": f"Figure {n}" for n in range(1, 16)}  # in paper order; absent ones say NOT_RUN
CAPTIONS_DIR = Path(__file__).with_name("captions")
VERDICT_ORDER = ["REPRODUCED", "DEVIATES", "INCONCLUSIVE", "NOT_RUN"]


def _cell(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return str(value).replace("|", "\\|").replace("\n", " ")


def pretty_printed(printed: Any) -> str:
    """LaTeX-ish printed numbers to plain text: '2.62 \\times 10^7' -> '2.62×10^7'; an em dash where the paper
    prints no value (None, NaN or empty), never 'nan'."""
    if printed is None or (isinstance(printed, float) and math.isnan(printed)) or str(printed).strip() in ("", "nan"):
        return "—"
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


def verdict_counts(claims: pd.DataFrame) -> str:
    """'**12 REPRODUCED**, **3 DEVIATES**, ...' in VERDICT_ORDER, then any other verdict seen."""
    counts = claims["verdict"].astype(str).value_counts()
    order = VERDICT_ORDER + sorted(set(counts.index) - set(VERDICT_ORDER))
    return ", ".join(f"**{counts.get(v, 0)} {v}**" for v in order)


def summary_section(claims: pd.DataFrame, deciders: dict[str, str] | None = None) -> str:
    """The verdict table a reviewer reads first: claim, published, reproduced (mean ± CI, n), verdict,
    reason, for every claim this profile's results decide or could not; then, shorter, the claims it
    did not run (the reason names what is missing, then the profile that decides it: `deciders`, id -> text)."""
    ran = claims["verdict"].astype(str) != "NOT_RUN"
    label = [f"{c} (`{i}`)" for c, i in zip(claims["claim"], claims["id"])]
    decides = [(deciders or {}).get(i, "") for i in claims["id"]]
    view = pd.DataFrame({
        "claim": label, "published": claims["published"], "reproduced": claims["reproduced"],
        "verdict": claims["verdict"].map(lambda v: f"**{v}**"), "reason": claims["reason"],
        "not_run": [f"{r}; {d}" if d and not ok else r for r, d, ok in zip(claims["reason"], decides, ran)],
    })
    out = f"## Summary of verdicts\n\n{len(claims)} claims: {verdict_counts(claims)}.\n\n"
    if ran.any():
        out += md_table(view.loc[ran.to_numpy(), ["claim", "published", "reproduced", "verdict", "reason"]])
    if (~ran).any():
        out += (f"\n**NOT_RUN** ({int((~ran).sum())}): the results they need are not in this profile "
                "(the reason names what is missing, and the profile that decides the claim).\n\n"
                + md_table(view.loc[~ran.to_numpy(), ["claim", "published", "not_run"]].rename(
                    columns={"not_run": "reason"})))
    return out


def not_run_deciders(claims: pd.DataFrame, profile: str) -> dict[str, str]:
    """id -> 'decided by profile `P`' for every NOT_RUN claim, from the shipped profiles (report/deciders.py)."""
    specs = {spec["id"]: spec for spec in load_claims()}
    profiles = shipped_profiles()
    return {i: decided_by(specs[i], profiles, profile) for i, v in zip(claims["id"], claims["verdict"])
            if v == "NOT_RUN" and i in specs}


def load_scored_claims(reports_dir: Path, results: dict[str, pd.DataFrame], profile: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The pipeline's claims.csv and pairs.csv when they are this profile's, else the same scoring done here."""
    paths = reports_dir / "claims.csv", reports_dir / "pairs.csv"
    if all(p.is_file() for p in paths):
        claims = pd.read_csv(paths[0], dtype=str, keep_default_na=False)
        pairs = pd.read_csv(paths[1], keep_default_na=True)
        if (set(CLAIM_COLUMNS) <= set(claims.columns) and set(claims["profile"]) == {profile}
                and set(PAIR_COLUMNS) <= set(pairs.columns)):
            return claims, pairs
    return score_all(load_claims(), results, profile)


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)) or value == "":
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return f"{value:.{digits}g}" if isinstance(value, float) else str(value)


def _versus_column(group: pd.DataFrame) -> pd.Series:
    """The reference cells of each pair ("SGD" for the table's own SGD, else pairs.csv's `versus`)."""
    versus = versus_of(group)
    return versus.where(versus != group["table"].astype(str) + ":sgd", "SGD")


def pairs_section(claims: pd.DataFrame, pairs: pd.DataFrame) -> str:
    """Every pair of every claim (pairs.csv), one collapsible table per claim: n, the seed-paired
    ratio and its 95% interval, the margin, convergence of both sides, the seeds, the Holm-corrected
    p-value, P(multiscale beats SGD on a seed), the seeds a power calculation asks for, the verdict."""
    if pairs.empty:
        return ""
    out = ["## Every pair behind the verdicts", "",
           "Each claim on trained cells compares every network and multiscale strategy with SGD on the seeds both ran "
           "(a *pair*). Ratio: geometric mean of multiscale/SGD over the paired seeds, with its 95% Student-t interval "
           "(on the log ratio); p (Holm): one-sided p of 'worse than the margin', Holm-corrected across the claim's pairs; "
           "P(beat): the fraction of seeds on which multiscale beats SGD, with its Wilson 95% interval. Every number "
           "can be recomputed from `pairs.csv` and `cells.csv`.", ""]
    verdicts = dict(zip(claims["id"], claims["verdict"]))
    for claim, group in pairs.groupby("claim", sort=False):
        view = pd.DataFrame({
            "pair": [f"{a}/{s}" + (f" ({u})" if isinstance(u, str) and u else "")
                     for a, s, u in zip(group["arch"], group["strategy"], group["unit"])],
            "versus": _versus_column(group),
            "n": group["n"].map(_fmt), "seeds": group["seeds"].map(_fmt), "ratio": group["ratio"].map(_fmt),
            "95% CI": [f"[{_fmt(lo)}, {_fmt(hi)}]" if _fmt(lo) else "" for lo, hi in zip(group["low"], group["high"])],
            "margin": group["margin"].map(_fmt),
            "converged: multiscale, SGD": [f"{_fmt(a)}, {_fmt(b)}" for a, b in zip(group["converged_ours"], group["converged_sgd"])],
            "p (Holm)": group["p_holm"].map(lambda v: _fmt(v, 2)),
            "P(beat) [95% CI]": [f"{_fmt(p, 2)} [{_fmt(lo, 2)}, {_fmt(hi, 2)}]" if _fmt(p) else ""
                                 for p, lo, hi in zip(group["p_beat"], group["beat_low"], group["beat_high"])],
            "seeds received": group["seed_reason"].map(_fmt) if "seed_reason" in group else "",
            "seeds needed": group["seeds_needed"].map(lambda v: "> 10000" if v == v and v and v > 10000 else _fmt(v)),
            "verdict": group["verdict"],
        })
        out.append(f"<details><summary><code>{claim}</code>: {verdicts.get(claim, '')}, {len(group)} pair(s)</summary>\n\n"
                   f"{md_table(view)}\n</details>\n")
    return "\n".join(out)


def time_section(results: dict[str, pd.DataFrame], claims: list[dict]) -> str:
    """Time to target as AlgoPerf scores it: per table with a time-to-quality claim, the performance
    profile over its networks (the fraction of networks on which a strategy's median time to target is
    within tau x the fastest strategy's), in executed #WU and in training seconds."""
    from .time_to_target import performance_profile, time_to_target

    out = []
    for spec in (c for c in claims if c.get("check") == "time_to_quality"):
        cells, curves = results.get(spec["input"]), results.get(f"curves_{spec['input']}")
        if cells is None or curves is None or "val_metric" not in curves or spec["metric"] not in cells:
            continue
        times = time_to_target(cells, curves, spec["metric"], spec["higher_is_better"], spec["tolerance"]["margin"])
        if times.empty:
            continue
        for unit, column in (("#WU", "wu_to_target"), ("training seconds", "seconds_to_target")):
            profile = performance_profile(times, column)
            if profile.empty or times[column].isna().all():
                continue
            grid = profile.pivot_table(index="strategy", columns="tau", values="fraction").reset_index()
            grid.columns = ["strategy"] + [f"tau={t:g}" for t in grid.columns[1:]]
            out.append(f"**{spec['input']}, {unit}** (target: SGD's median final {spec['metric']} within "
                       f"{spec['tolerance']['margin']:.0%}; {times['arch'].nunique()} network(s)):\n\n{md_table(grid.round(2))}")
    if not out:
        return ""
    head = ("## Time to target (performance profiles)\n\nPer network, each strategy's median time to the target over its "
            "seeds (a strategy that reached it on fewer than half its seeds counts as never); the fraction of networks on "
            "which it is within tau x the fastest strategy's. Per-cell times, censored at the budget when the target "
            "was missed, are in `cells.csv`.\n")
    return "\n".join([head, *out])


def paper_layout(table: pd.DataFrame) -> str:
    """One Markdown table per block, rows and columns as printed, each cell 'reproduced | published'."""
    out = []
    for block, part in table.groupby("block", sort=False):
        labels = [f"{r} ({s})" if s else str(r) for r, s in zip(part["row"], part["split"].fillna(""))]
        cells = part.assign(_row=labels, _cell=[f"{d.split(' | ')[0]} \\| {pretty_printed(p)}"
                                                for d, p in zip(part["display"], part["published_printed"])])
        grid = cells.pivot_table(index="_row", columns="column", values="_cell", aggfunc="first", sort=False)
        grid = grid.reindex(index=list(dict.fromkeys(labels)), columns=list(dict.fromkeys(part["column"])))
        lines = ["| " + " | ".join([f"{block}: reproduced \\| published"] + list(grid.columns)) + " |",
                 "|" + "---|" * (len(grid.columns) + 1)]
        lines += ["| " + " | ".join([_cell(i)] + ["" if pd.isna(v) else str(v) for v in row]) + " |"
                  for i, row in zip(grid.index, grid.to_numpy())]
        out.append("\n".join(lines) + "\n")
    return "\n".join(out)


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
        out.append(f"{n_ok} of {len(table)} cells measured. Each cell: reproduced mean ± std (n seeds) \\| published.\n")
        out.append(paper_layout(table))
        out.append(_notes(table))
        view = pd.DataFrame({
            "row": table["row"], "column": table["column"], "split": table["split"],
            "reproduced (mean ± std, n)": [d.split(" | ")[0] for d in table["display"]],
            "published": table["published_printed"].map(pretty_printed),
            "difference": table["difference"].map(_num),
            "status": table["status"], "note": table["reason"], "dataset": table["dataset"],
        })
        if not view["split"].astype(bool).any():
            view = view.drop(columns="split")
        out.append(f"<details><summary>every cell with its difference and status</summary>\n\n{md_table(view)}\n</details>\n")
    return "\n".join(out)


def _notes(table: pd.DataFrame) -> str:
    """Unique status/reason lines ('NOT_RUN: table6.csv missing (12 cells)') so the grid stays short."""
    noted = table[(table["status"] != OK) | table["reason"].fillna("").astype(bool)]
    if noted.empty:
        return ""
    counts = noted.groupby(["status", noted["reason"].fillna("")], sort=False).size()
    return "\n".join(f"- {status}{': ' + reason if reason else ''} ({n} cell{'s' if n != 1 else ''})"
                     for (status, reason), n in counts.items()) + "\n"


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
    current, total, other = stale_code(results_dir, results)
    if current is not None:
        out.append(f"- training code: {total - sum(n for *_, n in other)} of {total} cells trained by the current "
                   f"training code (digest `{current[:12]}`)")
    for digest, commit, n in other:
        out.append(f"- {n} cells were trained by other training code (digest `{digest[:12]}`, commit `{commit[:12]}`); "
                   f"rerun them with `{RETRAIN_STALE}")
    for column in ("dataset", "seed", "device", "git_commit", "training_code", "config_hash"):
        seen = sorted({str(v) for f in results.values() if column in f.columns for v in f[column].dropna().unique()})
        if seen:
            out.append(f"- {column} in results: {', '.join(seen[:20])}{' …' if len(seen) > 20 else ''}")
    out.append(f"- result files: {', '.join(sorted(f'{k}.csv' for k in results)) or 'none'}")
    return "\n".join(out) + "\n"


RETRAIN_STALE = ("snakemake --cores all --forcerun $(python -m mfcbench grid --config <profile.yaml> --stale-code)"
                 "` (those cells) or `snakemake --cores all --forcerun train` (every cell); Snakemake's "
                 "`--rerun-triggers code` sees only the rules' own code, not mfcbench's modules")


def stale_code(results_dir: Path, results: dict[str, pd.DataFrame]) -> tuple[str | None, int, list[tuple]]:
    """(current training-code digest from manifest.json, cells gathered, [(digest, commit, count)] of
    finished cells trained by other training code); a cell with no digest recorded counts as other code."""
    path = results_dir / "manifest.json"
    current = json.loads(path.read_text()).get("training_code") if path.is_file() else None
    frames = [f for f in results.values() if "config_hash" in f.columns]  # gathered trained tables
    rows = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["config_hash"])
    if "status" in rows.columns:
        rows = rows[rows["status"] != "failed"]
    if current is None or rows.empty:
        return current, len(rows), []
    code = rows.get("training_code", pd.Series(None, index=rows.index, dtype=object)).astype(object)
    commit = rows.get("git_commit", pd.Series(None, index=rows.index, dtype=object)).astype(object)
    other = pd.DataFrame({"code": code.where(code.notna(), "not recorded"),
                          "commit": commit.where(commit.notna(), "unknown")})[code.ne(current) | code.isna()]
    groups = other.groupby(["code", "commit"]).size()
    return current, len(rows), [(c, m, int(n)) for (c, m), n in groups.items()]


def stale_code_line(results_dir: Path, results: dict[str, pd.DataFrame]) -> str:
    """A warning (REPORT.md, top and provenance) when cells were trained by other training code."""
    current, total, other = stale_code(results_dir, results)
    if not other:
        return ""
    count = sum(n for _, _, n in other)
    which = "; ".join(f"{n} by digest {c[:12]}, commit {m[:12]}" for c, m, n in other)
    return (f"**Warning: {count} of {total} cells were trained by other training code** than the current "
            f"(digest {current[:12]}): {which}. Their numbers are mixed into the tables and verdicts below "
            f"(column `training_code` of `cells.csv`); rerun them with `{RETRAIN_STALE}.\n")


def scale_line(results_dir: Path) -> str:
    """One line on the scale the numbers come from (from the pipeline's manifest.json), so quality
    verdicts are read for what they are: a toy-scale profile is not the paper's training budget."""
    path = results_dir / "manifest.json"
    if not path.is_file():
        return ""
    manifest = json.loads(path.read_text())
    datasets = ", ".join(f"{name} at {size}px" for name, size in (manifest.get("datasets") or {}).items())
    return (f"**Scale of these results:** {manifest.get('scale', 'not recorded')}; data: {datasets or 'none'}; "
            f"report commit `{str(manifest.get('git_commit'))[:12]}`{' (dirty)' if manifest.get('git_dirty') else ''}. "
            "Verdicts on quality hold for this scale only; see Provenance.\n")


def build_report(results_dir: str | Path, reports_dir: str | Path, profile: str, config: dict | None = None,
                 only: list[str] | None = None) -> str:
    """REPORT.md from results/<profile>/ (only the files in `only`, when given) and the built reports."""
    results_dir, reports_dir = Path(results_dir), Path(reports_dir)
    results = load_results_dir(results_dir, only)
    claims, pairs = load_scored_claims(reports_dir, results, profile)
    pairs = annotate(pairs, load_plans(results_dir, only))  # the seeds each pair received (the seed plans), and why
    parts = [
        f"# mfcbench reproduction report — profile `{profile}`\n",
        "Reproduced numbers come from the result files below; published numbers are the paper's, "
        "shown for comparison only. NOT_RUN means the inputs were missing, INCONCLUSIVE that the cells ran but "
        "cannot decide the claim; the reason is given either way.\n",
        scale_line(results_dir),
        stale_code_line(results_dir, results),
        summary_section(claims, not_run_deciders(claims, profile)),
        pairs_section(claims, pairs),
        time_section(results, load_claims()),
        "## Tables in the paper's layout (reproduced | published)\n",
    ]
    parts += [table_section(name, results, config) for name in load_published()["tables"]]
    parts += [figure_section(reports_dir), findings_markdown(results), provenance_section(results_dir, results, profile)]
    return "\n".join(parts)
