"""Seed plans in the pipeline: the cells a table's `seed_plan` adds, and where its files live.

A table with `seed_plan: {cap, step}` trains its `seeds` first; gather_initial collects them in
results/<profile>/seedplan/<table>.csv, the `plan_seeds` checkpoint (`python -m mfcbench report
plan-seeds`; the plan is mfcbench/report/seedplan.py's, by the seed rule of report/seedcount.py) writes
results/<profile>/<table>.seeds.json and the cell.yaml of every cell it adds, and the table's gather
then asks for those cells too: the table's CSV holds every seed of both rounds (workflow/rules/seeds.smk).
An added (arch, strategy, seed) trains in every variant of the table that runs that arch and strategy,
and SGD's cell of the arch at that seed too (the planner adds it), so every pair stays seed-paired.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..core.cell import Cell
from .cells import cell_config, seed_pool, table_grid, write_cell_configs, write_if_changed
from .schema import ConfigError

PLAN_SUFFIX = ".seeds.json"


def planned_tables(config: Mapping[str, Any]) -> list[str]:
    """The tables with a seed_plan, in config order."""
    return [t for t, spec in config.get("tables", {}).items() if spec.get("seed_plan")]


def check_plans(config: Mapping[str, Any]) -> list[str]:
    """One line per table whose seed_plan cannot hold its seeds."""
    return [f"tables.{t}.seed_plan.cap: {spec['seed_plan']['cap']} is below the table's {len(spec['seeds'])} seeds; "
            f"set cap >= {len(spec['seeds'])}"
            for t, spec in config.get("tables", {}).items()
            if spec.get("seed_plan") and int(spec["seed_plan"]["cap"]) < len(spec["seeds"])]


def plan_path(results: str | Path, table: str) -> Path:
    return Path(results) / f"{table}{PLAN_SUFFIX}"


def added_cells(config: Mapping[str, Any], table: str, plan: Mapping[str, Any]) -> dict[str, Cell]:
    """relpath -> Cell of every cell `plan` adds: each added (arch, strategy, seed) in every variant of the
    table that runs that arch and strategy. A seed outside the table's pool is an error naming it."""
    spec = config["tables"][table]
    pool = set(seed_pool(spec))
    out = {}
    for arch, by_strategy in (plan.get("cells") or {}).items():
        for strategy, seeds in by_strategy.items():
            outside = sorted(set(int(s) for s in seeds) - pool)
            if outside:
                raise ConfigError(f"{table}: the seed plan adds seeds {outside} outside seed_plan.cap's pool "
                                       f"{sorted(pool)}; delete {table}{PLAN_SUFFIX} and rerun")
            variants = [v for a, s, v in table_grid(spec) if (a, s) == (arch, strategy)]
            if not variants:  # a plan naming no cell of the table would add nothing, silently
                raise ConfigError(f"{table}: the seed plan adds seeds to {arch}/{strategy}, which the table does "
                                       f"not run; delete {table}{PLAN_SUFFIX} and rerun")
            for variant in variants:
                cfg = cell_config(config, table, arch, strategy, variant)
                for seed in seeds:
                    cell = Cell(table=table, task=spec["task"], dataset=spec["dataset"], arch=arch, strategy=strategy,
                                variant=variant, seed=int(seed), config=cfg)
                    out[cell.relpath()] = cell
    return out


def read_plan(path: str | Path) -> dict[str, Any] | None:
    """A seeds.json, or None when there is none yet; an unreadable one is an error naming it."""
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as error:
        raise ConfigError(f"{path}: unreadable seed plan ({error}); delete it and rerun") from None


def same_pool(plan: Mapping[str, Any] | None, cap: int, initial: list[int]) -> bool:
    """Whether `plan` was made for this pool: the same cap and the same initial seeds."""
    return bool(plan) and (plan.get("cap"), plan.get("initial")) == (cap, initial)


def planned_cells(config: Mapping[str, Any], results: str | Path) -> dict[str, Cell]:
    """The cells that existing seed plans added (their cell.yaml is kept current at parse time, so a
    changed profile retrains them as it does the initial cells). A plan of another pool (cap or initial
    seeds) is ignored: its checkpoint reruns and plans again."""
    out: dict[str, Cell] = {}
    for table in planned_tables(config):
        plan = read_plan(plan_path(results, table))
        spec = config["tables"][table]
        pool = seed_pool(spec)
        if same_pool(plan, len(pool), pool[: len(spec["seeds"])]):
            out.update(added_cells(config, table, plan))
    return out


def keep_previous(plan: dict[str, Any], previous: Mapping[str, Any] | None) -> dict[str, Any]:
    """`plan` with every cell an earlier plan of the same pool added (a replanned table never drops a
    trained seed: no result is discarded); a pair that keeps more seeds than it now needs says so."""
    if not same_pool(previous, plan["cap"], plan["initial"]):
        return plan
    cells = {a: {s: list(k) for s, k in by.items()} for a, by in plan["cells"].items()}
    for arch, by_strategy in (previous.get("cells") or {}).items():
        for strategy, seeds in by_strategy.items():
            mine = cells.setdefault(arch, {}).setdefault(strategy, [])
            cells[arch][strategy] = sorted(set(mine) | {int(s) for s in seeds})
    pairs = []
    for pair in plan["pairs"]:
        kept = sorted(set(cells.get(pair["arch"], {}).get(pair["strategy"], [])) - set(pair["added"]))
        if kept:
            n = len(plan["initial"])
            pair = {**pair, "added": sorted(set(pair["added"]) | set(kept)),
                    "reason": f"{n} initial + {len(pair['added']) + len(kept)} added: {len(kept)} kept from an earlier "
                              f"plan (no result is discarded); now {pair['reason']}"}
        pairs.append(pair)
    return {**plan, "pairs": pairs, "cells": cells}


def write_plan(config: Mapping[str, Any], results: str | Path, table: str, plan: Mapping[str, Any],
               out: str | Path | None = None) -> tuple[list[Path], dict[str, Any]]:
    """Write the cell.yaml of every added cell (only when changed), then the plan itself (atomic); the
    cells an earlier plan of this pool added are kept (`keep_previous`)."""
    plan = keep_previous(dict(plan), read_plan(out or plan_path(results, table)))
    written = write_cell_configs(config, results, added_cells(config, table, plan))
    write_if_changed(out or plan_path(results, table), json.dumps(plan, indent=1, sort_keys=True) + "\n")
    return written, plan
