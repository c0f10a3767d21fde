"""What a user trips on at the command line: `--version`, one description per model, and a `grid
--predict` that cannot predict exiting non-zero."""

from __future__ import annotations

from pathlib import Path

from mfcbench.cli import grid as grid_cli
from mfcbench.cli import main
from mfcbench.cli import models as models_cli
from mfcbench.models import model_names

ROOT = Path(__file__).resolve().parents[2]


def test_version_prints_the_version(capsys):
    import mfcbench

    for flag in ("--version", "-V"):
        assert main([flag]) == 0
        assert capsys.readouterr().out.strip() == f"mfcbench {mfcbench.__version__}"
    assert main(["--help"]) == 0 and "--version" in capsys.readouterr().out


def test_version_falls_back_to_the_package_without_an_installed_distribution(monkeypatch):
    from importlib import metadata

    import mfcbench
    from mfcbench import cli

    def missing(name):
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(metadata, "version", missing)
    assert cli.version() == mfcbench.__version__


def test_every_model_has_its_own_description(capsys):
    assert models_cli.main([]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line.split(" ", 1)[0] in model_names()]
    descriptions = {line.split(" ", 1)[0]: line.split(" ", 1)[1].strip() for line in lines}
    assert set(descriptions) == set(model_names())
    shared = {d for d in descriptions.values() if list(descriptions.values()).count(d) > 1}
    assert not shared, f"models sharing one description: {sorted(n for n, d in descriptions.items() if d in shared)}"
    assert all(descriptions.values())


def test_grid_predict_without_rates_prints_the_fix_and_fails(tmp_path, capsys):
    config = str(ROOT / "workflow" / "config" / "tiny.yaml")
    assert grid_cli.main(["--config", config, "--predict", "--rates", str(tmp_path / "none.csv")]) == 1
    captured = capsys.readouterr()
    assert "cells" in captured.out  # the summary still prints
    assert "none.csv" in captured.err and "measure scaling" in captured.err, captured.err
