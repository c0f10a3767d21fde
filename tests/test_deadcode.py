"""No dead code in mfcbench: vulture finds no unused function, class, method or variable.

A name used only dynamically (a framework hook, a name the workflow's .smk files call, the lazy public
face) goes in tests/vulture_whitelist.py with the reason; registered builders and claim checks are
used through their decorators. Anything else vulture reports is deleted, or the test that needs it
says why it stays."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
WHITELIST = ROOT / "tests" / "vulture_whitelist.py"
MIN_CONFIDENCE = 60  # vulture's floor for unused functions, classes and attributes (100: unreachable code)
IGNORE_DECORATORS = "@*.register,@check"  # registries' builders, the report's claim checks

pytest.importorskip("vulture", reason="vulture is not installed (pip install -e '.[test]')")


def vulture(package: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "vulture", str(package), str(WHITELIST),
                           "--min-confidence", str(MIN_CONFIDENCE), "--ignore-decorators", IGNORE_DECORATORS],
                          capture_output=True, text=True, timeout=120, cwd=ROOT)


def test_vulture_finds_no_dead_code():
    proc = vulture(ROOT / "mfcbench")
    assert proc.returncode == 0, (f"vulture reports dead code: delete it, or list a name used dynamically in "
                                  f"{WHITELIST.relative_to(ROOT)} with its reason:\n{proc.stdout}{proc.stderr}")


def test_the_scan_catches_a_planted_dead_function(tmp_path):
    copy = tmp_path / "mfcbench"
    shutil.copytree(ROOT / "mfcbench", copy, ignore=shutil.ignore_patterns("__pycache__", "*.yaml", "*.json"))
    target = copy / "core" / "workunits.py"
    target.write_text(target.read_text() + "\n\ndef never_called_probe(x):\n    return x + 1\n")
    proc = vulture(copy)
    assert proc.returncode != 0 and "never_called_probe" in proc.stdout, proc.stdout
