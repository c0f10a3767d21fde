"""A cell: what one training run is, where its folder is, and what that folder holds.

Every layer names a cell through this module, so its identity, its folder and its files are spelled
once (it imports no torch: the workflow, the report side and the figures read it too):

- `Cell`: table, task, dataset, arch, strategy, variant, seed, with its training `config` beside them
  (not part of its identity). `relpath()` is its folder under a profile's results,
  `<table>/<task>/<dataset>/<arch>/<strategy>[+variant]/seed<k>` (`RELPATH`, the workflow's wildcard
  pattern too), and `Cell.from_dir` parses a folder back into a cell. `identity()` is what a cell's
  metrics.json and checkpoint record as `cell` (a cell trained outside a profile has no table or variant).
- The files of a cell folder (`CellFiles`): `metrics.json` (the result, `read_metrics`/`write_metrics`,
  built by `metrics_record`; `failure_record` for a cell that could not run), `checkpoint.pt`,
  `curve.csv` (`CURVE_COLUMNS`, `write_curve`), `cell.yaml` (the pipeline's resolved options) and
  `.lock` (the runner holding it).
"""

from __future__ import annotations

import csv
import io
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from .atomic import write_json, write_text

METRICS_FILE = "metrics.json"
CHECKPOINT_FILE = "checkpoint.pt"
CURVE_FILE = "curve.csv"
CONFIG_FILE = "cell.yaml"
LOCK_FILE = ".lock"

BASE_VARIANT = "base"
VARIANT_SEP = "+"  # a non-base variant lives in "<strategy>+<variant>/"
SEED_PREFIX = "seed"
RELPATH = "{table}/{task}/{dataset}/{arch}/{strategy_dir}/" + SEED_PREFIX + "{seed}"  # also the workflow's pattern
COORDINATES = ("table", "task", "dataset", "arch", "strategy", "variant", "seed")
IDENTITY = ("task", "dataset", "arch", "strategy", "seed")  # the `cell` of metrics.json and of a checkpoint
FAILED = "failed"  # the status of a cell that could not run
CURVE_COLUMNS = ("iteration", "level", "wu_executed", "seconds", "train_seconds", "train_loss", "grad_norm",
                 "val_metric")  # curve.csv: one row per optimizer step


def strategy_dir(strategy: str, variant: str) -> str:
    """A cell's strategy folder: the strategy, with "+<variant>" for a non-base variant."""
    return strategy if variant == BASE_VARIANT else f"{strategy}{VARIANT_SEP}{variant}"


@dataclass(frozen=True, kw_only=True)
class Cell:
    """One training run of a profile's grid (or one trained by hand: no table, the base variant).

    `strategy` is None for a figure's untrained network. `config` is the cell's training config
    (a profile's merged options, or the resolved options once a run resolved them); it is carried
    beside the identity, never compared or hashed."""

    task: str
    dataset: str
    arch: str
    strategy: str | None
    seed: int = 0
    table: str = ""
    variant: str = BASE_VARIANT
    config: Mapping[str, Any] = field(default_factory=dict, compare=False, hash=False, repr=False)

    @property
    def strategy_dir(self) -> str:
        return strategy_dir(self.strategy, self.variant)

    def relpath(self) -> str:
        """`<table>/<task>/<dataset>/<arch>/<strategy>[+variant]/seed<k>` (docs/architecture.md)."""
        return RELPATH.format(table=self.table, task=self.task, dataset=self.dataset, arch=self.arch,
                              strategy_dir=self.strategy_dir, seed=self.seed)

    def coordinates(self) -> dict[str, Any]:
        """The cell's place in the grid, one column each in the gathered tables."""
        return {key: getattr(self, key) for key in COORDINATES}

    def identity(self) -> dict[str, Any]:
        """What metrics.json and the checkpoint record as `cell`: {task, dataset, arch, strategy, seed}."""
        return {key: getattr(self, key) for key in IDENTITY}

    @classmethod
    def from_dir(cls, path: str | os.PathLike) -> Cell:
        """The inverse of `relpath`: the cell of a folder from its last six parts (no config)."""
        parts = Path(path).parts
        seed = parts[-1][len(SEED_PREFIX):] if parts else ""
        if len(parts) < 6 or not parts[-1].startswith(SEED_PREFIX) or not seed.isdigit():
            raise ValueError(f"not a cell directory (.../<table>/<task>/<dataset>/<arch>/<strategy>/seed<k>): {path}")
        table, task, dataset, arch, folder, _ = parts[-6:]
        strategy, _, variant = folder.partition(VARIANT_SEP)
        return cls(table=table, task=task, dataset=dataset, arch=arch, strategy=strategy,
                   variant=variant or BASE_VARIANT, seed=int(seed))


class CellFiles:
    """The files of one cell folder, by role: `metrics`, `checkpoint`, `curve`, `config`, `lock`."""

    def __init__(self, directory: str | os.PathLike):
        self.dir = Path(directory)
        self.metrics, self.checkpoint, self.curve, self.config, self.lock = (
            self.dir / name for name in (METRICS_FILE, CHECKPOINT_FILE, CURVE_FILE, CONFIG_FILE, LOCK_FILE))

    def __repr__(self) -> str:
        return f"CellFiles({str(self.dir)!r})"

    def outputs(self) -> tuple[Path, ...]:
        """What a run writes (a forced rerun deletes them first): checkpoint, metrics, curve."""
        return self.checkpoint, self.metrics, self.curve


def read_metrics(cell_dir: str | os.PathLike) -> Any:
    """The cell's metrics.json as JSON; OSError when it is missing, ValueError when it is not JSON."""
    return json.loads(CellFiles(cell_dir).metrics.read_text())


def try_read_metrics(cell_dir: str | os.PathLike) -> dict | None:
    """The cell's metrics.json, or None when it is missing, unreadable or not a JSON object."""
    try:
        record = read_metrics(cell_dir)
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def write_metrics(cell_dir: str | os.PathLike, record: Mapping[str, Any]) -> Path:
    """Write the cell's metrics.json atomically (sorted keys); returns its path."""
    path = CellFiles(cell_dir).metrics
    write_json(path, record)
    return path


def metrics_record(cell: Cell, *, status: str, headline_metric: str | None, metrics: Mapping[str, Any],
                   manifest: Mapping[str, Any], **fields: Any) -> dict[str, Any]:
    """A metrics.json record: the fields every record has (status, the cell's identity, the headline
    metric, the metrics, the manifest), then the run's own `fields`."""
    return {"status": status, "cell": cell.identity(), "headline_metric": headline_metric,
            "metrics": dict(metrics), **fields, "manifest": dict(manifest)}


def failure_record(cell: Cell, error: BaseException, finished_at: str) -> dict[str, Any]:
    """The metrics.json of a cell that could not run: status "failed" and the error on one line."""
    reason = " ".join(str(error).split()) or type(error).__name__
    return metrics_record(cell, status=FAILED, headline_metric=None, metrics={},
                          manifest={"finished_at": finished_at}, error=f"{type(error).__name__}: {reason}")


def write_curve(cell_dir: str | os.PathLike, rows: list[Mapping[str, Any]]) -> Path:
    """Write the cell's curve.csv atomically (`CURVE_COLUMNS`, one row per optimizer step); returns its path."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CURVE_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    path = CellFiles(cell_dir).curve
    write_text(path, buf.getvalue())
    return path
