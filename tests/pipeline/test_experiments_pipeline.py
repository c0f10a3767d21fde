"""Table 9 (SAM) and Figure 8 (DDPM) wired into the pipeline: the CLI's CSVs, their layout and claims, the rules."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from mfcbench.cli import experiment
from mfcbench.report import claims as C
from mfcbench.report.layout import build_table, read_results

ROOT = Path(__file__).resolve().parents[2]
REASON = "no SAM checkpoint given"
# test_ddpm.py's micro budget: seconds, not minutes
MICRO = dict(block_out_channels=[8, 16, 16], batch_size=2, fmsgd_iterations=[4, 2, 1], sgd_iterations=2,
             sgd_batch=2, samples=8, inference_steps=2, classifier_epochs=1, train_limit=64)


def _claim(claim_id):
    return next(c for c in C.load_claims() if c["id"] == claim_id)


@pytest.fixture(scope="module")
def table9(tmp_path_factory):
    out = tmp_path_factory.mktemp("sam") / "table9.csv"
    assert experiment.main(["sam", "--out", str(out)]) == 0
    frame, notes = read_results([out])
    assert notes == []
    return frame


# --- Table 9 ------------------------------------------------------------------------------------
def test_sam_cli_without_checkpoint_writes_not_run_rows(table9):
    assert set(zip(table9["data"], table9["method"])) == {("coco", "sam"), ("coco", "mfc_sam"),
                                                          ("ade20k", "sam"), ("ade20k", "mfc_sam")}
    assert set(table9["status"]) == {"NOT_RUN"} and table9["reason"].str.contains(REASON).all()
    assert {"mean_predicted_iou", "mean_stability_score", "paper_predicted_iou"} <= set(table9.columns)
    cells = build_table("table9", table9)
    assert len(cells) == 8 and set(cells["status"]) == {"NOT_RUN"}


def test_table9_layout_shows_the_not_run_reason(table9):
    assert build_table("table9", table9)["reason"].str.contains(REASON).all()


def test_table9_claim_repeats_the_reason_then_compares_mfc_sam_with_sam(table9):
    spec = _claim("table9_sam")
    outcome = C.CHECKS.get(spec["check"])(spec, {"table9": table9})
    assert outcome.verdict == "NOT_RUN" and REASON in outcome.reason
    assert C.CHECKS.get(spec["check"])(spec, {}).verdict == "NOT_RUN"
    ran = pd.DataFrame({"data": ["coco", "coco"], "method": ["sam", "mfc_sam"], "status": "OK", "n_images": 3,
                        "mean_predicted_iou": [0.93, 0.925], "mean_stability_score": [0.97, 0.968]})
    assert C.CHECKS.get(spec["check"])(spec, {"table9": ran}).verdict == "REPRODUCED"
    worse = ran.assign(mean_stability_score=[0.97, 0.95])  # a 0.02 drop > 0.01
    outcome = C.CHECKS.get(spec["check"])(spec, {"table9": worse})
    assert outcome.verdict == "DEVIATES" and "mean_stability_score" in outcome.reason


def test_sam_figure_without_checkpoint_is_an_error(tmp_path, capsys):
    rc = experiment.main(["sam", "--out", str(tmp_path / "t.csv"), "--figure", str(tmp_path / "fig6.png")])
    assert rc == 2 and REASON in capsys.readouterr().err and not (tmp_path / "t.csv").exists()


# --- Figure 8 -----------------------------------------------------------------------------------
def test_ddpm_cli_micro_writes_rows_and_a_titled_figure(tmp_path):
    pytest.importorskip("diffusers")
    from PIL import Image

    out, figure = tmp_path / "results" / "fig8.csv", tmp_path / "reports" / "fig8.png"
    rc = experiment.main(["ddpm", "--seed", "1", "--options", json.dumps(MICRO), "--threads", "1",
                          "--out", str(out), "--figure", str(figure)])
    assert rc == 0
    frame = pd.read_csv(out)
    assert list(frame["run"]) == ["ground_truth", "single_scale", "full_multiscale"]
    assert (frame["seed"] == 1).all() and (frame["status"] == "OK").all() and (frame["dataset"] == "digits").all()
    for column in ("wu_executed", "wu_closed_form", "train_seconds", "mean_confidence", "frechet_distance"):
        assert pd.to_numeric(frame[column]).notna().all(), column
    assert frame.loc[2, "wu_executed"] == frame.loc[2, "wu_closed_form"] > 0  # the micro budget is not equal-work
    with Image.open(figure) as image:
        assert image.format == "PNG" and image.width > 2 * image.height > 0
    assert (tmp_path / "results" / "fig8" / "fig8.json").is_file()  # grids and config beside the CSV
    outcome = C.CHECKS.get("ddpm_quality")(_claim("fig8_ddpm_full_multiscale"), {"fig8": frame})
    assert outcome.verdict in C.VERDICTS and "#WU" in outcome.reproduced


def test_ddpm_cli_rejects_an_unknown_option(tmp_path, capsys):
    rc = experiment.main(["ddpm", "--options", "{stepz: 3}", "--out", str(tmp_path / "f.csv")])
    assert rc == 2 and "stepz" in capsys.readouterr().err


def _fig8(confidence=0.9, frechet=2.0, wu=9400.0, seeds=(0,)):
    rows = []
    for seed in seeds:
        rows += [{"run": "ground_truth", "seed": seed, "status": "OK", "wu_executed": 0.0, "mean_confidence": 0.95,
                  "frechet_distance": 0.3},
                 {"run": "single_scale", "seed": seed, "status": "OK", "wu_executed": 9600.0, "mean_confidence": 0.9,
                  "frechet_distance": 2.0},
                 {"run": "full_multiscale", "seed": seed, "status": "OK", "wu_executed": wu,
                  "mean_confidence": confidence, "frechet_distance": frechet}]
    return {"fig8": pd.DataFrame(rows).assign(dataset="digits")}


@pytest.mark.parametrize("results, verdict", [
    (_fig8(0.88, 2.2, seeds=(0, 1, 2)), "REPRODUCED"),      # within 0.05 and 25%, three seeds
    (_fig8(0.80, 2.2, seeds=(0, 1, 2)), "DEVIATES"),        # 0.10 less confident, three seeds
    (_fig8(0.88, 2.2), "INCONCLUSIVE"),                      # within the tolerance, but one seed
    (_fig8(0.86, 2.8), "INCONCLUSIVE"),                      # FD 1.4x: outside, not decisively, one seed
    (_fig8(0.90, 3.2), "INCONCLUSIVE"),                      # FD 1.6x, but one seed and no convergence record
    (_fig8(0.95, 1.0, wu=9600.0, seeds=(0, 1, 2)), "DEVIATES"),  # better samples, but not less work
    ({}, "NOT_RUN"),
    (_fig8()["fig8"].pipe(lambda f: {"fig8": f[f["run"] != "full_multiscale"]}), "NOT_RUN"),
])
def test_fig8_claim_verdicts(results, verdict):
    outcome = C.CHECKS.get("ddpm_quality")(_claim("fig8_ddpm_full_multiscale"), results)
    assert outcome.verdict == verdict, outcome.reason
    if verdict not in ("NOT_RUN",):
        assert "digits stand in for the paper's MNIST" in outcome.reason


# --- the rules ----------------------------------------------------------------------------------
@pytest.mark.slow
def test_snakemake_dry_run_lists_the_sam_and_ddpm_jobs(tmp_path):
    if shutil.which("snakemake") is None:
        pytest.skip("snakemake is not installed")
    from _cluster import copy_pipeline

    repo = copy_pipeline(tmp_path)  # a dry run writes the cells' cell.yaml: never into the shared checkout
    env = {k: v for k, v in os.environ.items() if not k.startswith("DVC_")}
    (repo / "plan.yaml").write_text("ddpm: {seed_plan: {cap: 6}}\n")  # merged into tiny.yaml's ddpm
    proc = subprocess.run([sys.executable, "-m", "snakemake", "-n", "-p", "--configfile", "workflow/config/tiny.yaml",
                           "plan.yaml", "--config", 'extras=["table9","fig8"]'], cwd=repo,
                          env={**env, "PYTHONPATH": "."},
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    text = proc.stdout + proc.stderr
    assert "experiment sam" in text and "--out results/tiny/table9.csv" in text
    assert "experiment ddpm" in text and "--figure reports/fig8.png" in text
    assert "--seed-cap 6" in text  # the profile's ddpm.seed_plan reaches the job
    assert "report table --name table9" in text
