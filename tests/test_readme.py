"""README.md names every subcommand of `python -m mfcbench` and every output id of the catalogue."""

from __future__ import annotations

import re
from pathlib import Path

from mfcbench.cli import COMMANDS
from mfcbench.core import catalogue

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()


def _named(word: str) -> bool:
    """`word` in backticks, or after `mfcbench ` (as in `python -m mfcbench grid --config ...`)."""
    return f"`{word}`" in README or re.search(rf"mfcbench {re.escape(word)}\b", README) is not None


def test_readme_names_every_command():
    missing = [name for name in COMMANDS if not _named(name)]
    assert not missing, f"README.md does not name the command(s) {', '.join(missing)} (section 'Command line')"


def test_readme_names_every_output_id():
    missing = [name for name in catalogue.CATALOGUE if not re.search(rf"\b{re.escape(name)}\b", README)]
    assert not missing, f"README.md does not name the output(s) {', '.join(missing)} (section 'Where outputs land')"
