"""Seeds where they decide: the planner on hand-made pair frames, the pool and added cells of the
pipeline, and (slow) a tiny profile whose plan_seeds checkpoint adds a seed inside Snakemake."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from mfcbench.pipeline import seeds
from mfcbench.pipeline.cells import index, seed_pool
from mfcbench.pipeline.schema import ConfigError, load_config, validate_config
from mfcbench.report.seedplan import annotate, cells_to_add, plan, plan_table

CONFIGS = Path(__file__).resolve().parents[2] / "workflow" / "config"
POOL = list(range(10))  # 5 initial seeds, cap 10


def _pairs(rows):
    """pairs.csv rows: (claim, arch, strategy, verdict, seeds_needed)."""
    return pd.DataFrame([{"claim": c, "table": "table4", "arch": a, "strategy": s, "verdict": v, "seeds_needed": n}
                         for c, a, s, v, n in rows])


def _pair(result, arch, strategy):
    return next(p for p in result["pairs"] if (p["arch"], p["strategy"]) == (arch, strategy))


def test_decided_pairs_get_no_seed_and_undecided_ones_what_the_power_calculation_asks():
    frame = _pairs([("q", "unet", "msgd", "REPRODUCED", None), ("q", "unet", "fmsgd", "INCONCLUSIVE", 7),
                    ("q", "resnet", "msgd", "DEVIATES", None), ("q", "unet", "sgd", "REPRODUCED", None)])
    result = plan(frame, "table4", POOL, 5, step=1)
    assert _pair(result, "unet", "msgd")["added"] == [] and "decided (q: REPRODUCED)" in _pair(result, "unet", "msgd")["reason"]
    assert _pair(result, "resnet", "msgd")["added"] == []
    assert _pair(result, "unet", "fmsgd")["added"] == [5, 6]
    assert _pair(result, "unet", "fmsgd")["reason"] == "5 initial + 2 added: needed 7 by the power calculation, cap 10"
    # SGD is the reference of every pair: it runs every seed its arch's pairs received; resnet adds nothing
    assert result["cells"] == {"unet": {"fmsgd": [5, 6], "sgd": [5, 6]}}
    assert cells_to_add(result) == [("unet", "fmsgd", 5), ("unet", "fmsgd", 6), ("unet", "sgd", 5), ("unet", "sgd", 6)]


def test_the_cap_is_respected_and_steps_round_up():
    frame = _pairs([("q", "unet", "msgd", "INCONCLUSIVE", 14), ("q", "unet", "fmsgd", "INCONCLUSIVE", 6),
                    ("q", "resnet", "msgd", "INCONCLUSIVE", 4)])
    result = plan(frame, "table4", POOL, 5, step=5)
    assert _pair(result, "unet", "msgd")["added"] == [5, 6, 7, 8, 9]  # needs 14, cap 10
    assert _pair(result, "unet", "msgd")["reason"].endswith("needed 14 by the power calculation, cap 10; cap reached")
    assert _pair(result, "unet", "fmsgd")["added"] == [5, 6, 7, 8, 9]  # needs 6: one step of 5
    assert _pair(result, "resnet", "msgd")["added"] == [5, 6, 7, 8, 9]  # needs 4 <= 5 but undecided: one more step
    assert len(set(result["cells"]["unet"]["sgd"])) <= 10
    at_cap = plan(frame, "table4", POOL[:5], 5, step=5)  # cap = the initial seeds: nothing can be added
    assert all(p["added"] == [] for p in at_cap["pairs"]) and "cap 5 already reached" in _pair(at_cap, "unet", "msgd")["reason"]
    with pytest.raises(ValueError, match="cap >= 5"):
        plan(frame, "table4", POOL[:4], 5)


def test_the_largest_need_over_claims_and_no_seed_without_a_power_calculation():
    frame = _pairs([("a", "unet", "msgd", "INCONCLUSIVE", 6), ("b", "unet", "msgd", "INCONCLUSIVE", 8),
                    ("a", "resnet", "msgd", "INCONCLUSIVE", None), ("b", "resnet", "msgd", "REPRODUCED", None)])
    result = plan(frame, "table4", POOL, 5)
    assert _pair(result, "unet", "msgd")["added"] == [5, 6, 7]
    assert _pair(result, "resnet", "msgd")["added"] == [] and "would not decide" in _pair(result, "resnet", "msgd")["reason"]
    forced = plan(frame, "table4", POOL, 5, force_needed=6)  # the tests' knob: every pair needs 6
    assert all(p["added"] == [5] and "forced" in p["reason"] for p in forced["pairs"])


def test_plan_table_scores_the_first_round_by_the_claims():
    """A decisive first round (every multiscale cell equal to SGD, no spread) adds nothing; a noisy one
    whose pairs straddle the margin adds seeds."""
    rows = []
    for arch in ("unet", "resnet", "mfc_unet", "mfc_resnet"):
        for strategy, noise in (("sgd", 0.0), ("msgd", 0.3), ("fmsgd", -0.3)):
            for seed in range(5):
                value = 0.01 * (1 + noise * (1 if seed % 2 else -1))
                rows.append({"table": "table4", "task": "denoise", "dataset": "skimage", "arch": arch,
                             "strategy": strategy, "variant": "base", "seed": seed, "status": "ok",
                             "val_mse": value, "converged": True, "work_units": 10.0 if strategy != "sgd" else 100.0})
    noisy = plan_table(pd.DataFrame(rows), "table4", POOL, 5, step=1)
    assert noisy["pairs"] and any(p["added"] for p in noisy["pairs"]), noisy["pairs"]
    quiet = pd.DataFrame(rows).assign(val_mse=0.01)
    assert not any(p["added"] for p in plan_table(quiet, "table4", POOL, 5)["pairs"])


def test_a_reference_pair_seeds_both_its_sides_and_a_pair_into_another_table_is_not_planned():
    """Table 12 pairs a strategy with its own crops variant: both run the added seed, SGD does not; Table
    10's pairs (reference cells in table10, seeds fixed) are left alone."""
    frame = _pairs([("crops", "unet", "fmsgd", "INCONCLUSIVE", 8), ("crops", "unet", "sgd", "INCONCLUSIVE", 6),
                    ("longer", "resnet", "sgd", "INCONCLUSIVE", 9)])
    frame["table"] = ["table12", "table12", "table7"]
    frame["versus"] = ["table12:fmsgd+crops", "table12:sgd+crops", "table10:sgd"]
    result = plan(frame, "table12", POOL[:4], 3)
    assert result["cells"] == {"unet": {"fmsgd": [3], "sgd": [3]}}
    assert [(p["strategy"], p["versus"], p["added"]) for p in result["pairs"]] == [
        ("fmsgd", "table12:fmsgd+crops", [3]), ("sgd", "table12:sgd+crops", [3])]
    assert plan(frame, "table7", POOL[:4], 3)["pairs"] == []
    out = annotate(frame, {"table12": result, "table7": plan(frame, "table7", POOL[:4], 3)})
    assert out["seed_reason"].iloc[2] == "3 initial, none added: its reference cells (table10:sgd) have fixed seeds"


