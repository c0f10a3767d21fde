"""The start-up checks of a profile's cells, run at parse time so that no job starts to fail.

`check_cells` finds every problem a cell would hit at its start (the runner's validation, the
registries, the model builder's accepted options, the schedule's mesh sizes, the datasets' paths),
one line per problem and table naming the key and what is allowed; the workflow runs it before any
cell.yaml is written (`mfcbench.pipeline.cells.write_cell_configs`) and `python -m mfcbench grid
--check` on demand. `unjudgeable_cells` warns of cells whose convergence no curve could show. Both
import torch (the registries), inside the functions: importing this module does not.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from ..core.cell import strategy_dir
from .cells import cell_config, expand, table_grid, table_variants
from .schema import ConfigError


def check_cells(config: Mapping[str, Any]) -> list[str]:
    """Every problem a cell would hit at its start, found at parse time: one line per problem and
    table naming the key and what is allowed (the runner's validation, the registries, the model
    builder's accepted options, the schedule's mesh sizes). Empty when every cell can start."""
    from ..data import dataset_names
    from ..experiments.ddpm import check_options as ddpm_problems
    from ..models import MODELS

    problems: list[str] = list(ddpm_problems((config.get("ddpm") or {}).get("options") or {}))
    for name, entry in config.get("datasets", {}).items():
        path = ((entry or {}).get("prepare_options") or {}).get("path")
        if name in dataset_names() and path is None:
            continue
        if path is None:
            problems.append(f"datasets: {name!r} is not a registered dataset; valid choices: {', '.join(dataset_names())}"
                            f" (or your own images: prepare_options: {{path: FILE.pt or FOLDER}})")
        elif name in dataset_names() or not Path(str(path)).exists():
            problems.append(f"datasets.{name}.prepare_options.path: " + (
                f"{name!r} is a registered dataset; name your own images otherwise" if name in dataset_names()
                else f"{path} does not exist (a .pt tensor file or an image folder, relative to the working directory)"))
    for table, spec in config.get("tables", {}).items():
        found: dict[str, list[str]] = {}
        cells = table_grid(spec)
        for variant, names in (spec.get("variant_strategies") or {}).items():
            if variant not in table_variants(spec) or set(names) - set(spec["strategies"]):
                problems.append(f"{table}: variant_strategies.{variant} must name a variant ({', '.join(table_variants(spec))})"
                                f" and some of the table's strategies ({', '.join(spec['strategies'])})")
        for arch, strategy, variant in cells:
            if arch not in MODELS:
                message = _unknown_model(arch)
            else:
                message = _cell_problem(config, table, spec, arch, strategy, variant)
            if message:
                found.setdefault(message, []).append(f"{arch}/{strategy_dir(strategy, variant)}")
        for message, where in found.items():
            scope = "every cell" if len(where) == len(cells) else ", ".join(where)
            problems.append(f"{table} ({scope}): {message}")
    return problems


def _unknown_model(arch: str) -> str:
    from ..models import import_builder, is_import_path, model_names

    if is_import_path(arch):
        try:
            import_builder(arch)
        except ValueError as error:
            return f"archs: {error}"
    return f"archs: unknown model {arch!r}; valid choices: {', '.join(model_names())} or package.module:function"


def _cell_problem(config, table: str, spec, arch: str, strategy: str, variant: str) -> str | None:
    import inspect

    from ..models import MODELS
    from ..strategies import build_strategy
    from ..tasks import build_task
    from ..train.cell import check_sizes
    from ..train.config import validate

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


def unjudgeable_cells(config: Mapping[str, Any]) -> list[str]:
    """Cells whose convergence can never be judged: the plateau test (train/convergence.py) compares the mean
    validation in (T/2, 3T/4] with that in (3T/4, T] of the last phase (T its steps); a window without a
    validation (validations every `val_every` steps of the run, and at its end) leaves the cell "not
    converged" whatever its curve. One line per table and setting, naming the key to change."""
    from ..strategies import build_strategy
    from ..train.config import validate
    from ..train.convergence import plateau_statistic

    found: dict[str, list[str]] = {}
    for cell in expand(config):
        try:
            cfg = validate(dict(cell.config))
            phases = build_strategy(cell.strategy, cfg).phases()
        except (ValueError, TypeError, ConfigError):
            continue  # a cell that cannot start: check_cells names its problem
        if (cfg.get("early_stop") or {}).get("patience"):
            continue  # an early stop on a plateau counts as converged
        total = sum(p.iterations for p in phases)
        last = phases[-1].iterations
        offset = total - last
        validations = [{"iteration": s - offset, "val_metric": 1.0}
                       for s in range(offset + 1, total + 1) if s % cfg["val_every"] == 0 or s == total]
        if plateau_statistic(validations, last, False) is None:  # the runner's own test: a window is empty
            key = (f"{cell.table}: {cell.strategy}'s last phase has {last} steps, val_every {cfg['val_every']}: "
                   f"no validation in one of the plateau test's windows; validate at least every {max(1, last // 4)} steps")
            found.setdefault(key, []).append(f"{cell.arch}/{cell.strategy}")
    return [f"{key} ({len(set(v))} network/strategy)" for key, v in found.items()]
