"""`python -m mfcbench gpu-check`: the whole GPU check in one command, every step recorded as it ends.

    python -m mfcbench gpu-check --device cuda --out reports/gpu

`--budget-s` caps it (default 420 s): no step starts after it, and the scaling rows stop. It writes into
--out (default reports/gpu):
- gpu_check.json: every step's name, status ("ok", "failed", "skipped: ..."), seconds, error and the
  files it wrote, plus the environment; rewritten when a step starts (`running` names it) and when it
  ends, so a later failure or a kill leaves every earlier result in place
- scaling_<device>.csv: paper-scale per-step timing (the cost model's GPU rates: `python -m mfcbench
  measure predict --config workflow/config/paper.yaml --rates scaling_cuda.csv`): SGD, Multiscale-SGD and
  each Full-Multiscale level of the Table 4 and Table 5 networks with the paper profile's batches at
  its 64 px, then, while the budget lasts, the resolution-scaling sizes 32, 128, 256 (the file is
  rewritten after each network and size)
- table15_<device>.csv, fig7_<device>.csv, bench_<device>.csv: Table 15, Figure 7, the benchmark
- gpu_tests.log: `pytest -m gpu` (CUDA only)
Steps, in order (the most useful first): environment, paper-scale, cell (a tiny cell through the
runner), tests, table15, fig7, bench, scaling-sweep. A step that fails is recorded and the next one
runs; the exit code is 0 when every step that ran is ok, else 1.

`--device cpu --quick` runs the same steps on the CPU at tiny sizes (the test suite does). The
steps import only torch, numpy, PyYAML and this package (super-resolution's SSIM: torchmetrics): no
pandas or fvcore; `cell` (and the benchmark's trained comparison) also need jsonschema, and `tests`
pytest; where one is missing, that step says so and the others run. Running it on a device machine
without network access (the exact command line, the packages to carry): docs/gpu.md.
"""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

from ..core.atomic import write_json
from ._args import positive_float

ROOT = Path(__file__).resolve().parent.parent.parent
PAPER_PROFILE = ROOT / "workflow" / "config" / "paper.yaml"
PAPER_TABLES = ("table4", "table5")
SWEEP_SIZES = (32, 128, 256)
# --quick: the same steps at toy scale (2 levels, N0 = 1, an eighth of the channels, 16 px)
QUICK = {"archs": ("resnet", "espcn"), "size": 16,
         "overrides": {"levels": 2, "batch_size": 1, "iterations": [2, 2], "model": {"width": 0.125}}}
OPTIONAL_PACKAGES = ("yaml", "numpy", "jsonschema", "pytest", "torchmetrics", "pandas", "matplotlib", "fvcore")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m mfcbench gpu-check", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda", choices=("cuda", "cpu"), help="device to check (default cuda)")
    parser.add_argument("--out", "--reports", dest="out", default="reports/gpu",
                        help="folder for gpu_check.json and the CSVs (default reports/gpu)")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke test of every step")
    parser.add_argument("--budget-s", type=positive_float, default=420.0,
                        help="no step starts after this many seconds; the scaling rows stop too (default 420)")
    parser.add_argument("--skip", default="", help=f"comma-separated steps to skip: {', '.join(STEP_NAMES)}")
    parser.add_argument("--no-tests", action="store_true", help="skip `pytest -m gpu` (same as --skip tests)")
    return parser


class StepRunner:
    """Runs steps, each wrapped: its status, seconds, error and outputs go to gpu_check.json at once."""

    def __init__(self, out: Path, device: str, quick: bool, budget_s: float, argv: list[str]):
        self.out, self.device, self.quick = out, device, quick
        self.started = time.monotonic()
        self.deadline = self.started + budget_s
        self.record: dict[str, Any] = {"command": "python -m mfcbench gpu-check " + " ".join(argv), "device": device,
                                       "quick": quick, "budget_s": budget_s, "started_at": _now(), "running": None,
                                       "steps": []}
        self.scaling: list[dict] = []  # rows of scaling_<device>.csv so far
        self.out.mkdir(parents=True, exist_ok=True)

    def path(self, stem: str, suffix: str = ".csv") -> Path:
        return self.out / f"{stem}_{self.device}{suffix}"

    def run(self, name: str, step: Callable[["StepRunner"], dict | None], skip: str = "") -> dict[str, Any]:
        if not skip and time.monotonic() > self.deadline:
            skip = "skipped: time budget"
        entry: dict[str, Any] = {"name": name, "status": skip or "ok", "seconds": 0.0, "error": ""}
        if not skip:
            print(f"[gpu-check] {name} ...", file=sys.stderr, flush=True)
            self.record["running"] = name  # a killed run names the step it was in
            self.save()
            started = time.perf_counter()
            try:
                entry.update(step(self) or {})
            except Exception as error:  # noqa: BLE001 - recorded; the next step still runs
                entry.update(status="failed", error=f"{type(error).__name__}: {error}"[:2000])
            entry["seconds"] = round(time.perf_counter() - started, 3)
        print(f"[gpu-check] {name}: {entry['status']} ({entry['seconds']:.1f} s) {entry['error']}".rstrip(),
              file=sys.stderr, flush=True)
        self.record["steps"].append(entry)
        self.record["running"] = None
        self.save()
        return entry

    def save(self) -> None:
        self.record["finished_at"] = _now()
        self.record["seconds"] = round(time.monotonic() - self.started, 3)
        write_json(self.out / "gpu_check.json", self.record)


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


