"""A request to train one cell: the cell with its config resolved once (`resolve_cell`), the config
file it came from (`ConfigFile`: the runner writes no result once that file says otherwise,
`StaleCellError`) and how the run goes (`RunOptions`: device, force, resume policy, progress, log;
nothing of it enters the result). The runner (`mfcbench.train.runner.train_cell`) and the `train`
command build these; `run_cell` does it from keywords.
"""

from __future__ import annotations

import dataclasses
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

from ..core.cell import Cell
from . import config as config_mod


class StaleCellError(RuntimeError):
    """The cell's config file changed while this run trained: its result belongs to no config on disk."""


def to_stderr(message: str) -> None:
    print(f"[mfcbench] {message}", file=sys.stderr)


@dataclass(frozen=True)
class RunOptions:
    """How a cell runs, never what it trains: nothing here enters its result."""

    device: str = "auto"  # auto, cpu or cuda
    force: bool = False  # rerun a finished cell from scratch
    on_stale: str = "error"  # a checkpoint of another config: "error", or "restart" (the pipeline)
    stop_after: int | None = None  # raise SimulatedCrash after this many steps (resume tests)
    progress: bool | None = None  # a progress bar; None: when stderr is a terminal
    log: Callable[[str], None] = to_stderr


@dataclass(frozen=True)
class ConfigFile:
    """The config file a cell was resolved from, and its text then. The result is written only while the
    file still resolves to the run's config (a leftover job of an interrupted pipeline finishing after
    the profile changed writes nothing); an unchanged text is not resolved again."""

    path: str | Path
    overrides: Any = ()
    text: str | None = None

    @classmethod
    def of(cls, config: Any, overrides: Any = ()) -> ConfigFile | None:
        """The file behind `config` (None for a mapping), read before it is resolved."""
        if not isinstance(config, (str, Path)):
            return None
        return cls(config, overrides, _text(config))

    def check(self, config_hash: str) -> None:
        """Raise StaleCellError when the file now resolves to another config than `config_hash`'s."""
        if not Path(self.path).is_file() or (self.text is not None and _text(self.path) == self.text):
            return
        try:
            now_hash = config_mod.config_hash(config_mod.resolve(self.path, self.overrides))
        except ValueError:
            now_hash = "invalid"
        if now_hash != config_hash:
            raise StaleCellError(f"{self.path} changed while this run trained; its result is not written "
                                 f"(rerun the pipeline to train the cell under the new config)")


def _text(path: str | Path) -> str | None:
    try:
        return Path(path).read_text()
    except (OSError, UnicodeDecodeError):
        return None


def resolve_cell(cell: Cell, config: Mapping[str, Any] | str | Path | None,
                 overrides: Any = ()) -> tuple[Cell, ConfigFile | None]:
    """`cell` with its config resolved (defaults <- `config` <- `overrides`, validated: the one
    resolution of a run), and the config file to watch while it trains (None for a mapping)."""
    source = ConfigFile.of(config, overrides)
    return dataclasses.replace(cell, config=config_mod.resolve(config, overrides)), source
