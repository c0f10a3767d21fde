"""A profile's tables -> cells, and the files the workflow writes for them.

A profile config (`workflow/config/*.yaml`, schema `mfcbench/pipeline/config.schema.yaml`, read by
`mfcbench.pipeline.schema`) holds tables as data: task, dataset, archs x strategies x seeds (x named
variants). A cell's training config is merged, later winning:
schema defaults < `defaults` < `arch_overrides[arch]` < `strategy_overrides[strategy]`
< table `overrides` < table `strategy_overrides[strategy]` < `variants[variant]`;
`image_size` comes from the dataset entry and `threads` from `threads_per_cell` (`cell_config`). A variant
`{wu_match: <strategy>[+<variant>]}` of SGD compresses SGD's schedule to the closed-form #WU of that cell
of the same table and network (`wu_matched`): SGD at equal compute, set here so the training code and
its options stay as they are (cell.yaml holds training options only).
`iter_cells`/`expand`/`index` give the `mfcbench.core.cell.Cell`s (their folders are `Cell.relpath`),
`table_grid` and `seed_pool` a table's networks, strategies, variants and seeds. The Snakefile, the
commands and the tests all expand a profile here, so a cell and its options are computed one way.

Each cell's cell.yaml (`cell_text`) is written at parse time only when its text changes
(`write_cell_configs`, after the start-up checks it is given), and the profile as a run sees it
(`profile_text`) the same way (`write_if_changed`). Nothing here imports torch.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

import yaml

from ..core.atomic import write_text
from ..core.cell import BASE_VARIANT, VARIANT_SEP, Cell, CellFiles
from ..core.workunits import level_batches, msgd_step_wu, phase_batches, single_scale_batch
from ..train.config import OPTIONS, full_early_stop, merge
from .schema import ConfigError

WU_MATCH = "wu_match"  # a variant key of the profile, never a training option (popped by `cell_config`)


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
    if WU_MATCH in out:
        out = wu_matched(config, table, arch, strategy, out)
    if isinstance(out.get("early_stop"), dict):
        out["early_stop"] = full_early_stop(out["early_stop"])
    dataset = spec["dataset"]
    if dataset in config.get("datasets", {}):
        size = table_size(config, table)
        if out.get("image_size", size) != size and "image_size" in _explicit_keys(config, spec, arch, strategy, variant):
            raise ConfigError(
                f"table {table}: image_size {out['image_size']} differs from the table's size {size}; set it on the "
                f"dataset entry or as the table's own `image_size` (one prepared size per table)")
        out["image_size"] = size
    out["data_root"] = config.get("data_root", out.get("data_root", "data"))
    out["threads"] = config.get("threads_per_cell", out.get("threads"))
    return out


def table_size(config: Mapping[str, Any], table: str) -> int:
    """A table's finest mesh: its own `image_size` (a ladder's rung at another resolution), else its dataset
    entry's; its cells read the dataset prepared at that size."""
    spec = config["tables"][table]
    return int(spec.get("image_size", config["datasets"][spec["dataset"]]["image_size"]))


def wu_matched(config: Mapping[str, Any], table: str, arch: str, strategy: str, out: dict) -> dict:
    """SGD's options with `wu_match` resolved: the named cell of the same table and network (its own
    variant machinery) gives its closed-form #WU (`schedule_units`), and SGD's schedule is compressed to
    that #WU at SGD's own batch (`compress_schedule`)."""
    target = str(out.pop(WU_MATCH))
    spec = config["tables"][table]
    if strategy != "sgd":
        raise ConfigError(f"table {table}: wu_match: {target} on strategy {strategy!r}: it compresses SGD's schedule "
                          "only; limit the variant to SGD with variant_strategies: {<variant>: [sgd]}")
    other, _, other_variant = target.partition(VARIANT_SEP)
    other_variant = other_variant or BASE_VARIANT
    if (arch, other, other_variant) not in table_grid(spec):
        have = sorted({s if v == BASE_VARIANT else f"{s}{VARIANT_SEP}{v}" for a, s, v in table_grid(spec) if a == arch})
        raise ConfigError(f"table {table}: wu_match: {target} names no cell of {arch} in this table; "
                          f"valid choices: {', '.join(have)}")
    if other not in UNIT_PRICES:
        raise ConfigError(f"table {table}: wu_match: {target}: the closed-form #WU is priced here for "
                          f"{', '.join(UNIT_PRICES)} only; name one of them")
    matched = cell_config(config, table, arch, other, other_variant)
    if out.get("budget_scale", 1) != 1:
        raise ConfigError(f"table {table}: wu_match: {target} sets SGD's iterations from the matched #WU; "
                          "remove budget_scale from the variant (scale the matched cell instead)")
    return compress_schedule(out, schedule_units(other, matched))


