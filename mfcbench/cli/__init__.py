"""`python -m mfcbench <command>` (and the `mfcbench` console script): the one command line.

Each command lives in its own module of this package (`mfcbench/cli/<module>.py`, exposing
`main(argv) -> int`); the library modules below never import from here. Commands are imported
only when run, so `--help` is instant.
"""

from __future__ import annotations

import importlib
import os
import sys

from ..core.optional import explain

# name -> (module in mfcbench.cli, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "train": ("train", "run one cell: train a model with a strategy on a task"),
    "wu": ("wu", "print the closed-form work units of a strategy (App. C)"),
    "models": ("models", "list the registered models (--params: parameter counts beside Table 13)"),
    "prepare": ("prepare", "fetch/prepare a dataset as tensors"),
    "grid": ("grid", "summarise a profile's grid: cells and closed-form #WU per table"),
    "gather": ("gather", "gather cells into a tidy per-table CSV"),
    "measure": ("measure", "FLOP and timing tables (Tables 11, 15, Figure 7)"),
    "bench": ("bench", "the performance benchmark -> reports/bench.csv"),
    "gpu-check": ("gpu_check", "the whole GPU check: bench, Table 15 and Figure 7 on CUDA, pytest -m gpu"),
    "experiment": ("experiment", "standalone experiments (Tables 1-2 discrepancy, Figure 3, Lemma 4)"),
    "report": ("report", "paper-layout tables, figures, claims and REPORT.md"),
    "publish": ("publish", "copy reports/ into the committed snapshot reports/published/<profile>/ (--check: compare)"),
    "visualise": ("visualise", "Figures 1-2 (schedules), 9-14 (predictions) and 15 (feature maps)"),
}

# glibc returns large freed buffers to the system and maps them again on the next step, which
# halves torch's CPU speed at our tensor sizes; it reads these only at process start.
MALLOC_ENV = {"MALLOC_MMAP_THRESHOLD_": "1000000000000", "MALLOC_TRIM_THRESHOLD_": "1000000000000"}
REEXEC_FLAG = "MFCBENCH_REEXEC"
# the commands that import torch: with MFCBENCH_WARM=1 (the pipeline) they start in a fork of a warm
# process (cli/warm.py) instead of a fresh interpreter
WARM_COMMANDS = ("train", "measure", "experiment", "visualise", "bench")


def usage() -> str:
    lines = ["usage: python -m mfcbench <command> [options]   (python -m mfcbench <command> --help)",
             "       python -m mfcbench --version", "", "commands:"]
    lines += [f"  {name:<11} {help_text}" for name, (_, help_text) in COMMANDS.items()]
    return "\n".join(lines)


def version() -> str:
    """The installed distribution's version, else the package's own `__version__` (a bare checkout)."""
    from importlib import metadata

    try:
        return metadata.version("mfcbench")
    except metadata.PackageNotFoundError:
        from .. import __version__

        return __version__


def main(argv: list[str] | None = None) -> int:
    """Dispatch to a command in this process (tests, notebooks): no re-exec. A package that an extra
    brings and that is missing ends the command with one line naming the extra to install."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0 if argv else 2
    if argv[0] in ("--version", "-V"):
        print(f"mfcbench {version()}")
        return 0
    name = argv.pop(0)
    if name not in COMMANDS:
        print(f"mfcbench: unknown command {name!r}; valid choices: {', '.join(COMMANDS)}", file=sys.stderr)
        return 2
    try:
        module = importlib.import_module(f"{__name__}.{COMMANDS[name][0]}")
        return int(module.main(argv) or 0)
    except ModuleNotFoundError as error:
        better = explain(error)
        if better is None:
            raise
        print(f"mfcbench {name}: {better}", file=sys.stderr)
        return 1


def ensure_allocator_env(argv: list[str]) -> None:
    """Re-exec this program once with MALLOC_ENV set when it is missing (MFCBENCH_REEXEC=0 opts out)."""
    if os.environ.get(REEXEC_FLAG) in ("0", "1") or all(os.environ.get(k) == v for k, v in MALLOC_ENV.items()):
        return
    if sys.platform != "linux":
        return
    sys.stdout.flush()
    sys.stderr.flush()
    env = {**os.environ, **MALLOC_ENV, REEXEC_FLAG: "1"}
    os.execve(sys.executable, [sys.executable, "-m", "mfcbench", *argv], env)


def run() -> int:
    """Program entry (`python -m mfcbench`, the console script): allocator settings, then dispatch."""
    argv = sys.argv[1:]
    if argv and argv[0] in WARM_COMMANDS:
        from . import warm

        if warm.enabled():
            status = warm.run_warm(argv)
            if status is not None:
                return status
    ensure_allocator_env(argv)
    return main(argv)
