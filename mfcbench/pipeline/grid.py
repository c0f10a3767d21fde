"""Expand a profile's tables into cells: the one place that knows the grid and the results layout.

The Snakefile, `snakemake -n` summaries, `mfcbench gather` and the tests all use this module, so a
cell's path, its resolved training config and its closed-form work units are computed one way.

A profile config (`workflow/config/*.yaml`, schema `workflow/schemas/config.schema.yaml`) holds
tables as data: task, dataset, archs x strategies x seeds (x named variants). A cell's training
config is merged, later winning:
schema defaults < `defaults` < `arch_overrides[arch]` < `strategy_overrides[strategy]`
< table `overrides` < table `strategy_overrides[strategy]` < `variants[variant]`;
`image_size` comes from the dataset entry and `threads` from `threads_per_cell`.
Run `python -m mfcbench grid --config workflow/config/paper.yaml` for a summary.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping

import yaml

from ..train.config import full_early_stop, merge, schema_error_message, strict_validator, training_schema

ROOT = Path(__file__).resolve().parent.parent.parent
SCHEMA_PATH = ROOT / "workflow" / "schemas" / "config.schema.yaml"
BASE_VARIANT = "base"
VARIANT_SEP = "+"  # a non-base variant lives in "<strategy>+<variant>/"


class ConfigError(ValueError):
    """The profile config is invalid; the message names the key and what is allowed."""


@dataclass(frozen=True)
class Cell:
    table: str
    task: str
    dataset: str
    arch: str
    strategy: str
    variant: str
    seed: int
    config: Mapping[str, Any] = field(compare=False, hash=False, repr=False)

    @property
    def strategy_dir(self) -> str:
        return self.strategy if self.variant == BASE_VARIANT else f"{self.strategy}{VARIANT_SEP}{self.variant}"

    def relpath(self) -> str:
        """`<table>/<task>/<dataset>/<arch>/<strategy>[+variant]/seed<k>` (docs/architecture.md)."""
        return "/".join((self.table, self.task, self.dataset, self.arch, self.strategy_dir, f"seed{self.seed}"))

    def coordinates(self) -> dict[str, Any]:
        return {"table": self.table, "task": self.task, "dataset": self.dataset, "arch": self.arch,
                "strategy": self.strategy, "variant": self.variant, "seed": self.seed}


def parse_cell_dir(path: str | Path) -> dict[str, Any]:
    """Inverse of `Cell.relpath`: coordinates from the last six parts of a cell directory."""
    parts = Path(path).parts
    if len(parts) < 6 or not parts[-1].startswith("seed") or not parts[-1][4:].isdigit():
        raise ValueError(f"not a cell directory (.../<table>/<task>/<dataset>/<arch>/<strategy>/seed<k>): {path}")
    table, task, dataset, arch, strategy_dir, seed = parts[-6:]
    strategy, _, variant = strategy_dir.partition(VARIANT_SEP)
    return {"table": table, "task": task, "dataset": dataset, "arch": arch, "strategy": strategy,
            "variant": variant or BASE_VARIANT, "seed": int(seed[4:])}


# ----------------------------------------------------------------------------- config + schema
def load_schema(path: str | Path = SCHEMA_PATH) -> dict:
    """The profile schema with its generated parts filled in: the training options (from
    mfcbench.train.config, one declaration each) and the task and strategy names (from the registries)."""
    from ..strategies import strategy_names
    from ..tasks import task_names

    schema = yaml.safe_load(Path(path).read_text())
    defs = schema["$defs"]
    defs["training"] = training_schema()
    overrides = training_schema(with_defaults=False)
    overrides.update(description="a subset of the training options (see $defs/training for each key)", default={})
    defs["training_overrides"] = overrides
    table = defs["table"]["properties"]
    table["task"]["enum"] = task_names()
    table["strategies"]["items"]["enum"] = strategy_names()
    return schema


def _deref(schema: dict, root: dict) -> dict:
    ref = schema.get("$ref")
    if not ref:
        return schema
    node: Any = root
    for part in ref.lstrip("#/").split("/"):
        node = node[part]
    return node


def validate_config(config: Mapping[str, Any], schema: dict | None = None) -> None:
    """Raise ConfigError naming the first (deepest) offending key and what is allowed."""
    import jsonschema

    schema = load_schema() if schema is None else schema
    errors = sorted(strict_validator(schema).iter_errors(config), key=lambda e: (-len(e.absolute_path), str(e.absolute_path)))
    if errors:
        best = jsonschema.exceptions.best_match(errors) if len(errors) > 1 else errors[0]
        raise ConfigError(schema_error_message(best))


def apply_defaults(config: dict, schema: dict | None = None) -> dict:
    """Fill schema defaults into the top level and the `defaults` block only.

    Table `overrides` and `variants` are deliberately left sparse: they change only what they
    name (snakemake's own default-filling would write every default into them)."""
    schema = load_schema() if schema is None else schema

    def fill(instance: dict, node: dict) -> None:
        for key, sub in node.get("properties", {}).items():
            sub = _deref(sub, schema)
            if key not in instance and "default" in sub:
                instance[key] = copy.deepcopy(sub["default"])
            if key != "tables" and isinstance(instance.get(key), dict) and "properties" in sub:
                fill(instance[key], sub)

    fill(config, schema)
    return config


def load_config(path: str | Path, schema: dict | None = None) -> dict:
    """Read, validate and default a profile config (what the Snakefile does, for Python callers)."""
    schema = load_schema() if schema is None else schema
    config = yaml.safe_load(Path(path).read_text()) or {}
    validate_config(config, schema)
    return apply_defaults(config, schema)


# ----------------------------------------------------------------------------- expansion
def cell_config(config: Mapping[str, Any], table: str, arch: str, strategy: str, variant: str = BASE_VARIANT) -> dict:
    """The resolved training options of one cell (written to its cell.yaml)."""
    spec = config["tables"][table]
    variants = spec.get("variants") or {}
    if variant != BASE_VARIANT and variant not in variants:
        raise ConfigError(f"table {table}: unknown variant {variant!r}; valid choices: {', '.join(variants) or BASE_VARIANT}")
    out = merge(config.get("defaults", {}), config.get("arch_overrides", {}).get(arch))
    out = merge(out, config.get("strategy_overrides", {}).get(strategy))
    out = merge(out, spec.get("overrides"))
    out = merge(out, (spec.get("strategy_overrides") or {}).get(strategy))
    out = merge(out, variants.get(variant))
    if isinstance(out.get("early_stop"), dict):
        out["early_stop"] = full_early_stop(out["early_stop"])
    dataset = spec["dataset"]
    if dataset in config.get("datasets", {}):
        size = config["datasets"][dataset]["image_size"]
        if out.get("image_size", size) != size and "image_size" in _explicit_keys(config, spec, arch, strategy, variant):
            raise ConfigError(
                f"table {table}: image_size {out['image_size']} differs from datasets.{dataset}.image_size {size}; "
                f"set it on the dataset entry (one prepared size per dataset and profile)")
        out["image_size"] = size
    out["data_root"] = config.get("data_root", out.get("data_root", "data"))
    out["threads"] = config.get("threads_per_cell", out.get("threads"))
    return out


def _explicit_keys(config, spec, arch, strategy, variant) -> set[str]:
    keys: set[str] = set()
    for block in (config.get("arch_overrides", {}).get(arch), config.get("strategy_overrides", {}).get(strategy),
                  spec.get("overrides"), (spec.get("strategy_overrides") or {}).get(strategy),
                  (spec.get("variants") or {}).get(variant)):
        keys |= set(block or {})
    return keys


def table_variants(spec: Mapping[str, Any]) -> list[str]:
    return list(spec.get("variants") or {}) or [BASE_VARIANT]


def iter_cells(config: Mapping[str, Any], tables: list[str] | None = None) -> Iterator[Cell]:
    """Every cell of the named tables (all tables by default), in config order."""
    all_tables = config.get("tables", {})
    for name in tables or list(all_tables):
        if name not in all_tables:
            raise ConfigError(f"unknown table {name!r}; valid choices: {', '.join(all_tables)}")
        spec = all_tables[name]
        dataset = spec["dataset"]
        if dataset not in config.get("datasets", {}):
            raise ConfigError(f"table {name}: dataset {dataset!r} has no entry under datasets; "
                              f"defined: {', '.join(config.get('datasets', {})) or 'none'}")
        for variant in table_variants(spec):
            for arch in spec["archs"]:
                for strategy in spec["strategies"]:
                    cfg = cell_config(config, name, arch, strategy, variant)
                    for seed in spec["seeds"]:
                        yield Cell(name, spec["task"], dataset, arch, strategy, variant, int(seed), cfg)


def expand(config: Mapping[str, Any], tables: list[str] | None = None) -> list[Cell]:
    return list(iter_cells(config, tables))


def index(config: Mapping[str, Any]) -> dict[str, Cell]:
    """relpath -> Cell, for looking a cell up from a rule's wildcards."""
    cells = {cell.relpath(): cell for cell in iter_cells(config)}
    return cells


def datasets_needed(config: Mapping[str, Any]) -> list[tuple[str, int]]:
    """(dataset, image_size) pairs the profile's tables train on, in first-use order."""
    seen: dict[tuple[str, int], None] = {}
    for spec in config.get("tables", {}).values():
        if spec.get("dataset") in config.get("datasets", {}):
            seen[(spec["dataset"], config["datasets"][spec["dataset"]]["image_size"])] = None
    return list(seen)


# ----------------------------------------------------------------------------- checks
def check_cells(config: Mapping[str, Any]) -> list[str]:
    """Every problem a cell would hit at its start, found at parse time: one line per problem and
    table naming the key and what is allowed (the runner's validation, the registries, the model
    builder's accepted options, the schedule's mesh sizes). Empty when every cell can start."""
    from ..data import dataset_names
    from ..models import model_names

    problems: list[str] = []
    for name in [d for d in config.get("datasets", {}) if d not in dataset_names()]:
        problems.append(f"datasets: {name!r} is not a registered dataset; valid choices: {', '.join(dataset_names())}")
    for table, spec in config.get("tables", {}).items():
        found: dict[str, list[str]] = {}
        cells = [(a, s, v) for v in table_variants(spec) for a in spec["archs"] for s in spec["strategies"]]
        for arch, strategy, variant in cells:
            if arch not in model_names():
                message = f"archs: unknown model {arch!r}; valid choices: {', '.join(model_names())}"
            else:
                message = _cell_problem(config, table, spec, arch, strategy, variant)
            if message:
                found.setdefault(message, []).append(f"{arch}/{strategy}{'' if variant == BASE_VARIANT else '+' + variant}")
        for message, where in found.items():
            scope = "every cell" if len(where) == len(cells) else ", ".join(where)
            problems.append(f"{table} ({scope}): {message}")
    return problems


def _cell_problem(config, table: str, spec, arch: str, strategy: str, variant: str) -> str | None:
    import inspect

    from ..train.config import validate
    from ..models import MODELS
    from ..train.runner import check_sizes
    from ..strategies import build_strategy
    from ..tasks import build_task

    try:
        cfg = validate(cell_config(config, table, arch, strategy, variant))
        task = build_task(spec["task"], cfg["task_options"], seed=0)
        check_sizes(cfg, task, None, build_strategy(strategy, cfg))
    except (ValueError, TypeError, ConfigError) as error:
        return str(error)
    params = inspect.signature(MODELS.get(arch)).parameters
    if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        accepted = [n for n, p in params.items() if p.kind is inspect.Parameter.KEYWORD_ONLY and n not in ("cond", "upscale")]
        bad = sorted(set(cfg["model"]) - set(accepted))
        if bad:
            return f"model: unknown option(s) {', '.join(map(repr, bad))} for {arch}; valid choices: {', '.join(accepted) or 'none'}"
    return None


# ----------------------------------------------------------------------------- work units
def cell_work_units(cell: Cell) -> float | None:
    """Closed-form #WU of a cell's schedule (App. C), from `mfcbench.core.workunits`; None if unknown."""
    from ..strategies import build_strategy
    from ..core.workunits import schedule_wu

    try:
        return float(schedule_wu(build_strategy(cell.strategy, dict(cell.config)).phases()))
    except Exception:  # unsupported strategy/schedule: the summary says n/a, the runner reports the error
        return None


def summarize(config: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One row per table: cells and total closed-form #WU (None when any cell's WU is unknown)."""
    rows = []
    for name in config.get("tables", {}):
        cells = expand(config, [name])
        wus = [cell_work_units(c) for c in cells]
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


def format_summary(config: Mapping[str, Any]) -> str:
    rows = summarize(config)
    cells = sum(r["cells"] for r in rows)
    known = [r["wu_closed_form"] for r in rows]
    total = "n/a" if any(w is None for w in known) else f"{sum(known):,.0f}"
    lines = [f"mfcbench profile {config.get('profile', '?')!r}: {cells} cells, closed-form #WU {total}"]
    for r in rows:
        wu = "n/a" if r["wu_closed_form"] is None else f"{r['wu_closed_form']:,.0f}"
        lines.append(f"  {r['table']:<8} {r['task']:<12} {r['cells']:>4} cells  {wu:>16} WU")
    return "\n".join(lines)
