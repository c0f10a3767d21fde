"""Paper-layout tables: one output row per printed cell, reproduced statistics beside the printed value.

The layout (rows, columns, which result column feeds a cell) is data in `published.yaml`; this
module only matches result rows to cells and aggregates over seeds. A cell with no matching
result says NOT_RUN and why, so a reduced profile still yields every table.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import pandas as pd

from .published import load_published, published_table

OUTPUT_COLUMNS = [
    "table", "block", "row", "column", "keys", "split", "metric",
    "reproduced_mean", "reproduced_std", "n_seeds", "n_diverged",
    "published", "published_printed", "difference", "rel_difference",
    "status", "reason", "dataset", "paper_dataset", "display",
]
OK, NOT_RUN, DIVERGED = "OK", "NOT_RUN", "DIVERGED"
_NO_DATASET = {"synthetic", "none", ""}


def normalise(value: Any, column: str | None = None, aliases: dict | None = None) -> str:
    """Canonical spelling for matching: lower case, '-'/' ' -> '_', 5.0 -> '5', NaN -> 'nan'."""
    if value is None or (isinstance(value, (float, np.floating)) and math.isnan(value)) or value is pd.NA:
        text = "nan"
    elif isinstance(value, (float, np.floating)) and float(value).is_integer():
        text = str(int(value))
    else:
        text = str(value).strip().lower().replace("-", "_").replace(" ", "_")
    if aliases and column:
        text = str(aliases.get(column, {}).get(text, text))
    return text


MEASUREMENT_COLUMNS = {"median_ms": "ms_median", "iqr_ms": "ms_iqr"}


def harmonise(frame: pd.DataFrame) -> pd.DataFrame:
    """Measurement CSVs name timings median_ms/iqr_ms and convolutions conv2d/conv3x3 (the kernel
    size has its own column k): map them onto the names layouts and claims match on."""
    frame = frame.rename(columns={k: v for k, v in MEASUREMENT_COLUMNS.items() if v not in frame.columns})
    if "op" in frame.columns:
        frame = frame.assign(op=frame["op"].astype(str).str.replace(r"^conv(2d|\d+x\d+)$", "conv", regex=True))
    return frame


def read_results(paths: Iterable[str | Path]) -> tuple[pd.DataFrame | None, list[str]]:
    """Concatenate the CSVs that exist; return (frame or None, notes about missing/unreadable files)."""
    frames, notes = [], []
    for path in paths:
        path = Path(path)
        if not path.is_file():
            notes.append(f"{path.name} missing")
            continue
        try:
            frames.append(harmonise(pd.read_csv(path, dtype={"resolution": str})))
        except (pd.errors.EmptyDataError, pd.errors.ParserError) as error:
            notes.append(f"{path.name} unreadable ({error.__class__.__name__})")
    if not frames:
        return None, notes
    return pd.concat(frames, ignore_index=True, sort=False), notes


def _fmt(value: float) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if float(value).is_integer() and abs(value) < 1e7:
        return f"{int(value):,}"
    return f"{value:.4g}"


def display(mean: float, std: float, n: int, printed: str | None, status: str) -> str:
    """'0.1234 ± 0.0010 (n=3) | 0.1918' — human-readable twin of the numeric columns."""
    published = "—" if pd.isna(printed) or printed == "" else printed
    if status == NOT_RUN:
        return f"NOT_RUN | {published}"
    spread = "" if std is None or (isinstance(std, float) and math.isnan(std)) else f" ± {_fmt(std)}"
    return f"{_fmt(mean)}{spread} (n={n}) | {published}"


def _match_mask(frame: pd.DataFrame, keys: dict[str, Any], aliases: dict) -> tuple[pd.Series, str | None]:
    mask = pd.Series(True, index=frame.index)
    for column, wanted in keys.items():
        wanted_values = wanted if isinstance(wanted, list) else [wanted]
        wanted_norm = {normalise(v, column, aliases) for v in wanted_values}
        if column in frame.columns:
            values = frame[column].map(lambda v, c=column: normalise(v, c, aliases))
        elif normalise("nan", column, aliases) in wanted_norm:
            values = pd.Series("nan", index=frame.index).map(lambda v, c=column: normalise(v, c, aliases))
        else:
            return pd.Series(False, index=frame.index), f"results lack column {column!r}"
        mask &= values.isin(wanted_norm)
    return mask, None


def _stats(rows: pd.DataFrame, metric: str) -> dict[str, Any]:
    status = rows["status"].map(normalise) if "status" in rows.columns else pd.Series("ok", index=rows.index)
    ok = rows[(status == "ok") | (status == "nan")]
    failed = rows[~status.isin(["ok", "nan", "diverged"])] if "status" in rows.columns else rows.iloc[0:0]
    other = [f"{r['status']}: {r['error']}" if isinstance(r.get("error"), str) else str(r["status"])
             for _, r in failed.iterrows()]
    values = pd.to_numeric(ok[metric], errors="coerce").dropna()
    n = int(ok.loc[values.index, "seed"].nunique()) if "seed" in ok.columns else int(len(values))
    return {
        "reproduced_mean": float(values.mean()) if len(values) else float("nan"),
        "reproduced_std": float(values.std(ddof=1)) if len(values) > 1 else float("nan"),
        "n_seeds": n if len(values) else 0,
        "n_diverged": int((status == "diverged").sum()),
        "skipped": sorted({str(v) for v in other}),
        "dataset": "+".join(sorted({str(d) for d in rows["dataset"].dropna()})) if "dataset" in rows.columns else "",
    }


def _failures(frame: pd.DataFrame) -> str:
    """'failed: <error>' of cells that recorded a failure, then NOT_RUN rows' reasons (empty when none)."""
    if "status" not in frame:
        return ""
    status = frame["status"].map(normalise)
    failed = frame[status == "failed"]
    errors = sorted({str(e) for e in failed.get("error", pd.Series(dtype=str)).dropna()})
    lines = [f"failed: {e}" for e in errors] or (["failed"] if len(failed) else [])
    lines += sorted({str(r) for r in frame[status == "not_run"].get("reason", pd.Series(dtype=str)).dropna()} - {""})
    return "; ".join(lines)


