"""The README's "Install" section agrees with pyproject.toml: the Python version, one row per extra with
its disk, the extras it names exist, and the command for a CPU-only torch matches the pins.
(tests/test_wheel.py installs the wheel with the `lib` extra for real; CI installs `all`.)"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
EXTRAS = PROJECT["optional-dependencies"]
JOBS = ("lib", "harness", "paper", "all")


def install_section() -> str:
    match = re.search(r"^## Install\n(.*?)(?=^## )", README, flags=re.M | re.S)
    assert match, "README.md has no '## Install' section"
    return match.group(1)


def test_the_first_code_block_is_the_ci_install_and_the_tests():
    first = re.search(r"```bash\n(.*?)```", README, flags=re.S).group(1).splitlines()
    assert first[0].startswith('pip install -e ".[all]" && snakemake --cores all')
    assert first[1].startswith("pytest")


def test_the_python_version_is_pyprojects():
    low = re.fullmatch(r">=(\d+\.\d+)", PROJECT["requires-python"]).group(1)
    assert f"Python {low} or newer" in install_section()


def test_each_job_has_a_row_with_its_extra_and_its_disk():
    rows = [line for line in install_section().splitlines() if line.startswith("| ")]
    for extra in JOBS:
        row = next((r for r in rows if f'pip install -e ".[{extra}]"' in r), None)
        assert row, f"README.md 'Install' has no row installing the {extra!r} extra"
        assert re.search(r"\d+(\.\d+)? GB", row), f"the {extra!r} row states no disk size: {row}"


def test_every_extra_the_readme_names_exists():
    named = set()
    for group in re.findall(r"(?:\.|mfcbench)\[([\w,]+)\]", README):
        named |= set(group.split(","))
    assert named, "README.md names no extra"
    unknown = sorted(named - set(EXTRAS))
    assert not unknown, f"README.md names extras pyproject.toml does not define: {unknown}"


def test_the_cpu_torch_command_installs_the_pinned_versions():
    pins = {name: version for name, version in (re.fullmatch(r"([\w-]+)==([\w.*]+)", r).groups()
                                                  for r in EXTRAS["lib"] if re.fullmatch(r"([\w-]+)==([\w.*]+)", r))}
    command = next(line for line in install_section().splitlines() if "download.pytorch.org/whl/cpu" in line)
    assert f"torch=={pins['torch']}" in command and f"torchvision=={pins['torchvision']}" in command, command
