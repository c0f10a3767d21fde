"""The grid (profile config -> cells), its schema, `snakemake -n`, and gather. Fast: no training."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from mfcbench.cli.gather import main as gather_main
from mfcbench.core.cell import Cell
from mfcbench.pipeline.cells import expand, index, table_size, write_cell_configs
from mfcbench.pipeline.checks import check_cells, unjudgeable_cells
from mfcbench.pipeline.gather import gather
from mfcbench.pipeline.schema import (
    SCHEMA_PATH,
    ConfigError,
    _deref,
    load_config,
    load_schema,
    schema_text,
    validate_config,
)
from mfcbench.pipeline.summary import cell_work_units, format_summary, schedule_summary, summarize

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = ROOT / "workflow" / "config"
PAPER_TABLES = {f"table{n}" for n in (3, 4, 5, 6, 7, 8, 10, 12)}  # trained; Tables 1-2 are an experiment


def raw(name: str) -> dict:
    return yaml.safe_load((CONFIGS / f"{name}.yaml").read_text())


@pytest.mark.parametrize("name", sorted(p.stem for p in CONFIGS.glob("*.yaml")))
def test_profiles_validate_and_expand(name):
    config = load_config(CONFIGS / f"{name}.yaml")
    cells = expand(config)
    assert cells and config["profile"] == name
    assert len({c.relpath() for c in cells}) == len(cells)  # every cell has its own folder
    for cell in cells:
        assert cell.config["image_size"] == table_size(config, cell.table)  # the dataset entry's, or the table's own
        assert cell.config["threads"] == config["threads_per_cell"]


@pytest.mark.parametrize("name", ["default", "paper"])
def test_profiles_cover_the_papers_tables(name):
    config = load_config(CONFIGS / f"{name}.yaml")
    assert set(config["tables"]) == PAPER_TABLES
    t = config["tables"]
    assert {"table1", "table2"} <= set(config["extras"]) and "discrepancy" in config  # Tables 1-2: an experiment
    assert set(t["table4"]["archs"]) == {"unet", "resnet", "mfc_unet", "mfc_resnet"}
    assert set(t["table7"]["archs"]) == {"resnet18", "resnet50", "mfc_resnet18", "mfc_resnet50", "unet5", "mfc_unet5"}
    assert set(t["table8"]["archs"]) == {"espcn", "mfc_espcn", "fno_espcn"}
    assert set(t["table12"]["strategies"]) == {"sgd", "msgd", "fmsgd"}
    assert t["table12"]["variants"]["crops"] == {"augment": "crops"} and "base" in t["table12"]["variants"]


def test_default_profile_is_embedded_and_cheap():
    config = load_config(CONFIGS / "default.yaml")
    assert set(config["datasets"]) <= {"skimage", "fields", "digits"}  # no network
    assert config["gpu"] is False
    for cell in expand(config):
        assert sum(cell.config["iterations"]) <= 400
        assert cell.config["image_size"] <= 32
        assert cell.config["val_size"] <= 64


def test_paper_profile_settings():
    config = load_config(CONFIGS / "paper.yaml")
    by = {(c.table, c.arch, c.strategy, c.seed): c.config for c in expand(config)}
    assert by[("table4", "unet", "sgd", 0)]["iterations"] == [2000] * 4
    assert by[("table4", "unet", "fmsgd", 0)]["iterations"] == [2000, 1000, 500, 250]
    assert by[("table4", "unet", "sgd", 0)]["lr"] == 5e-4 and by[("table5", "espcn", "sgd", 0)]["lr"] == 1e-3
    assert by[("table4", "unet", "sgd", 0)]["image_size"] == 64 and by[("table4", "unet", "sgd", 0)]["val_size"] == 512
    assert by[("table10", "resnet18", "sgd", 0)]["iterations"] == [4000] * 4
    assert len(config["tables"]["table4"]["seeds"]) > 1


def test_merge_order_and_variants():
    config = load_config(CONFIGS / "tiny.yaml")
    config["strategy_overrides"] = {"msgd": {"lr": 0.1, "model": {"dropout": 0.0}}}
    table = config["tables"]["table4"]
    table["overrides"] = {"lr": 0.2}
    table["strategy_overrides"] = {"msgd": {"lr": 0.3}}
    table["variants"] = {"nearest": {"restriction": "nearest"}, "bilinear": {"restriction": "bilinear"}}
    cells = {c.relpath(): c for c in expand(config, ["table4"])}
    assert len(cells) == 2 * 2  # 2 strategies x 2 variants
    msgd = cells["table4/denoise/skimage/resnet/msgd+nearest/seed0"]
    assert msgd.config["lr"] == 0.3 and msgd.config["restriction"] == "nearest"
    assert msgd.config["model"] == {"width": 0.25, "dropout": 0.0}  # dicts merge key by key
    assert cells["table4/denoise/skimage/resnet/sgd+bilinear/seed0"].config["lr"] == 0.2
    assert Cell.from_dir(f"results/tiny/{msgd.relpath()}") == msgd  # the identity, not the config


def test_variant_strategies_limit_a_variant():
    config = load_config(CONFIGS / "tiny.yaml")
    table = config["tables"]["table4"]
    table["variants"] = {"base": {}, "x4": {"budget_scale": 4}}
    table["variant_strategies"] = {"x4": ["msgd"]}
    cells = {c.relpath() for c in expand(config, ["table4"])}
    assert {p.split("/")[4] for p in cells} == {"sgd", "msgd", "msgd+x4"}  # no sgd+x4
    assert check_cells(config) == []
    table["variant_strategies"] = {"x4": ["fmsgd"]}
    assert any("variant_strategies.x4" in p for p in check_cells(config))


def test_converged_profiles_seeds_variants_and_both_budget_readings():
    config = load_config(CONFIGS / "converged.yaml")
    assert all(len(spec["seeds"]) >= 5 for spec in config["tables"].values())
    # the two readings of Full-Multiscale's budget and the doubling test, as a profile declares them (the
    # shipped converged profile runs neither for its 90-minute budget: its header gives the measurement)
    table4 = config["tables"]["table4"]
    table4["variants"] = {"base": {}, "x2": {"budget_scale": 2}, "wu16": {"budget_scale": 4}}
    table4["variant_strategies"] = {"wu16": ["fmsgd"]}
    cells = expand(config)
    wu = {(c.table, c.arch, c.strategy, c.variant): cell_work_units(c) for c in cells if c.seed == 0}
    sgd = wu[("table4", "unet", "sgd", "base")]
    assert sgd / wu[("table4", "unet", "fmsgd", "base")] == pytest.approx(66.8, abs=0.05)  # Table 13's schedule
    assert sgd / wu[("table4", "unet", "fmsgd", "wu16")] == pytest.approx(16.7, abs=0.05)  # Table 4's 28,750
    assert ("table4", "unet", "sgd", "wu16") not in wu  # the reading concerns Full-Multiscale only
    assert {k[2] for k in wu if k[0] == "table4" and k[3] == "x2"} == {"sgd", "msgd", "fmsgd"}
    assert wu[("table4", "unet", "sgd", "x2")] == 2 * sgd
    extended = load_config(CONFIGS / "converged_extended.yaml")
    deep = load_config(CONFIGS / "converged_deep.yaml")  # Tables 7 and 10: split off for the budget
    assert set(extended["tables"]) == {"table6", "table8", "table12"} and set(deep["tables"]) == {"table7", "table10"}
    assert extended["tables"]["table6"]["dataset"] == "lfw" and "fig8" in extended["extras"]
    assert len(extended["ddpm"]["options"]["seeds"]) >= 3
    cells = expand(extended) + expand(deep)
    by = {(c.table, c.arch, c.strategy, c.variant): c.config for c in cells if c.seed == 0}
    assert by[("table10", "resnet18", "sgd", "base")]["budget_scale"] == 2  # Table 7's SGD, doubled
    assert by[("table10", "resnet18", "sgd", "base")]["iterations"] == by[("table7", "resnet18", "sgd", "base")]["iterations"]
    assert by[("table12", "unet", "msgd", "crops")]["augment"] == "crops"


def test_a_cell_from_another_path_is_refused():
    with pytest.raises(ValueError, match="not a cell directory"):
        Cell.from_dir("results/tiny/table4.csv")


def test_table_may_not_change_the_prepared_size():
    config = load_config(CONFIGS / "tiny.yaml")
    config["tables"]["table4"]["overrides"] = {"image_size": 64}
    with pytest.raises(ConfigError, match="image_size 64 differs from the table's size 16"):
        expand(config)


def test_unknown_dataset_is_named():
    config = load_config(CONFIGS / "tiny.yaml")
    config["tables"]["table4"]["dataset"] = "stl10"
    with pytest.raises(ConfigError, match="'stl10' has no entry under datasets"):
        expand(config)


@pytest.mark.parametrize("mutate, expected", [
    (lambda c: c["defaults"].update(lrr=1.0), r"defaults: unknown key\(s\) 'lrr'; allowed keys: .*\blr\b"),
    (lambda c: c["tables"]["table4"]["overrides"].update(iteratons=[1, 1]), r"table4/overrides: unknown key\(s\) 'iteratons'; allowed keys: .*iterations"),
    (lambda c: c["defaults"].update(iterations="many"), r"defaults/iterations: 'many' is not of type 'array'"),
    (lambda c: c["tables"]["table4"].update(strategies=["sgd", "fast"]), r"strategies/1: 'fast' is not allowed; valid choices: crops, fmsgd, msgd, progressive, sgd"),
    (lambda c: c["tables"]["table4"]["overrides"].update(lr="big"), r"table4/overrides/lr"),
    (lambda c: c.update(tabels={}), r"unknown key\(s\) 'tabels'"),
    (lambda c: c["tables"].update(t4=c["tables"]["table4"]), r"tables"),
])
def test_schema_rejects_typos_and_wrong_types(mutate, expected):
    config = raw("tiny")
    config["tables"]["table4"].setdefault("overrides", {})
    mutate(config)
    with pytest.raises(ConfigError, match=expected):
        validate_config(config)


def test_schema_documents_every_key():
    schema = load_schema()

    def walk(node, path):
        for key, sub in node.get("properties", {}).items():
            sub = _deref(sub, schema) if "description" not in sub else sub
            assert "description" in sub, f"{path}{key} has no description"
            if path.startswith("$defs/training/") or path == "":
                assert "default" in sub or key == "tables", f"{path}{key} has no default"
            walk(sub, f"{path}{key}/")

    walk(schema, "")
    walk(schema["$defs"]["training"], "$defs/training/")
    assert schema["additionalProperties"] is False and schema["$defs"]["training"]["additionalProperties"] is False


def test_schema_training_options_are_generated_from_the_one_declaration():
    from mfcbench.strategies import STRATEGIES
    from mfcbench.train import config

    schema = load_schema()
    training = schema["$defs"]["training"]["properties"]
    options = config.all_options()
    assert set(training) == set(options) and set(config.OPTIONS) < set(options)
    assert {"sgd_batch", "phase_batch_growth", "optimizer_state"} <= set(options) - set(config.OPTIONS)
    assert STRATEGIES.get("fmsgd").options["phase_batch_growth"] is options["phase_batch_growth"]
    for key, option in options.items():
        assert training[key]["default"] == option.default and training[key]["description"] == option.help, key
    allowed = set(schema["$defs"]["training_overrides"]["properties"])
    assert allowed == set(options) - set(config.SET_BY_PROFILE)
    assert "none" not in schema["$defs"]["table"]["properties"]["strategies"]["items"]["enum"]
    assert "discrepancy" not in schema["$defs"]["table"]["properties"]["task"]["enum"]
    # every cell config the grid writes is accepted by the runner's own validation
    for cell in expand(load_config(CONFIGS / "paper.yaml")):
        config.validate(dict(cell.config))


def test_one_merge_and_one_config_hash():
    from mfcbench.pipeline import cells, checks, schema, summary
    from mfcbench.train import config

    assert not any(hasattr(m, "config_hash") or hasattr(m, "_merge") for m in (cells, checks, schema, summary))
    assert config.merge({"a": {"b": 1, "c": [1]}}, {"a": {"c": [2]}}) == {"a": {"b": 1, "c": [2]}}


def test_shipped_schema_is_current():
    """mfcbench/pipeline/config.schema.yaml (package data) is generated; an option, strategy, task or catalogue entry added
    without `python -m mfcbench grid --write-schema` fails here (the workflow validates against the file)."""
    assert SCHEMA_PATH.read_text() == schema_text(), \
        f"{SCHEMA_PATH} is out of date: run `python -m mfcbench grid --write-schema`"
    from mfcbench.core import catalogue

    extras = load_schema()["properties"]["extras"]
    assert extras["items"]["enum"] == catalogue.extras() and "fig6" not in extras["default"]


def test_cell_configs_are_written_only_when_they_change(tmp_path):
    config = load_config(CONFIGS / "tiny.yaml")
    written = write_cell_configs(config, tmp_path)
    cells = index(config)
    assert sorted(str(p.relative_to(tmp_path).parent) for p in written) == sorted(cells)
    first = {p: p.stat().st_mtime_ns for p in written}
    assert write_cell_configs(config, tmp_path) == []  # unchanged: nothing written, mtimes kept
    assert {p: p.stat().st_mtime_ns for p in written} == first
    config["tables"]["table4"]["strategy_overrides"] = {"msgd": {"lr": 0.002}}
    changed = write_cell_configs(config, tmp_path)
    assert [p.parent.name for p in changed] == ["seed0"] and changed[0].parent.parent.name == "msgd"
    assert yaml.safe_load(changed[0].read_text())["lr"] == 0.002
    assert all(p.stat().st_mtime_ns == first[p] for p in written if p not in changed)


def test_a_changed_profile_is_checked_before_any_cell_config_is_written(tmp_path):
    config = load_config(CONFIGS / "tiny.yaml")
    config["defaults"]["model"] = {"widht": 0.25}
    with pytest.raises(ConfigError, match=r"1 problem\(s\) in the profile, no job started:\n  table4 "
                                               r"\(every cell\): model: unknown option\(s\) 'widht'"):
        write_cell_configs(config, tmp_path, check=check_cells)
    assert not list(tmp_path.rglob("cell.yaml"))


def test_an_unwritable_results_folder_is_one_line(tmp_path):
    config = load_config(CONFIGS / "tiny.yaml")
    (tmp_path / "results").write_text("a file where the results folder should be")
    with pytest.raises(ConfigError, match=r"results/table4/.*/cell.yaml: cannot write it .*results_dir"):
        write_cell_configs(config, tmp_path / "results")


def test_summary_without_work_units_needs_no_strategy():
    config = load_config(CONFIGS / "tiny.yaml")
    text = format_summary(config, work_units=False)
    assert text.startswith("mfcbench profile 'tiny': 2 cells") and "WU " not in text.splitlines()[1]


def test_grid_cli_checks_the_schema_and_the_cells(capsys, tmp_path):
    from mfcbench.cli.grid import main

    assert main(["--check-schema"]) == 0
    bad = raw("tiny")
    bad["defaults"]["iterations"] = [3, 3, 3]
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(bad))
    assert main(["--config", str(tmp_path / "bad.yaml"), "--check"]) == 1
    assert "table4 (every cell): 'iterations' must be a list of 2" in capsys.readouterr().err
    out = tmp_path / "manifest.json"
    assert main(["--config", str(CONFIGS / "tiny.yaml"), "--manifest", str(out)]) == 0
    manifest = json.loads(out.read_text())
    assert manifest["profile"] == "tiny" and manifest["seeds"] == {"table4": [0]} and "levels" in manifest["scale"]


def test_closed_form_work_units_in_summary():
    pytest.importorskip("mfcbench.core.workunits")
    config = load_config(CONFIGS / "paper.yaml")
    rows = {r["table"]: r for r in summarize(config)}
    assert rows["table4"]["cells"] == 4 * 3 * len(config["tables"]["table4"]["seeds"])
    # Table 4 per arch and seed: sgd 15*N0*I + msgd 37/16*N0*I with N0*I = 4*8000, fmsgd priced on its schedule
    per = rows["table4"]["wu_closed_form"] / (4 * len(config["tables"]["table4"]["seeds"]))
    assert per > 480_000 + 74_000
    assert "closed-form #WU" in format_summary(config)


# ----------------------------------------------------------------------------- snakemake -n
def _snakemake(*args, cwd=ROOT):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "snakemake", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=120, env=env)


@pytest.fixture()
def workdir(tmp_path):
    """A copy of the workflow files only (dry runs must not touch the shared checkout)."""
    for name in ("Snakefile", "dvc.yaml"):
        shutil.copy(ROOT / name, tmp_path / name)
    shutil.copytree(ROOT / "workflow", tmp_path / "workflow")
    shutil.copytree(ROOT / "mfcbench", tmp_path / "mfcbench", ignore=shutil.ignore_patterns("__pycache__"))
    return tmp_path


@pytest.mark.slow
def test_reading_a_profile_imports_no_torch():
    code = ("import sys; from mfcbench.pipeline import cells, schema, summary; "
            "c = schema.load_config('workflow/config/default.yaml'); "
            "cells.index(c); summary.format_summary(c, work_units=False); print('torch' in sys.modules)")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.stdout.strip() == "False", proc.stderr[-2000:]


@pytest.mark.slow
def test_planning_an_unchanged_profile_imports_no_torch(workdir):
    """The second `snakemake -n` (cell configs written by the first) runs with a `torch` that cannot be
    imported first on the path: planning, validating and the summary need none."""
    assert _snakemake("-n", "--configfile", "workflow/config/paper.yaml", cwd=workdir).returncode == 0
    fake = workdir / "no_torch" / "torch"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError('torch imported while planning')\n")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(workdir / "no_torch")}
    proc = subprocess.run([sys.executable, "-m", "snakemake", "-n", "--configfile", "workflow/config/paper.yaml"],
                          cwd=workdir, capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "mfcbench profile 'paper'" in proc.stderr and "Job stats" in proc.stdout + proc.stderr


@pytest.mark.slow
def test_snakemake_dry_run_on_the_paper_grid(workdir):
    proc = _snakemake("-n", "--configfile", "workflow/config/paper.yaml", cwd=workdir)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout + proc.stderr
    n = len(expand(load_config(CONFIGS / "paper.yaml")))
    assert f"mfcbench profile 'paper': {n} cells, closed-form #WU" in out
    assert "train" in out and "report_markdown" in out
    assert "prepared/skimage" not in out and "/skimage/" not in out  # the default profile's tables do not leak


@pytest.mark.slow
def test_snakemake_dry_run_table4_default(workdir):
    proc = _snakemake("-n", "reports/table4.csv", cwd=workdir)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout + proc.stderr
    assert "results/default/table4/denoise/skimage/mfc_resnet/fmsgd/seed0/metrics.json" in out
    assert "results/default/table5/" not in out


@pytest.mark.slow
def test_snakemake_stops_on_a_typo_before_any_job(workdir):
    bad = raw("tiny")
    bad["defaults"]["learning_rate"] = 0.1
    (workdir / "bad.yaml").write_text(yaml.safe_dump(bad))
    proc = _snakemake("-n", "--configfile", "bad.yaml", cwd=workdir)
    assert proc.returncode != 0
    out = proc.stdout + proc.stderr
    assert "'learning_rate'" in out and "allowed keys" in out
    assert "Job stats" not in out


# ----------------------------------------------------------------------------- gather
def _fake_cell(root: Path, rel: str, *, rows=None, curve=True, mse=0.1) -> Path:
    d = root / "results" / "tiny" / rel
    d.mkdir(parents=True)
    coords = Cell.from_dir(d).coordinates()
    metrics = {"status": "ok", "cell": {k: coords[k] for k in ("task", "dataset", "arch", "strategy", "seed")},
               "metrics": {"val_loss": mse, "val_mse": mse}, "headline_metric": "val_mse",
               "wu_closed_form": 57.0, "wu_executed": 57.0, "iterations": 6, "seconds": 1.5, "params": 1234,
               "peak_memory_mb": 10.0, "config": {}, "manifest": {"git_commit": "abc", "device": "cpu",
                                                                   "config_hash": "h", "versions": {"torch": "2"}}}
    if rows is not None:
        metrics["rows"] = rows
    (d / "metrics.json").write_text(json.dumps(metrics))
    if curve:
        (d / "curve.csv").write_text("iteration,level,wu_executed,seconds,train_loss,grad_norm,val_metric\n"
                                     "1,0,10,0.1,0.5,1.0,\n2,0,20,0.2,0.4,0.9,0.3\n")
    return d


def test_gather_one_row_per_cell_with_provenance(tmp_path):
    a = _fake_cell(tmp_path, "table4/denoise/skimage/resnet/sgd/seed0", mse=0.2)
    b = _fake_cell(tmp_path, "table4/denoise/skimage/resnet/msgd+nearest/seed3", mse=0.1)
    out, curves_out = tmp_path / "t4.csv", tmp_path / "c4.csv"
    assert gather_main([str(a), str(b), "--out", str(out), "--curves-out", str(curves_out),
                        "--profile", "tiny", "--table", "table4"]) == 0
    import pandas as pd

    frame = pd.read_csv(out)
    assert list(frame["strategy"]) == ["sgd", "msgd"] and list(frame["variant"]) == ["base", "nearest"]
    assert list(frame["val_mse"]) == [0.2, 0.1] and list(frame["seed"]) == [0, 3]
    for col in ("table", "task", "dataset", "arch", "status", "wu_closed_form", "wu_executed", "iterations",
                "seconds", "params", "device", "git_commit", "config_hash", "profile"):
        assert col in frame.columns, col
    curves = pd.read_csv(curves_out)
    assert len(curves) == 4 and set(curves["strategy"]) == {"sgd", "msgd"}
    assert not list(tmp_path.glob("*.tmp"))  # atomic writes leave no temporaries


def test_gather_fails_clearly(tmp_path, capsys):
    missing = tmp_path / "results/tiny/table4/denoise/skimage/resnet/sgd/seed0"
    missing.mkdir(parents=True)
    assert gather_main([str(missing), "--out", str(tmp_path / "x.csv")]) == 1
    assert "has not finished" in capsys.readouterr().err
    other = _fake_cell(tmp_path, "table3/blur/fields/blur_conv/sgd/seed0")
    with pytest.raises(ValueError, match="table3"):
        gather([other], "tiny", "table4")


def test_schedule_summary_names_each_tables_schedule():
    config = load_config(CONFIGS / "converged.yaml")
    summary = schedule_summary(config)
    assert "table4: sgd/msgd [320, 320, 320, 320], fmsgd [320, 160, 80, 40]" in summary
    assert "table3: sgd/msgd up to [500, 500, 500, 500]" in summary  # early stop: a cap, said so
    assert summary.count("table") == len(config["tables"])


def test_a_typo_in_ddpm_options_is_a_profile_problem():
    """check_cells (run before any job) names a misspelt DDPM option; the shipped default has none."""
    config = load_config(CONFIGS / "default.yaml")
    assert not [p for p in check_cells(config) if "ddpm" in p]
    config.setdefault("ddpm", {}).setdefault("options", {})["itrations"] = 3
    problems = [p for p in check_cells(config) if "ddpm" in p]
    assert problems and "'itrations'" in problems[0] and "valid options" in problems[0]


def test_every_converged_cell_can_be_judged_converged():
    """The plateau test needs a validation in both windows of the last phase; at val_every 20 a
    Full-Multiscale cell whose last phase has 40 steps never could (the converged run of 2026-12-04)."""
    for name in ("converged", "converged_extended", "converged_deep"):
        assert unjudgeable_cells(load_config(CONFIGS / f"{name}.yaml")) == [], name
    config = load_config(CONFIGS / "converged.yaml")
    config["tables"] = {"table4": config["tables"]["table4"]}
    config["tables"]["table4"]["strategy_overrides"]["fmsgd"]["val_every"] = 20
    (warning,) = unjudgeable_cells(config)
    assert "table4: fmsgd's last phase has 40 steps, val_every 20" in warning and "(4 network/strategy)" in warning
