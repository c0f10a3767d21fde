"""SGD at equal compute: a `wu_match` variant compresses SGD's schedule in the pipeline (issue 32)."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from mfcbench.core.workunits import schedule_wu
from mfcbench.pipeline.cells import cell_config, cell_text, expand, schedule_units
from mfcbench.pipeline.schema import ConfigError, load_config, validate_config
from mfcbench.strategies import build_strategy
from mfcbench.train.convergence import plateau_statistic

CONFIGS = Path(__file__).resolve().parents[2] / "workflow" / "config"
READINGS = load_config(CONFIGS / "converged_readings.yaml")


def _profile(**variants):
    config = copy.deepcopy(READINGS)
    spec = config["tables"]["table4"]
    spec["variants"] = {"base": {}, "wu16": {"budget_scale": 4}, **variants}
    spec["variant_strategies"] = {"wu16": ["fmsgd"], **{v: ["sgd"] for v in variants}}
    return config


@pytest.mark.parametrize("target,variant", [("msgd", "base"), ("fmsgd", "base"), ("fmsgd", "wu16")])
def test_matched_sgd_spends_the_matched_cells_wu_within_one_step(target, variant):
    match = target if variant == "base" else f"{target}+{variant}"
    config = _profile(matched={"wu_match": match})
    for arch in ("unet", "mfc_resnet"):
        sgd = cell_config(config, "table4", arch, "sgd", "matched")
        other = cell_config(config, "table4", arch, target, variant)
        wanted = schedule_wu(build_strategy(target, other).phases())
        got = schedule_wu(build_strategy("sgd", sgd).phases())
        assert abs(got - wanted) <= 30 / 2, (arch, float(got), float(wanted))  # half of one SGD step (batch 30)
        assert len(sgd["iterations"]) == 4 and "wu_match" not in sgd
        full = cell_config(config, "table4", arch, "sgd")
        steps = sum(sgd["iterations"])
        assert steps < sum(full["iterations"])
        vals = [{"iteration": i, "val_metric": 1.0} for i in range(1, steps + 1) if i % sgd["val_every"] == 0 or i == steps]
        assert plateau_statistic(vals, steps, False) is not None  # both windows of the plateau test hold one
        assert len(vals) >= min(steps, sum(full["iterations"]) // full["val_every"])
        assert {k: v for k, v in sgd.items() if k not in ("iterations", "val_every", "checkpoint_every")} == \
            {k: v for k, v in full.items() if k not in ("iterations", "val_every", "checkpoint_every")}


def test_the_readings_profile_compresses_sgd_and_traces_it_in_the_folder():
    cells = {c.relpath(): c for c in expand(READINGS, ["table4"])}
    matched = [c for c in cells.values() if c.variant.startswith("wu_")]
    assert {c.strategy for c in matched} == {"sgd"}
    assert any("/sgd+wu_fmsgd/seed0" in rel for rel in cells)
    steps = {c.variant: c.config["iterations"] for c in matched if c.arch == "unet" and c.seed == 0}
    assert steps == {"wu_msgd": [49, 49, 50, 49], "wu_fmsgd": [5, 5, 4, 5], "wu_fmsgd_wu16": [19, 19, 20, 19]}
    assert all("wu_match" not in cell_text(c) for c in matched)


def test_the_torch_free_prices_equal_the_strategies_closed_form():
    for cell in expand(READINGS, ["table4"]):
        if cell.seed == 0:
            assert schedule_units(cell.strategy, cell.config) == schedule_wu(build_strategy(cell.strategy, dict(cell.config)).phases())


def test_wu_match_errors_name_the_key_and_the_fix():
    config = _profile(matched={"wu_match": "msgd"})
    config["tables"]["table4"]["variant_strategies"]["matched"] = ["sgd", "msgd"]
    with pytest.raises(ConfigError, match="compresses SGD's schedule only.*variant_strategies"):
        cell_config(config, "table4", "unet", "msgd", "matched")
    with pytest.raises(ConfigError, match=r"wu_match: msgd\+wu16 names no cell of unet.*valid choices: fmsgd, fmsgd\+wu16"):
        cell_config(_profile(matched={"wu_match": "msgd+wu16"}), "table4", "unet", "sgd", "matched")
    with pytest.raises(ConfigError, match="names no cell"):
        cell_config(_profile(matched={"wu_match": "crops"}), "table4", "unet", "sgd", "matched")


def test_the_schema_takes_wu_match_alone_in_a_variant():
    validate_config(_profile(matched={"wu_match": "fmsgd+wu16"}))
    with pytest.raises(ConfigError, match="variants/matched"):
        validate_config(_profile(matched={"wu_match": "msgd", "lr": 0.1}))
