"""Seeds where they decide: which (network, strategy) pairs of a table get more seeds, and why.

A table with a `seed_plan` (profile key: `{cap, step}`, optional `force_needed`) first trains its `seeds`
(the initial round). The pipeline's `plan_seeds` checkpoint then scores the claims on that round's
cells (the same pairs, intervals, Holm correction and power calculation as claims.csv: `pairs`) and
plans the second round with `plan`:

- a pair every claim decides (REPRODUCED or DEVIATES) gets no seed;
- an undecided pair (INCONCLUSIVE in some claim) whose power calculation says it needs N seeds grows to
  N (N at or below its count: one more step), the addition rounded up to a multiple of `step`, never
  past `cap` seeds in all; an undecided pair without a power calculation (a side not converged, no
  spread) gets none: more seeds would not decide it. Which pairs get a count and how far a pair grows is
  `seedcount`'s rule, the one Figure 8's plan follows too;
- both sides of a pair run the added seeds: the pair's strategy and its reference (`versus`, most often
  the arch's SGD; Table 12's crops variant of the same strategy), in every variant of the table;
- a pair whose reference cells are in another table (Table 10's) is not planned: the other table's
  seeds are fixed.

The added seeds are the next integers above the initial ones (`pipeline.seeds.seed_pool`), so a seed is one cell
whatever round trained it; nothing of the first round is dropped. `annotate` writes each pair's
history into pairs.csv's `seed_reason` ("5 initial + 5 added: needed 9 by the power calculation, cap 10").
Reads DataFrames and JSON only (no training code).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, NamedTuple

import pandas as pd

from .claims import load_claims, score_all
from .engine import INCONCLUSIVE
from .layout import only_files
from .pairs import versus_of
from .seedcount import grow_to

PLAN_SUFFIX = ".seeds.json"  # results/<profile>/<table>.seeds.json


class PairStatus(NamedTuple):
    """What the first round's claims say of one pair: undecided, the seeds it needs, the verdicts."""

    undecided: bool
    needed: int | None
    said: str


def _pair_status(rows: pd.DataFrame, force_needed: int | None) -> PairStatus:
    """One pair over the claims that compare it: undecided when some claim is INCONCLUSIVE, needing the
    largest count those claims' power calculations ask for (`seedcount.pair_needed`, in pairs.csv)."""
    verdicts = rows["verdict"].astype(str)
    undecided = bool((verdicts == INCONCLUSIVE).any())
    said = ", ".join(f"{c}: {v}" for c, v in zip(rows["claim"], verdicts))
    if force_needed is not None:
        return PairStatus(True, int(force_needed), said)
    needs = pd.to_numeric(rows.loc[verdicts == INCONCLUSIVE, "seeds_needed"], errors="coerce").dropna()
    return PairStatus(undecided, (int(needs.max()) if len(needs) else None), said)


def _split_versus(value: str) -> tuple[str, str]:
    """(table, strategy) of a pair's reference cells: "table12:fmsgd+crops" -> ("table12", "fmsgd")."""
    where, _, strategy = value.partition(":")
    return where, strategy.split("+")[0]


def plan(pairs: pd.DataFrame, table: str, pool: list[int], initial: int, step: int = 1,
         force_needed: int | None = None) -> dict[str, Any]:
    """The second round of `table` from its first round's pairs (pairs.csv rows: claim, table, arch,
    strategy, verdict, seeds_needed). `pool`: every seed the table may run, the first `initial` of them
    trained (the pipeline's `seeds.seed_pool`; cap = its length). Returns {table, initial, cap, step,
    pairs: [{arch, strategy, needed, added, reason}], cells: {arch: {strategy: [added seeds]}}};
    `force_needed` plans every pair as if it needed that many seeds (tests, rehearsals)."""
    cap, n = len(pool), initial
    if cap < n or step < 1:
        raise ValueError(f"{table}: seed_plan needs cap >= {n} (the initial seeds) and step >= 1")
    rows = pairs[pairs["table"].astype(str) == table]
    raw = versus_of(rows)
    rows = rows.assign(_versus=raw)
    # a pair is planned here when both sides are cells of this table (and not SGD against itself)
    rows = rows[raw.map(lambda v: _split_versus(v)[0] == table) & (raw != table + ":" + rows["strategy"].astype(str))]
    planned, cells = [], {}
    for (arch, strategy, versus), group in rows.groupby(["arch", "strategy", "_versus"], sort=True):
        status = _pair_status(group, force_needed)
        added = pool[n:grow_to(n, status.needed, cap, step, status.undecided)]
        reason = _reason(n, added, status, cap, force_needed is not None)
        planned.append({"arch": arch, "strategy": strategy, "versus": versus, "needed": status.needed,
                        "added": added, "reason": reason})
        if added:  # both sides of the pair (every variant of each: `pipeline.seeds.added_cells`)
            arch_cells = cells.setdefault(str(arch), {})
            for side in (str(strategy), _split_versus(versus)[1]):
                arch_cells[side] = sorted(set(arch_cells.get(side, [])) | set(added))
    return {"table": table, "initial": [int(s) for s in pool[:n]], "cap": cap, "step": step,
            "pairs": planned, "cells": cells}


