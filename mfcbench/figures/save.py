"""How every figure is written: one PNG at one resolution, atomically, and the data behind it beside it.

`save_png` is the one place a figure becomes a file (`DPI` dots per inch, written through
`mfcbench.core.atomic`, the figure closed after); `save_figure` adds the CSV of the plotted data.
`pyplot()` imports matplotlib on the Agg backend (no display needed).
"""

from __future__ import annotations

from pathlib import Path

from ..core.atomic import atomic_path, write_csv

DPI = 150  # every PNG of figures/: the paper figures, the visualised cells, Figures 6 and 8


def pyplot():
    """matplotlib.pyplot on the Agg backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_png(fig, path: str | Path) -> Path:
    """Write `fig` to `path` as a PNG at DPI (atomically, creating the folder) and close it."""
    import matplotlib.pyplot as plt

    path = Path(path)
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png", dpi=DPI)
    finally:
        plt.close(fig)
    return path


def save_figure(fig, data, out: str | Path) -> Path:
    """Write a figure to `out` (PNG, `save_png`) and the data behind it (a DataFrame) beside it, `out` with .csv."""
    out = save_png(fig, out)
    write_csv(out.with_suffix(".csv"), data)
    return out