# ---------------------------------------------------------------------------------------------
# steps: each imports what it needs, so a missing package fails that step alone
def step_environment(runner: StepRunner) -> dict:
    import torch

    from ..measure.timing import device_available, environment

    env: dict[str, Any] = {**environment(runner.device), "python": sys.version.split()[0],
                           "packages": {name: importlib.util.find_spec(name) is not None for name in OPTIONAL_PACKAGES}}
    if runner.device == "cuda" and torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        env.update(gpu=props.name, gpu_memory_gib=round(props.total_memory / 2**30, 1),
                   multiprocessors=props.multi_processor_count, capability=f"{props.major}.{props.minor}",
                   cudnn=str(torch.backends.cudnn.version()))
    runner.record["environment"] = env
    if not device_available(runner.device):
        raise RuntimeError("no CUDA device: torch.cuda.is_available() is False")
    return {"device_description": env["device_description"]}


def paper_settings(quick: bool) -> list:
    """Tables 4 and 5 of the paper profile, every network and strategy, with its batches (read with
    PyYAML, no jsonschema); --quick: two networks at toy scale (QUICK)."""
    import yaml

    from ..measure.scaling import settings_from_configs
    from ..pipeline.cells import cell_config
    from ..train.config import merge

    config = yaml.safe_load(PAPER_PROFILE.read_text())
    configs, tasks = {}, {}
    for table in PAPER_TABLES:
        spec = config["tables"][table]
        tasks[table] = spec["task"]
        for arch in spec["archs"]:
            if quick and arch not in QUICK["archs"]:
                continue
            for strategy in ("sgd", "msgd", "fmsgd"):
                cfg = cell_config(config, table, arch, strategy)
                configs[(table, arch, strategy)] = merge(cfg, QUICK["overrides"]) if quick else cfg
    return settings_from_configs(configs, tasks)


def _scaling(runner: StepRunner, sizes: list[int]) -> dict:
    from ..measure import suites
    from ..measure.scaling import scaling_rows

    earlier = list(runner.scaling)  # the paper-scale rows stay in the file while the sweep adds its own

    def write(rows: list[dict]) -> None:
        suites.write_rows(runner.path("scaling"), earlier + rows)

    rows = scaling_rows(paper_settings(runner.quick), sizes, device=runner.device, threads=1 if runner.quick else 2,
                        repeats=2 if runner.quick else 20, max_seconds=0.5 if runner.quick else 5.0,
                        deadline=runner.deadline, progress=write)
    runner.scaling.extend(rows)
    write(rows)
    failed = [f"{r['arch']} {r['size']}px {r['strategy']} level {r['level']}: {r['status']} {r.get('error', '')}"
              for r in rows if r["kind"] == "step" and r["status"] != "ok"]
    if failed:
        raise RuntimeError(f"{len(failed)} of the step rows did not measure (rows written): " + "; ".join(failed[:5]))
    return {"rows": len(rows), "outputs": [runner.path("scaling").name]}


def step_paper_scale(runner: StepRunner) -> dict:
    """The paper profile's Tables 4 and 5 at their 64 px: per-step timing of every strategy and level."""
    return _scaling(runner, [QUICK["size"]] if runner.quick else [64])


def step_sweep(runner: StepRunner) -> dict:
    """The resolution-scaling sizes beside 64 px, until the budget runs out (rows say "skipped")."""
    return _scaling(runner, [8] if runner.quick else list(SWEEP_SIZES))


