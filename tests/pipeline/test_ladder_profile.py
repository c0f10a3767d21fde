"""The ladder's representation (issue 32 item 2): table keys tableN_<rung> and a table's own image_size,
every existing profile unchanged; the shipped ladder profile against its claims; and (slow) a tiny ladder
run end to end: prepared at two sizes, gathered per rung, trend claims and the ladder figure built."""

from __future__ import annotations

import copy
import re
import sys
from pathlib import Path

import pytest
import yaml

from mfcbench.pipeline.cells import cell_config, expand, table_size
from mfcbench.pipeline.schema import ConfigError, load_config, validate_config

ROOT = Path(__file__).resolve().parents[2]
BASE = {"datasets": {"skimage": {"image_size": 16, "prepare_options": {}}},
        "tables": {"table4": {"task": "denoise", "dataset": "skimage", "archs": ["resnet"],
                              "strategies": ["sgd", "msgd"], "seeds": [0]}}}


def with_rung(key: str, **spec) -> dict:
    config = copy.deepcopy(BASE)
    config["tables"][key] = {**config["tables"]["table4"], **spec}
    return config


def test_a_rung_is_a_table_key_with_its_own_size():
    config = with_rung("table4_res32", image_size=32)
    validate_config(config)
    assert table_size(config, "table4") == 16 and table_size(config, "table4_res32") == 32
    cells = {c.table: c for c in expand(config)}
    assert cells["table4_res32"].config["image_size"] == 32 and cells["table4"].config["image_size"] == 16
    assert cells["table4_res32"].relpath().startswith("table4_res32/denoise/skimage/resnet/")


@pytest.mark.parametrize("key", ["table4-res", "table4_", "ladder4", "table4_Res64"])
def test_other_table_keys_are_refused(key):
    with pytest.raises(ConfigError, match=re.escape(key)):
        validate_config(with_rung(key))


def test_an_override_image_size_against_the_tables_is_refused_naming_both():
    config = with_rung("table4_res32", image_size=32, overrides={"image_size": 16})
    with pytest.raises(ConfigError, match="table table4_res32: image_size 16 differs from the table's size 32"):
        cell_config(config, "table4_res32", "resnet", "sgd")


def test_the_ladder_profile_runs_two_rungs_or_more_of_every_axis_it_claims():
    from mfcbench.report.claims import load_claims

    config = load_config(ROOT / "workflow/config/ladder.yaml")
    tables = config["tables"]
    for claim in (c for c in load_claims() if c["check"] == "ladder_trend"):
        base, *rungs = claim["rungs"]
        assert base in tables, claim["id"]  # the shared base rung
        for rung in (r for r in rungs if r in tables):
            assert tables[rung]["task"] == tables[base]["task"], rung
        run = [r for r in claim["rungs"] if r in tables]
        if claim["axis"] != "resolution" or claim["id"].startswith("ladder_table5"):
            assert len(run) >= 2, f"{claim['id']}: only {run} in the ladder profile"
    assert all(len(t["seeds"]) >= 3 for t in tables.values())
    assert table_size(config, "table5_res64") == 64
    sizes = {c.table: c.config["image_size"] for c in expand(config)}
    assert {sizes[t] for t in tables if not t.endswith("res64")} == {32}


TINY_LADDER = """
profile: tinyladder
device: cpu
threads_per_cell: 1
extras: [ladder]
datasets:
  skimage: {image_size: 16, prepare_options: {limit-train: 32, limit-val: 8}}
defaults: {levels: 2, batch_size: 2, iterations: [3, 3], lr: 1.0e-3, val_size: 8, val_every: 3, checkpoint_every: 3,
           model: {width: 0.25}}
tables:
  table4: {task: denoise, dataset: skimage, archs: [resnet], strategies: [sgd, msgd], seeds: [0, 1]}
  table4_w05: {task: denoise, dataset: skimage, archs: [resnet], strategies: [sgd, msgd], seeds: [0, 1],
               overrides: {model: {width: 0.5}}}
  table4_b2: {task: denoise, dataset: skimage, archs: [resnet], strategies: [sgd, msgd], seeds: [0, 1],
              overrides: {budget_scale: 2}}
  table4_res32: {task: denoise, dataset: skimage, image_size: 32, archs: [resnet], strategies: [sgd, msgd],
                 seeds: [0, 1]}
"""


@pytest.mark.slow
def test_a_tiny_ladder_runs_end_to_end(tmp_path):
    import pandas as pd
    from _cluster import commit_all, copy_pipeline

    sys.path.insert(0, str(Path(__file__).parent))
    from test_pipeline import _require_tools, _run

    _require_tools()
    repo = commit_all(copy_pipeline(tmp_path))
    (repo / "tinyladder.yaml").write_text(TINY_LADDER)
    _run([sys.executable, "-m", "snakemake", "--cores", "2", "--configfile", "tinyladder.yaml"], repo, timeout=600)
    assert (repo / "data/prepared/skimage/16/checksum.txt").is_file()
    assert (repo / "data/prepared/skimage/32/checksum.txt").is_file()
    rungs = pd.read_csv(repo / "results/tinyladder/table4_res32.csv")
    assert len(rungs) == 4 and set(rungs["status"]) == {"ok"}
    claims = pd.read_csv(repo / "reports/claims.csv").set_index("id")
    for axis in ("width", "budget"):  # two rungs each: fitted (2 seeds: too few to decide)
        assert claims.loc[f"ladder_table4_{axis}", "verdict"] == "INCONCLUSIVE", claims.loc[f"ladder_table4_{axis}"]
    # the claim's resolution rungs are table4_res64 and table4_res128: named, not run
    assert claims.loc["ladder_table4_resolution", "verdict"] == "NOT_RUN"
    assert "table4_res64" in claims.loc["ladder_table4_resolution", "reason"]
    figure = pd.read_csv(repo / "reports/ladder.csv")
    assert set(figure["table"]) == {"table4", "table4_w05", "table4_b2"} and (repo / "reports/ladder.png").is_file()
    assert "ladder_table4_width" in (repo / "reports/REPORT.md").read_text()
    assert yaml.safe_load((repo / "results/tinyladder/table4_res32/denoise/skimage/resnet/sgd/seed0/cell.yaml")
                          .read_text())["image_size"] == 32
