"""The readings profiles (issue 32, items 1 and 3a): each converged quality table (Tables 4-8) runs its base
cells beside the open readings (wu16, nearest) and SGD at equal compute (wu_match), with the base cells' training
configs equal to the converged profile's, so a reading's verdict compares the same cells; and the verdict page
names these profiles for the readings' claims, while the converged profiles keep deciding the base claims."""

from __future__ import annotations

from pathlib import Path

import pytest

from mfcbench.core.workunits import schedule_wu
from mfcbench.pipeline.cells import cell_config, expand
from mfcbench.pipeline.schema import load_config
from mfcbench.report.claims import load_claims
from mfcbench.report.deciders import deciding_profiles, shipped_profiles
from mfcbench.strategies import build_strategy

CONFIGS = Path(__file__).resolve().parents[2] / "workflow" / "config"
# readings profile -> its table -> the converged profile whose settings it copies
SOURCES = {
    "converged_readings": {"table4": "converged"},
    "converged_readings_extended": {"table5": "converged", "table6": "converged_extended", "table8": "converged_extended"},
    "converged_readings_deep": {"table7": "converged_deep"},
}
DENOISING = {"table4", "table6", "table7"}  # where the coarse data are noisy, so `nearest` is a reading
MATCHED = {"wu_msgd": "msgd", "wu_fmsgd": "fmsgd", "wu_fmsgd_wu16": "fmsgd+wu16"}


@pytest.mark.parametrize("profile", sorted(SOURCES))
def test_the_base_cells_are_the_converged_profiles_cells(profile):
    mine = load_config(CONFIGS / f"{profile}.yaml")
    assert set(mine["tables"]) == set(SOURCES[profile])
    for table, source in SOURCES[profile].items():
        theirs = load_config(CONFIGS / f"{source}.yaml")
        assert mine["tables"][table]["task"] == theirs["tables"][table]["task"]
        assert mine["tables"][table]["dataset"] == theirs["tables"][table]["dataset"]
        assert mine["tables"][table]["archs"] == theirs["tables"][table]["archs"]
        for arch in mine["tables"][table]["archs"]:
            for strategy in ("sgd", "msgd", "fmsgd"):
                assert cell_config(mine, table, arch, strategy) == cell_config(theirs, table, arch, strategy), \
                    f"{profile}.{table}: {arch}/{strategy} differs from {source}.yaml's"


@pytest.mark.parametrize("profile", ["converged_readings_extended", "converged_readings_deep"])
def test_every_table_runs_its_readings_and_matched_sgd_at_three_seeds(profile):
    config = load_config(CONFIGS / f"{profile}.yaml")
    assert config["extras"] == []
    for table, spec in config["tables"].items():
        assert spec["seeds"] == [0, 1, 2] and spec["seed_plan"] == {"cap": 4, "step": 1}, table
        wanted = {"wu16": ["fmsgd"], **{v: ["sgd"] for v in MATCHED}}
        if table in DENOISING:
            wanted["nearest"] = ["msgd", "fmsgd"]
        assert spec["variant_strategies"] == wanted, table
        assert spec["variants"]["base"] == {} and spec["variants"]["wu16"] == {"budget_scale": 4}
        assert {v: spec["variants"][v] for v in MATCHED} == {v: {"wu_match": m} for v, m in MATCHED.items()}
        cells = [c for c in expand(config, [table]) if c.seed == 0]
        assert {(c.strategy, c.variant) for c in cells} >= {("sgd", v) for v in MATCHED} | {("fmsgd", "wu16")}


def test_the_readings_claims_of_tables_4_to_8_are_decided_by_a_readings_profile():
    profiles = shipped_profiles(CONFIGS)
    owner = {table: profile for profile, tables in SOURCES.items() for table in tables}
    seen = set()
    for spec in load_claims():
        table = spec.get("input")
        if table not in owner:
            continue
        deciders = deciding_profiles(spec, profiles)
        if spec.get("variant") or spec.get("reference_variant"):
            assert deciders and deciders[0] == owner[table], (spec["id"], deciders)
            seen.add(table)
        elif deciders:  # a base claim: decided where it was (the converged profile at 5 seeds), never here
            assert not deciders[0].startswith("converged_readings"), (spec["id"], deciders)
    assert seen == set(owner)


@pytest.mark.parametrize("profile", ["converged_readings_extended", "converged_readings_deep"])
def test_the_matched_sgd_spends_its_cells_wu_within_one_step(profile):
    config = load_config(CONFIGS / f"{profile}.yaml")
    cells = {(c.table, c.arch, c.strategy, c.variant): c for c in expand(config) if c.seed == 0}
    for (table, arch, _, variant), cell in cells.items():
        if variant not in MATCHED:
            continue
        target, _, target_variant = MATCHED[variant].partition("+")
        other = cells[(table, arch, target, target_variant or "base")]
        wanted = schedule_wu(build_strategy(target, dict(other.config)).phases())
        got = schedule_wu(build_strategy("sgd", dict(cell.config)).phases())
        batch = got / sum(cell.config["iterations"])  # SGD's #WU a step
        assert abs(got - wanted) <= batch / 2, (table, arch, variant, float(got), float(wanted))
