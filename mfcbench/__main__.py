"""`python -m mfcbench <command>`: one entry point, each command implemented in its own module."""

from __future__ import annotations

import importlib
import sys

COMMANDS = {
    "train": ("mfcbench.runner", "run one cell: train a model with a strategy on a task"),
    "models": ("mfcbench.models.table", "print every model's parameter count beside Table 13"),
    "wu": ("mfcbench.workunits", "print the closed-form work units of a strategy"),
    "prepare": ("mfcbench.data.prepare", "fetch/prepare a dataset as tensors"),
    "gather": ("mfcbench.gather", "gather cells into a tidy per-table CSV"),
    "measure": ("mfcbench.measure.cli", "FLOP and timing tables"),
    "experiment": ("mfcbench.experiments.cli", "small standalone experiments (Figure 3 kernels, Lemma 4)"),
    "report": ("mfcbench.report.cli", "paper-layout tables, figures, claims and REPORT.md"),
}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print("usage: python -m mfcbench <command> [options]\n\ncommands:")
        for name, (_, help_text) in COMMANDS.items():
            print(f"  {name:<11} {help_text}")
        return 0 if argv else 2
    name = argv.pop(0)
    if name not in COMMANDS:
        print(f"mfcbench: unknown command {name!r}; valid choices: {', '.join(COMMANDS)}", file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[name][0])
    return int(module.main(argv) or 0)


if __name__ == "__main__":
    sys.exit(main())