def test_a_plan_naming_a_strategy_the_table_does_not_run_is_an_error():
    with pytest.raises(ConfigError, match="resnet/fmsgd, whole images, which the table does not run"):
        seeds.added_cells(_tiny({"cap": 4}), "table4", {"cells": {"resnet": {"fmsgd, whole images": [2]}}})


def test_a_plan_the_profile_no_longer_builds_is_not_read(tmp_path):
    from mfcbench.report.seedplan import load_plans

    (tmp_path / "table4.seeds.json").write_text(json.dumps({"cap": 4, "pairs": []}))
    assert set(load_plans(tmp_path)) == {"table4"}
    assert load_plans(tmp_path, only=[tmp_path / "table5.seeds.json", tmp_path / "table5.csv"]) == {}
    assert set(load_plans(tmp_path, only=[str(tmp_path / "table4.seeds.json")])) == {"table4"}


def test_annotate_says_the_seeds_each_pair_received():
    frame = _pairs([("q", "unet", "msgd", "INCONCLUSIVE", 7)]).assign(claim="q")
    result = plan(frame, "table4", POOL, 5)
    out = annotate(pd.concat([frame, frame.assign(table="table5")]), {"table4": result})
    assert list(out["seed_reason"]) == [_pair(result, "unet", "msgd")["reason"], "fixed seeds (no seed_plan)"]


def _tiny(seed_plan=None, seeds_=(0, 1)):
    config = load_config(CONFIGS / "tiny.yaml")
    config["tables"]["table4"]["seeds"] = list(seeds_)
    if seed_plan:
        config["tables"]["table4"]["seed_plan"] = seed_plan
    validate_config(config)
    return config


def test_the_pool_and_the_added_cells_of_the_pipeline(tmp_path):
    config = _tiny({"cap": 4})
    spec = config["tables"]["table4"]
    assert seed_pool(spec) == [0, 1, 2, 3] and seed_pool(_tiny()["tables"]["table4"]) == [0, 1]
    assert len(index(config)) == 4 and len(index(config, pool=True)) == 8  # only the initial seeds run by default
    spec["variants"] = {"base": {}, "x2": {"budget_scale": 2}}
    result = {"cap": 4, "initial": [0, 1], "cells": {"resnet": {"msgd": [2], "sgd": [2]}}, "pairs": []}
    cells = seeds.added_cells(config, "table4", result)
    assert sorted(cells) == sorted(f"table4/denoise/skimage/resnet/{s}/seed2" for s in ("msgd", "msgd+x2", "sgd", "sgd+x2"))
    assert all(cell.config == index(config)[rel.replace("seed2", "seed0")].config for rel, cell in cells.items())
    with pytest.raises(ConfigError, match="outside seed_plan.cap"):
        seeds.added_cells(config, "table4", {"cells": {"resnet": {"msgd": [7]}}})
    written, _ = seeds.write_plan(config, tmp_path, "table4", result)
    assert len(written) == 4 and (tmp_path / "table4.seeds.json").is_file()
    assert sorted(seeds.planned_cells(config, tmp_path)) == sorted(cells)  # kept current at parse time
    assert seeds.check_plans(_tiny({"cap": 1})) and not seeds.check_plans(config)


