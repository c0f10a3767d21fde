"""What a profile amounts to, in words: its cells and closed-form #WU per table (`format_summary`,
what `snakemake -n` and `python -m mfcbench grid` print), its schedules (`schedule_summary`) and the
run manifest of its reports (`run_manifest`). Pricing a schedule builds its strategy, which imports
torch: `format_summary(config, work_units=False)` does not.
"""

from __future__ import annotations

from typing import Any, Mapping

from ..core.cell import Cell
from .cells import expand


def cell_work_units(cell: Cell) -> float | None:
    """Closed-form #WU of a cell's schedule (App. C), from `mfcbench.core.workunits`; None if unknown."""
    from ..core.workunits import schedule_wu
    from ..strategies import build_strategy

    try:
        return float(schedule_wu(build_strategy(cell.strategy, dict(cell.config)).phases()))
    except Exception:  # unsupported strategy/schedule: the summary says n/a, the runner reports the error
        return None


def summarize(config: Mapping[str, Any], work_units: bool = True) -> list[dict[str, Any]]:
    """One row per table: cells and total closed-form #WU (None when any cell's WU is unknown or
    `work_units` is false: pricing a schedule builds its strategy, which imports torch)."""
    rows = []
    for name in config.get("tables", {}):
        cells = expand(config, [name])
        wus = [cell_work_units(c) for c in cells] if work_units else [None]
        total = None if any(w is None for w in wus) else sum(wus)
        rows.append({"table": name, "task": config["tables"][name]["task"], "cells": len(cells), "wu_closed_form": total})
    return rows


def schedule_summary(config: Mapping[str, Any]) -> str:
    """Iterations per level of every table's strategies, as run: 'table4: sgd/msgd [320, 320, 320,
    320], fmsgd [320, 160, 80, 40]; ...' ('up to' where the cells may stop early)."""
    parts = []
    for name in config.get("tables", {}):
        schedules: dict[str, list[str]] = {}
        for cell in expand(config, [name]):
            its = f"{'up to ' if cell.config.get('early_stop') else ''}{list(cell.config['iterations'])}"
            strategies = schedules.setdefault(its, [])
            if cell.strategy not in strategies:
                strategies.append(cell.strategy)
        parts.append(f"{name}: " + ", ".join(f"{'/'.join(s)} {its}" for its, s in schedules.items()))
    return "; ".join(parts)


def format_summary(config: Mapping[str, Any], work_units: bool = True) -> str:
    """The profile's cells per table and, with `work_units`, their closed-form #WU (imports torch)."""
    rows = summarize(config, work_units)
    cells = sum(r["cells"] for r in rows)
    width = max([8, *(len(str(r["table"])) for r in rows)])  # rung tables (table5_res64) are longer
    if not work_units:
        lines = [f"mfcbench profile {config.get('profile', '?')!r}: {cells} cells "
                 f"(closed-form #WU per table: python -m mfcbench grid --config <profile>)"]
        return "\n".join(lines + [f"  {r['table']:<{width}} {r['task']:<12} {r['cells']:>4} cells" for r in rows])
    known = [r["wu_closed_form"] for r in rows]
    total = "n/a" if any(w is None for w in known) else f"{sum(known):,.0f}"
    lines = [f"mfcbench profile {config.get('profile', '?')!r}: {cells} cells, closed-form #WU {total}"]
    for r in rows:
        wu = "n/a" if r["wu_closed_form"] is None else f"{r['wu_closed_form']:,.0f}"
        lines.append(f"  {r['table']:<{width}} {r['task']:<12} {r['cells']:>4} cells  {wu:>16} WU")
    return "\n".join(lines)


def run_manifest(config: Mapping[str, Any]) -> dict[str, Any]:
    """What produced a profile's reports (results/<profile>/manifest.json): the commit, versions and
    the scale (each cell's own commit is in its metrics.json and the gathered tables' git_commit)."""
    from ..train.manifest import git_state, now, versions

    commit, dirty = git_state()
    d = config["defaults"]
    return {
        "profile": config["profile"], "generated_at": now(), "git_commit": commit, "git_dirty": dirty,
        "versions": versions(), "device_setting": config["device"],
        "datasets": {name: spec["image_size"] for name, spec in config["datasets"].items()},
        "scale": f"{d['levels']} levels, N0 {d['batch_size']}, val_size {d['val_size']}; iterations per level "
                 f"{schedule_summary(config)}",
        "seeds": {table: spec["seeds"] for table, spec in config["tables"].items()},
        # the first round's seeds above; a plan adds up to cap where they decide (results/<profile>/<table>.seeds.json)
        "seed_plans": {table: spec["seed_plan"] for table, spec in config["tables"].items() if spec.get("seed_plan")},
    }