def _scaled_iterations(cfg: Mapping[str, Any]) -> list[int]:
    """Each level's iterations times `budget_scale`, as `Strategy.phase_iterations` runs them."""
    scale = cfg.get("budget_scale", 1)
    return [int(n) if scale == 1 else round(n * scale) for n in _level_iterations(cfg)]


def _level_iterations(cfg: Mapping[str, Any]) -> list[int]:
    """The per-level list (an int n means n at every level, as `train.config.resolve` reads it)."""
    its = cfg["iterations"]
    return [int(its)] * int(cfg["levels"]) if isinstance(its, int) else [int(n) for n in its]


def _fmsgd_units(cfg: Mapping[str, Any]) -> Fraction:
    levels = int(cfg["levels"])
    return sum((n * msgd_step_wu(phase_batches(cfg, levels - 1 - i), first_level=levels - 1 - i)
                for i, n in enumerate(_scaled_iterations(cfg)) if n), Fraction(0))


# closed-form #WU of a cell's schedule, torch-free (the strategies' phases, core/workunits' arithmetic;
# tests/pipeline/test_wu_match.py checks each against `schedule_wu` of the built strategy)
UNIT_PRICES: dict[str, Callable[[Mapping[str, Any]], Fraction]] = {
    "sgd": lambda cfg: sum(_scaled_iterations(cfg)) * Fraction(single_scale_batch(cfg)),
    "msgd": lambda cfg: sum(_scaled_iterations(cfg)) * msgd_step_wu(level_batches(cfg)),
    "fmsgd": _fmsgd_units,
}


def schedule_units(strategy: str, cfg: Mapping[str, Any]) -> Fraction:
    """Closed-form #WU of a cell of `strategy` with options `cfg` (sgd, msgd, fmsgd)."""
    return UNIT_PRICES[strategy](cfg)


