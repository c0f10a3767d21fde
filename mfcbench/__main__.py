"""`python -m mfcbench <command>`: see mfcbench/cli/__init__.py for the commands."""

import sys

from .cli import run

if __name__ == "__main__":
    sys.exit(run())