def _pick_metric(frame: pd.DataFrame | None, candidates: list[str]) -> str | None:
    if frame is None:
        return None
    for name in candidates:
        if name in frame.columns and pd.to_numeric(frame[name], errors="coerce").notna().any():
            return name
    return None


def _cell_row(name: str, block: dict, row: dict, column: dict, i: int, j: int) -> dict[str, Any]:
    keys = {k: v for k, v in {**row, **column}.items() if k != "label"}
    match_keys = {k: v for k, v in keys.items() if k not in (block.get("ignore_keys") or [])}
    printed = block["printed"][i][j]
    return {
        "table": name, "block": block["name"], "row": row["label"], "column": column["label"],
        "keys": ";".join(f"{k}={v}" for k, v in keys.items()), "split": "",
        "published": float(block["value"][i][j]), "published_printed": printed,
        "_keys": match_keys,
    }


def build_table(name: str, results: pd.DataFrame | None, notes: list[str] | None = None) -> pd.DataFrame:
    """Every printed cell of table `name` with the reproduced mean/std/n over seeds, or NOT_RUN + reason."""
    spec = published_table(name)
    aliases = load_published().get("aliases", {})
    paper_dataset = spec.get("dataset", "")
    missing_reason = "no results: " + ", ".join(notes or spec.get("results") or ["no result file"])
    out: list[dict[str, Any]] = []
    for block in spec.get("blocks", []):
        metric = _pick_metric(results, block["metric"])
        block_frame, block_reason = results, None
        if results is None or results.empty:
            block_reason = missing_reason
        elif metric is None:
            block_reason = _failures(results) or f"results lack column(s) {', '.join(block['metric'])}"
        elif block.get("where"):
            mask, why = _match_mask(results, block["where"], aliases)
            block_frame, block_reason = results[mask], why
        for i, row in enumerate(block["rows"]):
            for j, column in enumerate(block["columns"]):
                base = _cell_row(name, block, row, column, i, j)
                base.update(metric=metric or "/".join(block["metric"]), paper_dataset=paper_dataset)
                out.extend(_fill_cell(base, block, block_frame, block_reason, metric, aliases))
    out.extend(cost_rows(name, spec, results, paper_dataset))
    frame = pd.DataFrame(out)
    if frame.empty:
        return pd.DataFrame(columns=OUTPUT_COLUMNS)
    frame["difference"] = frame["reproduced_mean"] - frame["published"]
    frame["rel_difference"] = frame["difference"] / frame["published"].where(frame["published"] != 0)
    frame["display"] = [
        display(m, s, n, p, st)
        for m, s, n, p, st in zip(frame.reproduced_mean, frame.reproduced_std, frame.n_seeds, frame.published_printed, frame.status)
    ]
    return frame[OUTPUT_COLUMNS]