def step_cell(runner: StepRunner) -> dict:
    """A tiny Full-Multiscale cell through the runner on the device (checkpoint, manifest, metrics)."""
    import torch

    from ..train.runner import run_cell

    images = torch.rand(16, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    config = {"image_size": 16, "levels": 2, "batch_size": 2, "iterations": [2, 2], "val_size": 4, "val_every": 2,
              "model": {"width": 0.125}}
    with tempfile.TemporaryDirectory() as tmp:
        record = run_cell(config, task="denoise", arch="resnet", strategy="fmsgd", out_dir=Path(tmp) / "cell",
                          device=runner.device, train_images=images[:12], val_images=images[12:], progress=False,
                          log=lambda _message: None)
    if record["status"] != "ok":
        raise RuntimeError(f"the tiny cell ended with status {record['status']!r}")
    return {"cell": {k: record[k] for k in ("iterations", "wu_executed", "train_seconds", "peak_memory_mb")},
            "manifest_device": record["manifest"]["device"]}


def step_tests(runner: StepRunner) -> dict:
    """`pytest -m gpu tests/measure/test_gpu.py`, its output in gpu_tests.log."""
    if importlib.util.find_spec("pytest") is None:
        raise RuntimeError("pytest is not installed here")
    timeout = max(30.0, runner.deadline - time.monotonic())
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-m", "gpu", "-p", "no:cacheprovider",
                             str(ROOT / "tests" / "measure" / "test_gpu.py")], capture_output=True, text=True, check=False,
                            timeout=timeout, cwd=ROOT)
    log = runner.out / "gpu_tests.log"
    log.write_text(result.stdout + result.stderr)
    if result.returncode not in (0, 5):  # 5: nothing collected
        raise RuntimeError(f"pytest exited {result.returncode}: {result.stdout.strip().splitlines()[-1:]}")
    return {"summary": (result.stdout.strip().splitlines() or [""])[-1], "outputs": [log.name]}


def step_table15(runner: StepRunner) -> dict:
    from ..measure import suites

    if runner.quick and runner.device == "cpu":  # a smoke test: one network at 16 px
        rows = suites.table15_rows(("resnet",), devices=("cpu",), size=16, threads=1)
    else:
        rows = suites.table15_rows(("resnet", "mfc_resnet"), devices=(runner.device,), quick=runner.quick)
    suites.write_rows(runner.path("table15"), rows)
    return {"rows": len(rows), "outputs": [runner.path("table15").name]}


def step_fig7(runner: StepRunner) -> dict:
    from ..measure import suites

    options = {"sizes": (16, 32), "kernels": (3,), "channel_counts": (3,)} if runner.quick else {}
    rows = suites.fig7_rows(runner.device, quick=runner.quick, **options)
    suites.write_rows(runner.path("fig7"), rows)
    return {"rows": len(rows), "outputs": [runner.path("fig7").name]}


def step_bench(runner: StepRunner) -> dict:
    """The benchmark's comparisons (--quick sizes), each wrapped: a failing one is a row saying why."""
    import torch

    from ..measure import suites
    from ..measure.bench import COMPARISONS
    from ..measure.bench_rows import Bench

    torch.manual_seed(0)
    bench = Bench(runner.device, 2, quick=True)
    names = QUICK_BENCH if runner.quick and runner.device == "cpu" else tuple(COMPARISONS)
    failed = []
    for name in names:
        try:
            COMPARISONS[name](bench)
        except Exception as error:  # noqa: BLE001 - one comparison's failure is its row
            bench.add(name, "failed", status=f"failed: {type(error).__name__}: {error}"[:300])
            failed.append(name)
        suites.write_rows(runner.path("bench"), bench.rows)
    if failed:
        raise RuntimeError(f"comparisons failed (rows written): {', '.join(failed)}")
    return {"rows": len(bench.rows), "outputs": [runner.path("bench").name]}


STEPS: dict[str, Callable[[StepRunner], dict]] = {
    "environment": step_environment, "paper-scale": step_paper_scale, "cell": step_cell, "tests": step_tests,
    "table15": step_table15, "fig7": step_fig7, "bench": step_bench, "scaling-sweep": step_sweep,
}
STEP_NAMES = tuple(STEPS)
QUICK_BENCH = ("mfc_vs_conv",)  # --device cpu --quick: one comparison of the benchmark, as a smoke test


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    skip = {s.strip() for s in args.skip.split(",") if s.strip()} | ({"tests"} if args.no_tests else set())
    unknown = sorted(skip - set(STEPS))
    if unknown:
        print(f"mfcbench gpu-check: unknown step(s) {', '.join(unknown)}; valid choices: {', '.join(STEPS)}",
              file=sys.stderr)
        return 2
    runner = StepRunner(Path(args.out), args.device, args.quick, args.budget_s, argv)
    no_device = ""
    for name, step in STEPS.items():
        reason = "skipped: --skip" if name in skip else no_device
        if name == "tests" and args.device == "cpu" and not reason:
            reason = "skipped: GPU tests need --device cuda"
        entry = runner.run(name, step, skip=reason)
        if name == "environment" and entry["status"] != "ok":
            no_device = f"skipped: {args.device} unavailable"
    failed = [s["name"] for s in runner.record["steps"] if s["status"] == "failed"]
    print(f"[gpu-check] {len(runner.record['steps'])} steps, failed: {', '.join(failed) or 'none'} -> "
          f"{runner.out / 'gpu_check.json'}", file=sys.stderr)
    return 1 if failed else 0
