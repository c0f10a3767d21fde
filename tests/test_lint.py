"""The linter CI runs: `ruff check mfcbench tests` with pyproject.toml's [tool.ruff] settings finds nothing."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_ruff_finds_nothing():
    ruff = shutil.which("ruff")
    if ruff is None:
        pytest.skip("ruff is not installed (pip install -e '.[test]')")
    proc = subprocess.run([ruff, "check", "--output-format", "concise", "mfcbench", "tests"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"ruff check mfcbench tests:\n{proc.stdout[-4000:]}{proc.stderr[-2000:]}"


def test_ruff_config_is_the_projects():
    if sys.version_info < (3, 11):
        pytest.skip("tomllib needs Python 3.11")
    import tomllib

    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["ruff"]
    assert config["line-length"] == 120 and {"E9", "F", "I", "B", "C90"} <= set(config["lint"]["select"])
    assert config["lint"]["mccabe"]["max-complexity"] <= 14, "the complexity cap only goes down"