COST_BLOCK = "cost (not in the paper)"


COST_COLUMNS = (  # (column label, result column, compared with the paper's printed #WU ratio?)
    ("#WU ratio SGD/x (executed)", "wu_executed", True),
    ("#WU ratio SGD/x (planned, closed form; not printed in the paper)", "wu_closed_form", False),
    ("training-time ratio SGD/x (measured)", "train_seconds", False),
)


def cost_rows(name: str, spec: dict, results: pd.DataFrame | None, paper_dataset: str) -> list[dict[str, Any]]:
    """Beside a table's #WU: SGD / strategy per network, mean over seeds, in executed #WU (beside the
    paper's printed #WU ratio: its #WU are executed ones), in planned closed-form #WU (the same for
    every network; the paper prints none) and in measured training seconds (optimizer steps only).
    The rows are the #WU block's (its `where:`, e.g. Table 3's MFC cells)."""
    wu_block = next((b for b in spec.get("blocks", []) if b["name"] == "wu"), None)
    if wu_block is None or results is None or results.empty or "strategy" not in results:
        return []
    printed = {r["strategy"]: v[0] for r, v in zip(wu_block["rows"], wu_block["value"])}
    data = results.assign(_s=results["strategy"].map(normalise), _a=results.get("arch", "all"))
    if wu_block.get("where"):
        mask, _ = _match_mask(data, wu_block["where"], load_published().get("aliases", {}))
        data = data[mask]
    if "variant" in data:
        data = data[data["variant"].map(normalise).isin(["base", "nan", "none", ""])]
    if "status" in data:
        data = data[data["status"].map(normalise).isin(["ok", "nan"])]
    dataset = "+".join(sorted({str(d) for d in data.get("dataset", pd.Series()).dropna()}))
    rows = []
    for strategy in [s for s in printed if s != "sgd"]:
        label = next(r["label"] for r in wu_block["rows"] if r["strategy"] == strategy)
        for column, metric, compared in COST_COLUMNS:
            per_arch = _ratios_per_arch(data, strategy, metric)
            if metric == "wu_closed_form":  # the closed form is the same for every network
                per_arch = dict(list(per_arch.items())[:1])
            for arch, ratios in per_arch.items():
                pub = printed["sgd"] / printed[strategy] if compared else float("nan")
                rows.append({"table": name, "block": COST_BLOCK, "row": label,
                             "column": column if metric == "wu_closed_form" else f"{column}, {arch}",
                             "keys": f"strategy={strategy};arch={arch}", "split": "", "metric": f"sgd/{strategy} {metric}",
                             "published": pub, "published_printed": f"{pub:.3g}" if pub == pub else None,
                             "reproduced_mean": float(ratios.mean()),
                             "reproduced_std": float(ratios.std(ddof=1)) if len(ratios) > 1 else float("nan"),
                             "n_seeds": int(len(ratios)), "n_diverged": 0, "status": OK, "reason": "",
                             "dataset": dataset, "paper_dataset": paper_dataset})
    return rows