def compress_schedule(out: dict, units: Fraction) -> dict:
    """SGD's options compressed to `units` #WU: as many steps at SGD's own batch as that #WU buys
    (rounded to a whole step), spread over the levels in SGD's own proportions (the same list shape);
    the cosine follows from the iterations. `val_every` gives as many validations as the full SGD run
    (one a step at most), small enough that the plateau test's windows (T/2, 3T/4] and (3T/4, T] both
    hold one (train/convergence.py); `checkpoint_every` shrinks in proportion. Early-stopping patience
    counts validations, so it needs no change."""
    full = _level_iterations(out)
    steps = max(1, round(units / single_scale_batch(out)))
    cuts = [round(Fraction(steps * sum(full[: k + 1]), sum(full))) for k in range(len(full))]
    out["iterations"] = [b - a for a, b in zip([0] + cuts[:-1], cuts)]
    val_every = int(out.get("val_every", OPTIONS["val_every"].default))
    every = max(1, steps // max(1, sum(full) // val_every))
    while every > 1 and not any(steps / 2 < k * every <= 0.75 * steps for k in range(1, steps + 1)):
        every -= 1
    out["val_every"] = every
    checkpoint = int(out.get("checkpoint_every", OPTIONS["checkpoint_every"].default))
    out["checkpoint_every"] = max(1, round(Fraction(checkpoint * steps, sum(full))))
    return out


def _explicit_keys(config, spec, arch, strategy, variant) -> set[str]:
    keys: set[str] = set()
    for block in (config.get("arch_overrides", {}).get(arch), config.get("strategy_overrides", {}).get(strategy),
                  spec.get("overrides"), (spec.get("strategy_overrides") or {}).get(strategy),
                  (spec.get("variants") or {}).get(variant)):
        keys |= set(block or {})
    return keys


def table_variants(spec: Mapping[str, Any]) -> list[str]:
    """A table's variants, in config order (the base variant when it names none)."""
    return list(spec.get("variants") or {}) or [BASE_VARIANT]


def table_grid(spec: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    """(arch, strategy, variant) of every cell of a table, variant-major: each variant runs every arch and
    strategy, except a variant that `variant_strategies` limits (e.g. {wu16: [fmsgd]})."""
    only = spec.get("variant_strategies") or {}
    return [(a, s, v) for v in table_variants(spec) for a in spec["archs"] for s in spec["strategies"]
            if s in only.get(v, [s])]


def seed_pool(spec: Mapping[str, Any]) -> list[int]:
    """Every seed a table may run: its `seeds`, then (with a `seed_plan`) the next integers above them up to
    `seed_plan.cap` seeds in all, which the plan_seeds checkpoint adds where they decide (pipeline/seeds.py)."""
    pool = [int(s) for s in spec["seeds"]]
    extra = max(pool) + 1
    while len(pool) < int((spec.get("seed_plan") or {}).get("cap", 0)):
        pool.append(extra)
        extra += 1
    return pool


def iter_cells(config: Mapping[str, Any], tables: list[str] | None = None, pool: bool = False) -> Iterator[Cell]:
    """Every cell of the named tables (all tables by default), in config order; `pool`: also the seeds a
    seed plan may add (`seed_pool`), which run only when the plan adds them."""
    all_tables = config.get("tables", {})
    for name in tables or list(all_tables):
        if name not in all_tables:
            raise ConfigError(f"unknown table {name!r}; valid choices: {', '.join(all_tables)}")
        spec = all_tables[name]
        dataset = spec["dataset"]
        if dataset not in config.get("datasets", {}):
            raise ConfigError(f"table {name}: dataset {dataset!r} has no entry under datasets; "
                              f"defined: {', '.join(config.get('datasets', {})) or 'none'}")
        for arch, strategy, variant in table_grid(spec):
            cfg = cell_config(config, name, arch, strategy, variant)
            for seed in seed_pool(spec) if pool else spec["seeds"]:
                yield Cell(table=name, task=spec["task"], dataset=dataset, arch=arch, strategy=strategy,
                           variant=variant, seed=int(seed), config=cfg)


def expand(config: Mapping[str, Any], tables: list[str] | None = None) -> list[Cell]:
    """`iter_cells` as a list."""
    return list(iter_cells(config, tables))


def index(config: Mapping[str, Any], pool: bool = False) -> dict[str, Cell]:
    """relpath -> Cell, for looking a cell up from a rule's wildcards (`pool`: with the seeds a plan may add)."""
    cells = {cell.relpath(): cell for cell in iter_cells(config, pool=pool)}
    return cells


# ----------------------------------------------------------------------------- files the workflow reads
def cell_text(cell: Cell) -> str:
    """A cell's cell.yaml text: its training options (the train rule's input, so a change retrains it)."""
    return yaml.safe_dump(dict(cell.config), sort_keys=True)


def profile_text(config: Mapping[str, Any], drop: tuple[str, ...] = (), sort_keys: bool = False) -> str:
    """The profile as this run sees it (config file + --config, defaults filled), without `drop` keys."""
    return yaml.safe_dump({k: v for k, v in dict(config).items() if k not in drop}, sort_keys=sort_keys)


def write_if_changed(path: str | Path, text: str) -> bool:
    """Write `text` atomically unless the file already holds it (an unchanged file keeps its mtime)."""
    try:
        if Path(path).read_text() == text:
            return False
    except (OSError, UnicodeDecodeError):
        pass
    try:
        write_text(path, text)
    except OSError as error:  # a results folder that is a file, read-only, on a full disk: one line, no traceback
        raise ConfigError(f"{path}: cannot write it ({error.strerror or error}); make its folder writable "
                          "or set the profile's results_dir to one") from None
    return True


def changed_cell_configs(cells: Mapping[str, Cell], results: str | Path) -> dict[Path, str]:
    """cell.yaml path -> text, for every cell whose file is missing or differs from its resolved config."""
    out = {}
    for rel, cell in cells.items():
        path, text = CellFiles(Path(results) / rel).config, cell_text(cell)
        try:
            same = path.read_text() == text
        except (OSError, UnicodeDecodeError):
            same = False
        if not same:
            out[path] = text
    return out


def write_cell_configs(config: Mapping[str, Any], results: str | Path, cells: Mapping[str, Cell] | None = None,
                       check: Callable[[Mapping[str, Any]], list[str]] | None = None) -> list[Path]:
    """Write the cell.yaml of every cell (default: the profile's, `index(config)`) whose options are new
    or changed; return their paths.

    `check` (the workflow passes `mfcbench.pipeline.checks.check_cells`, which imports torch) runs
    first when any file would change: a problem raises ConfigError with one line per problem, and
    nothing is written. An unchanged profile reads the files only (no torch, no write), so planning
    stays cheap."""
    changed = changed_cell_configs(index(config) if cells is None else cells, results)
    if changed and check is not None:
        problems = check(config)
        if problems:
            raise ConfigError(f"{len(problems)} problem(s) in the profile, no job started:\n  " + "\n  ".join(problems))
    for path, text in changed.items():
        write_if_changed(path, text)
    return list(changed)