def test_a_replanned_table_keeps_the_seeds_it_added():
    first = {"cap": 4, "initial": [0, 1], "cells": {"resnet": {"msgd": [2, 3], "sgd": [2, 3]}},
             "pairs": [{"arch": "resnet", "strategy": "msgd", "added": [2, 3], "reason": "r"}]}
    again = {"cap": 4, "initial": [0, 1], "cells": {},
             "pairs": [{"arch": "resnet", "strategy": "msgd", "added": [], "reason": "2 initial, none added: decided"}]}
    kept = seeds.keep_previous(again, first)
    assert kept["cells"] == first["cells"] and kept["pairs"][0]["added"] == [2, 3]
    assert "2 kept from an earlier plan" in kept["pairs"][0]["reason"]
    assert seeds.keep_previous(again, {**first, "cap": 6}) == again  # another pool: planned afresh


def test_the_converged_profiles_plan_seeds():
    for name in ("converged", "converged_extended", "converged_deep"):
        config = load_config(CONFIGS / f"{name}.yaml")
        for table, spec in config["tables"].items():
            if any(s != "sgd" for s in spec["strategies"]):
                assert spec.get("seed_plan"), f"{name}.{table} has no seed_plan"
                assert spec["seed_plan"]["cap"] > len(spec["seeds"])
    for name in ("converged", "converged_extended", "converged_deep"):  # issue 19: at least 5 seeds
        assert all(len(s["seeds"]) >= 5 for s in load_config(CONFIGS / f"{name}.yaml")["tables"].values()), name


@pytest.mark.slow
def test_plan_seeds_checkpoint_adds_a_seed_on_a_tiny_profile(tmp_path):
    """2 initial seeds, cap 3, force_needed 3: the checkpoint adds seed 2 to resnet/msgd and its SGD
    reference; the gathered table holds all three seeds of both, the first round's table two; a rerun
    does nothing; pairs.csv says why."""
    from _cluster import commit_all, copy_pipeline

    repo = commit_all(copy_pipeline(tmp_path))
    profile = yaml.safe_load((repo / "workflow/config/tiny.yaml").read_text())
    profile.update(profile="seedplan", extras=[])
    profile["tables"]["table4"].update(seeds=[0, 1], seed_plan={"cap": 3, "force_needed": 3})
    (repo / "seedplan.yaml").write_text(yaml.safe_dump(profile))
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("DVC_")},
           "OMP_NUM_THREADS": "1", "MFCBENCH_OFFLINE": "1", "PYTHONPATH": "."}
    snake = [sys.executable, "-m", "snakemake", "results/seedplan/table4.csv", "--cores", "2", "--configfile", "seedplan.yaml"]
    run = subprocess.run(snake, cwd=repo, capture_output=True, text=True, timeout=400, env=env)
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads((repo / "results/seedplan/table4.seeds.json").read_text())
    assert result["cells"] == {"resnet": {"msgd": [2], "sgd": [2]}}
    table = pd.read_csv(repo / "results/seedplan/table4.csv")
    assert sorted(zip(table["strategy"], table["seed"])) == [(s, k) for s in ("msgd", "sgd") for k in (0, 1, 2)]
    assert sorted(pd.read_csv(repo / "results/seedplan/seedplan/table4.csv")["seed"]) == [0, 0, 1, 1]
    again = subprocess.run(snake + ["-n"], cwd=repo, capture_output=True, text=True, timeout=200, env=env)
    assert again.returncode == 0 and "Nothing to be done" in again.stdout + again.stderr, again.stdout[-2000:]
    claims = [sys.executable, "-m", "mfcbench", "report", "claims", "--results-dir", "results/seedplan",
              "--out", "reports/seedplan/claims.csv"]
    assert subprocess.run(claims, cwd=repo, capture_output=True, text=True, timeout=200, env=env).returncode == 0
    pairs = pd.read_csv(repo / "reports/seedplan/pairs.csv")
    row = pairs[(pairs["table"] == "table4") & (pairs["strategy"] == "msgd")].iloc[0]
    assert row["n"] == 3 and row["seed_reason"].startswith("2 initial + 1 added: needed 3 forced")