def _ratios_per_arch(data: pd.DataFrame, strategy: str, metric: str) -> dict[str, pd.Series]:
    if metric not in data:
        return {}
    out = {}
    for arch, group in data.groupby("_a", sort=False):
        by = group.assign(_v=pd.to_numeric(group[metric], errors="coerce")).pivot_table(
            index="seed" if "seed" in group else group.index, columns="_s", values="_v", aggfunc="mean")
        if "sgd" in by and strategy in by:
            ratio = (by["sgd"] / by[strategy]).replace([np.inf, -np.inf], np.nan).dropna()
            if len(ratio):
                out[str(arch)] = ratio
    return out


def _fill_cell(base, block, frame, reason, metric, aliases) -> list[dict[str, Any]]:
    keys = base.pop("_keys")
    empty = {"reproduced_mean": float("nan"), "reproduced_std": float("nan"), "n_seeds": 0, "n_diverged": 0, "dataset": ""}
    if reason is None:
        mask, reason = _match_mask(frame, keys, aliases)
        if reason is None and not mask.any():
            reason = "no result rows match " + ", ".join(f"{k}={v}" for k, v in keys.items())
    if reason is not None:
        return [{**base, **empty, "status": NOT_RUN, "reason": reason}]
    rows = frame[mask]
    split_cols = [c for c in (block.get("split_by") or []) if c in rows.columns]
    groups = rows.groupby(split_cols, dropna=False, sort=True) if split_cols else [((), rows)]
    cells = []
    for split_values, group in groups:
        split_values = split_values if isinstance(split_values, tuple) else (split_values,)
        stats = _stats(group, metric)
        skipped = stats.pop("skipped")
        status, why = OK, ""
        if stats["n_seeds"] == 0:
            if stats["n_diverged"]:
                status, why = DIVERGED, "every run diverged"
            else:
                status, why = NOT_RUN, "; ".join(skipped) or f"no numeric {metric}"
        elif stats["n_diverged"]:
            why = f"{stats['n_diverged']} diverged run(s) left out"
        used, paper = stats["dataset"], base["paper_dataset"]
        if used and paper not in _NO_DATASET and normalise(used) != normalise(paper):
            why = "; ".join(filter(None, [why, f"dataset substitute: {used} stands in for {paper}"]))
        split = ";".join(f"{c}={v}" for c, v in zip(split_cols, split_values))
        cells.append({**base, **stats, "split": split, "status": status, "reason": why})
    return cells


def settings_frame(name: str, config: dict | None = None) -> pd.DataFrame:
    """Table 13/14 settings: the paper's text, then the configuration actually used (flattened)."""
    spec = published_table(name)
    rows = [{"component": c, "paper": text, "used": ""} for c, text in spec.get("settings", [])]
    for key, value in flatten(config or {}).items():
        rows.append({"component": f"config: {key}", "paper": "", "used": str(value)})
    return pd.DataFrame(rows, columns=["component", "paper", "used"])


def flatten(mapping: dict, prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in mapping.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, dict):
            flat.update(flatten(value, name))
        else:
            flat[name] = value
    return flat


def only_files(paths: list[Path], only: Iterable[str | Path] | None) -> list[Path]:
    """`paths` whose file names are among `only` (the files a profile builds); all of them when `only` is None."""
    if only is None:
        return paths
    names = {Path(f).name for f in only}
    return [p for p in paths if p.name in names]


def load_results_dir(results_dir: str | Path, only: Iterable[str | Path] | None = None) -> dict[str, pd.DataFrame]:
    """Every top-level CSV of results/<profile>/ by stem ('table4', 'lemma4', ...); unreadable ones skipped.
    `only`: the result files the profile builds (the report rule's inputs); any other CSV in the folder
    (e.g. what an extra the profile has since dropped left behind) is not read."""
    frames = {}
    for path in only_files(sorted(Path(results_dir).glob("*.csv")), only):
        frame, _ = read_results([path])
        if frame is not None:
            frames[path.stem] = frame
    return frames


def table_from_results(name: str, results: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """build_table over the result files published.yaml names for `name`."""
    files = published_table(name).get("results") or []
    frames = [results[Path(f).stem] for f in files if Path(f).stem in results]
    notes = [f"{f} missing" for f in files if Path(f).stem not in results]
    frame = pd.concat(frames, ignore_index=True, sort=False) if frames else None
    return build_table(name, frame, notes)
