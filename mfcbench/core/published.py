"""The paper's printed values: the one data file `published.yaml` (beside this module) and its loader.

Published values are for display and verdicts only, never a result: nothing may feed them back into a
reproduced column. They live in `core` (yaml only, no torch) so that every layer that shows them reads
them the same way: the report (`mfcbench.report.published`: printed-number helpers, flattened cells),
the experiments that print them beside their own rows (Table 9) and the commands (Table 13's counts).
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import yaml

PUBLISHED_PATH = Path(__file__).with_name("published.yaml")


@functools.lru_cache(maxsize=None)
def _load(path: str) -> dict[str, Any]:
    with open(path) as handle:
        return yaml.safe_load(handle)


def load_published(path: str | Path | None = None) -> dict[str, Any]:
    """The whole published.yaml: {"tables": {...}, "aliases": {...}}."""
    return _load(str(path or PUBLISHED_PATH))


def published_table(name: str, path: str | Path | None = None) -> dict[str, Any]:
    """One table's entry of published.yaml (title, source, caption, blocks, settings)."""
    tables = load_published(path)["tables"]
    if name not in tables:
        raise ValueError(f"unknown table {name!r}; valid choices: {', '.join(tables)}")
    return tables[name]
