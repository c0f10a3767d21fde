"""Checks of a profile's text that its JSON schema does not make (issue 20): each problem is one line
naming the file or key and the fix.

- `load_profile(path)`: YAML read with a syntax error naming file, line and column, and a duplicated
  key (`table4:` twice, which PyYAML silently keeps the last of) refused naming both lines.
- `check_profile(config)`: paths without control characters or quotes (they reach shells: Snakemake
  quotes them, dvc.yaml puts data_root in single quotes) nor braces or `$` (Snakemake reads `{x}` as a
  wildcard, a shell expands `$HOME`), prepare_options DVC can put on a command line, numbers that are
  numbers (`lr: NaN` is a float to the schema) and every cell's batches within the one bound on a batch
  (`mfcbench.train.config.batch_problems`: its images must fit in this machine's memory).
"""

from __future__ import annotations

import math
import os
import re
from pathlib import Path
from typing import Any, Iterator, Mapping

import yaml

PATH_KEYS = ("data_root", "results_dir", "logs_dir", "reports_dir")
_BAD_PATH = re.compile(r"[\x00-\x1f\x7f']")
_PATTERN_PATH = re.compile(r"[{}$]")  # a Snakemake wildcard or a shell expansion, never a folder name here
_OPTION_KEY = re.compile(r"^[A-Za-z][A-Za-z0-9_-]*$")
_OPTION_TEXT = re.compile(r"^[A-Za-z0-9_.,:/+=@-]*$")


class ProfileError(ValueError):
    """A profile's text is unusable; the message names the file or key, where, and the fix."""


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses a key given twice in one mapping."""


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        line = key_node.start_mark.line + 1
        if key in seen:
            raise ProfileError(f"{key_node.start_mark.name}:{line}: key {key!r} is given twice (first on line "
                               f"{seen[key]}); YAML would keep only the last: merge them into one")
        seen[key] = line
    return loader.construct_mapping(node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def load_profile(path: str | Path) -> dict:
    """The profile at `path`, read strictly: syntax errors and duplicated keys name the file and line."""
    path = Path(path)
    text = path.read_text()
    try:
        loader = _StrictLoader(text)
        loader.name = str(path)
        try:
            data = loader.get_single_data()
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        raise ProfileError(f"{where}: YAML syntax error: {error.problem or error.context}; fix the text there") from None
    if not isinstance(data, dict):
        raise ProfileError(f"{path}: a profile is a YAML mapping (key: value lines), got {type(data).__name__}")
    return data


def _walk(node: Any, where: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(node, Mapping):
        for key, value in node.items():
            yield from _walk(value, f"{where}.{key}" if where else str(key))
    elif isinstance(node, (list, tuple)):
        for i, value in enumerate(node):
            yield from _walk(value, f"{where}[{i}]")
    else:
        yield where, node


def path_problems(config: Mapping[str, Any]) -> list[str]:
    problems = []
    for key in PATH_KEYS:
        value = config.get(key)
        if value is None:
            continue
        if not isinstance(value, str) or not value.strip():
            problems.append(f"{key}: must be a non-empty path, got {value!r}")
        elif _BAD_PATH.search(value):
            problems.append(f"{key}: {value!r} holds a control character, newline or quote; choose a plain path")
        elif _PATTERN_PATH.search(value):
            problems.append(f"{key}: {value!r} holds '{{', '}}' or '$' (Snakemake reads braces as a wildcard, nothing "
                            f"expands $); write the path out in full (e.g. /home/me/logs, not ${{HOME}}/logs)")
    return problems


def location_problems(config: Mapping[str, Any]) -> list[str]:
    """Output folders that exist but cannot hold the run's files: a file in their place, or read-only."""
    problems = []
    for key in ("results_dir", "logs_dir", "reports_dir"):
        value = config.get(key)
        if not isinstance(value, str) or not value.strip() or _BAD_PATH.search(value) or _PATTERN_PATH.search(value):
            continue
        path = Path(value)
        existing = next((p for p in (path, *path.parents) if p.exists()), None)
        if existing is not None and not existing.is_dir():
            problems.append(f"{key}: {existing} is a file, not a folder; move it away or choose another {key}")
        elif existing is not None and not os.access(existing, os.W_OK | os.X_OK):
            problems.append(f"{key}: {existing} is not writable; make it writable (chmod u+w) or choose another {key}")
    return problems


def file_problems(paths) -> list[str]:
    """Syntax errors and duplicated keys in the profile files themselves (YAML loaders keep the last key)."""
    problems = []
    for path in paths or ():
        try:
            load_profile(path)
        except ProfileError as error:
            problems.append(str(error))
        except OSError:
            pass  # Snakemake names a missing config file itself
    return problems


def option_problems(config: Mapping[str, Any]) -> list[str]:
    """prepare_options reach `dvc repro`'s shell unquoted (dvc.yaml renders the mapping as flags)."""
    problems = []
    for name, spec in (config.get("datasets") or {}).items():
        for key, value in ((spec or {}).get("prepare_options") or {}).items():
            where = f"datasets.{name}.prepare_options.{key}"
            if not _OPTION_KEY.match(str(key)):
                problems.append(f"{where}: option names are letters, digits, '-' and '_'")
            elif isinstance(value, (dict, list)) or (isinstance(value, str) and not _OPTION_TEXT.match(value)):
                problems.append(f"{where}: {value!r} is not a plain number or word; give a plain value")
    return problems


def number_problems(config: Mapping[str, Any]) -> list[str]:
    return [f"{where}: {value} is not a finite number; give one (e.g. lr: 1.0e-3)"
            for where, value in _walk(config) if isinstance(value, float) and not math.isfinite(value)]


def batch_problems(config: Mapping[str, Any]) -> list[str]:
    """Every cell's batches against the one bound (`mfcbench.train.config.batch_problems`, on the cell's
    dataset image size; one channel, the fewest, as the dataset is not read here): the first problem of
    each cell, one line per table and problem naming the cells. A table the schema refuses is skipped."""
    from ..core.cell import strategy_dir
    from ..train.config import batch_problems as cell_problems
    from .cells import cell_config, table_grid

    problems = []
    for table, spec in (config.get("tables") or {}).items():
        found: dict[str, list[str]] = {}
        try:
            cells = table_grid(spec)
            for arch, strategy, variant in cells:
                first = cell_problems(cell_config(config, table, arch, strategy, variant))[:1]
                for line in first:
                    found.setdefault(line, []).append(f"{arch}/{strategy_dir(strategy, variant)}")
        except (KeyError, TypeError, ValueError, AttributeError):
            continue  # not a valid table: the schema names its problem
        for line, where in found.items():
            problems.append(f"{table} ({'every cell' if len(where) == len(cells) else ', '.join(where)}): {line}")
    return problems


def check_profile(config: Mapping[str, Any]) -> list[str]:
    """Every problem of the profile text as one line each ([] when none)."""
    return (path_problems(config) + location_problems(config) + option_problems(config) + number_problems(config)
            + batch_problems(config))
