"""`python -m mfcbench gpu-check`: every step wrapped and recorded, the whole check end to end on the CPU."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mfcbench.cli import gpu_check

ROOT = Path(__file__).resolve().parents[2]


def fake_steps(monkeypatch, **steps):
    monkeypatch.setattr(gpu_check, "STEPS", steps)


def test_a_failing_step_is_recorded_and_the_later_steps_still_run(tmp_path, monkeypatch):
    seen = []

    def broken(check):
        seen.append("broken")
        raise RuntimeError("CUDA out of memory")

    def later(check):
        seen.append("later")
        # the failure was already written when this step started
        record = json.loads((check.out / "gpu_check.json").read_text())
        return {"saw": [s["status"] for s in record["steps"]], "running": record["running"]}

    fake_steps(monkeypatch, environment=lambda check: {"device_description": "fake"}, scaling=broken, later=later)
    assert gpu_check.main(["--device", "cpu", "--out", str(tmp_path)]) == 1
    record = json.loads((tmp_path / "gpu_check.json").read_text())
    steps = {s["name"]: s for s in record["steps"]}
    assert seen == ["broken", "later"]
    assert steps["scaling"]["status"] == "failed" and "RuntimeError: CUDA out of memory" in steps["scaling"]["error"]
    assert steps["later"]["status"] == "ok" and steps["later"]["saw"] == ["ok", "failed"]
    assert steps["later"]["running"] == "later" and record["running"] is None  # a kill would name the step
    assert record["device"] == "cpu" and record["seconds"] >= 0


def test_without_the_device_every_later_step_says_why(tmp_path, monkeypatch):
    def no_device(check):
        raise RuntimeError("no CUDA device")

    fake_steps(monkeypatch, environment=no_device, scaling=lambda check: pytest.fail("must not run"))
    assert gpu_check.main(["--out", str(tmp_path)]) == 1
    steps = json.loads((tmp_path / "gpu_check.json").read_text())["steps"]
    assert [s["status"] for s in steps] == ["failed", "skipped: cuda unavailable"]


def test_no_step_starts_after_the_budget_and_skip_is_honoured(tmp_path, monkeypatch):
    fake_steps(monkeypatch, environment=lambda check: time.sleep(0.3), bench=lambda check: {}, cell=lambda check: {})
    assert gpu_check.main(["--device", "cpu", "--out", str(tmp_path), "--budget-s", "0.1", "--skip", "cell"]) == 0
    steps = json.loads((tmp_path / "gpu_check.json").read_text())["steps"]
    assert [s["status"] for s in steps] == ["ok", "skipped: time budget", "skipped: --skip"]
    assert gpu_check.main(["--out", str(tmp_path), "--skip", "nonsense"]) == 2


def test_the_operator_page_names_the_one_device_command_and_the_help_what_the_command_does():
    assert 'python3 -m mfcbench gpu-check --device cuda --out "$OUT"' in (ROOT / "docs" / "gpu.md").read_text()
    help_text = gpu_check.build_parser().format_help()
    assert "docs/gpu.md" in help_text and "pip download" not in help_text and "$OUT" not in help_text
    assert all(name in help_text for name in gpu_check.STEPS)
    assert list(gpu_check.STEPS)[:2] == ["environment", "paper-scale"]  # the calibration comes first


# matplotlib stays: torchmetrics (the SSIM of super-resolution) imports it whenever it is installed
BLOCKED = ("pandas", "fvcore", "jsonschema", "seaborn", "statsmodels")
RUNNER = f"""
import sys
for name in {BLOCKED!r}:
    sys.modules[name] = None  # importing it raises ImportError, as on a machine without it
from mfcbench.cli import gpu_check
rc = gpu_check.main(sys.argv[1:])
drawing = sorted(m for m in sys.modules if m.startswith(("mfcbench.figures", "mfcbench.report")))
sys.exit(f"gpu-check imported {{drawing}}" if drawing else rc)
"""


@pytest.mark.slow
def test_gpu_check_runs_end_to_end_on_the_cpu_without_optional_packages(tmp_path):
    out = tmp_path / "gpu"
    result = subprocess.run([sys.executable, "-c", RUNNER, "--device", "cpu", "--quick", "--out", str(out)],
                            cwd=ROOT, capture_output=True, text=True, timeout=600)
    record = json.loads((out / "gpu_check.json").read_text())
    status = {s["name"]: s["status"] for s in record["steps"]}
    assert status.pop("tests") == "skipped: GPU tests need --device cuda"
    assert status.pop("cell") == "failed", result.stderr  # the runner validates with jsonschema (blocked here)
    assert "jsonschema" in next(s["error"] for s in record["steps"] if s["name"] == "cell")
    assert set(status.values()) == {"ok"}, result.stderr
    assert result.returncode == 1
    rows = list(csv.DictReader((out / "scaling_cpu.csv").open()))
    steps = [r for r in rows if r["kind"] == "step"]
    assert {r["size"] for r in steps} == {"16", "8"} and {r["arch"] for r in steps} == {"resnet", "espcn"}
    assert {(r["strategy"], r["level"]) for r in steps} == {("sgd", "0"), ("msgd", "0"), ("fmsgd", "0"), ("fmsgd", "1")}
    assert all(float(r["step_seconds"]) > 0 for r in steps)
    for name in ("table15_cpu.csv", "fig7_cpu.csv", "bench_cpu.csv"):
        assert (out / name).stat().st_size > 0
    assert record["environment"]["packages"]["torchmetrics"] is True