def _reason(n: int, added: list[int], status: PairStatus, cap: int, forced: bool) -> str:
    undecided, needed, said = status
    head = f"{n} initial + {len(added)} added" if added else f"{n} initial, none added"
    if not undecided:
        return f"{head}: decided ({said})"
    if needed is None:
        return f"{head}: undecided ({said}) without a power calculation (a side not converged or no spread): more seeds would not decide it"
    why = "forced by seed_plan.force_needed" if forced else "by the power calculation"
    if not added:
        return f"{head}: undecided ({said}), needed {needed} {why}, cap {cap} already reached"
    capped = "; cap reached" if needed > n + len(added) else ""
    return f"{head}: needed {needed} {why}, cap {cap}{capped}"


def plan_table(frame: pd.DataFrame, table: str, pool: list[int], initial: int, step: int = 1,
               force_needed: int | None = None) -> dict[str, Any]:
    """`plan` from a table's first-round result rows, scored by every claim that reads the table."""
    _, pairs = score_all(load_claims(), {table: frame})
    return plan(pairs, table, pool, initial, step, force_needed)


def cells_to_add(plan_: dict[str, Any]) -> list[tuple[str, str, int]]:
    """(arch, strategy, seed) of every cell the plan adds (SGD included), sorted."""
    return sorted((a, s, int(k)) for a, by in plan_.get("cells", {}).items() for s, seeds in by.items() for k in seeds)


def load_plans(results_dir: str | Path, only: Any = None) -> dict[str, dict[str, Any]]:
    """table -> its seeds.json plan, for every plan in results/<profile>/ (none: {}); with `only` (the
    files the profile builds), a plan left by a table the profile no longer plans is not read."""
    plans = {}
    for path in only_files(sorted(Path(results_dir).glob(f"*{PLAN_SUFFIX}")), only):
        try:
            plans[path.name[: -len(PLAN_SUFFIX)]] = json.loads(path.read_text())
        except (OSError, ValueError) as error:
            raise ValueError(f"{path}: unreadable seed plan ({error}); delete it and rerun the pipeline") from None
    return plans


def annotate(pairs: pd.DataFrame, plans: dict[str, dict[str, Any]]) -> pd.DataFrame:
    """pairs.csv with `seed_reason`: the seeds each pair received and why (fixed seeds without a plan)."""
    reasons = {(t, p["arch"], p["strategy"], p.get("versus", f"{t}:sgd")): p["reason"]
               for t, pl in plans.items() for p in pl.get("pairs", [])}
    out = pairs.copy()
    versus = versus_of(out)
    out["seed_reason"] = [_seed_reason(reasons, plans, str(t), str(a), str(s), v)
                          for t, a, s, v in zip(out.get("table", []), out.get("arch", []), out.get("strategy", []), versus)]
    return out


def _seed_reason(reasons: dict, plans: dict, table: str, arch: str, strategy: str, versus: str) -> str:
    if table not in plans:
        return "fixed seeds (no seed_plan)"
    if (table, arch, strategy, versus) in reasons:
        return reasons[(table, arch, strategy, versus)]
    initial = len(plans[table].get("initial", []))
    if not versus.startswith(f"{table}:"):
        return f"{initial} initial, none added: its reference cells ({versus}) have fixed seeds"
    return f"{initial} initial, none added: no claim of the first round compared it"

