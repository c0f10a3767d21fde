"""The paper's printed values (`mfcbench/core/published.yaml`, loaded by `mfcbench.core.published`)
and helpers to read printed numbers.

Published values are used only for display and verdicts, never as a result: nothing here feeds
a number back into a reproduced column.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

from ..core.published import PUBLISHED_PATH, load_published, published_table

__all__ = ["PUBLISHED_PATH", "equal_at_printed_precision", "load_published", "parse_printed", "printed_precision",
           "published_cells", "published_table", "round_like"]

_SCI = re.compile(r"^\s*([-+]?\d+(?:\.\d+)?)\s*(?:×|\\times|x)\s*10\^\{?([-+]?\d+)\}?\s*$")
_PLAIN = re.compile(r"^\s*[-+]?[\d,]*\d(?:\.\d+)?\s*$")


def parse_printed(printed: str) -> float:
    """'1.6×10^{-4}' -> 1.6e-4; '2.62 \\times 10^7' -> 2.62e7; '480,000' -> 480000.0."""
    match = _SCI.match(printed)
    if match:
        return float(f"{match.group(1)}e{match.group(2)}")
    if _PLAIN.match(printed):
        return float(printed.replace(",", ""))
    raise ValueError(f"cannot parse printed number {printed!r}")


def printed_precision(printed: str) -> tuple[str, int]:
    """('sig', digits) for scientific notation, ('dec', decimals) for plain numbers."""
    match = _SCI.match(printed)
    if match:
        mantissa = match.group(1).lstrip("+-")
        return "sig", len(mantissa.replace(".", "").lstrip("0")) or 1
    if _PLAIN.match(printed):
        text = printed.strip()
        return "dec", len(text.split(".")[1]) if "." in text else 0
    raise ValueError(f"cannot read the precision of {printed!r}")


def round_like(value: float, printed: str) -> float:
    """Round `value` to the precision the paper printed `printed` with."""
    if value is None or not math.isfinite(value):
        return float("nan")
    kind, digits = printed_precision(printed)
    if kind == "dec":
        return round(value, digits)
    if value == 0:
        return 0.0
    exponent = math.floor(math.log10(abs(value)))
    return round(value, digits - 1 - exponent)


def equal_at_printed_precision(value: float, printed: str) -> bool:
    """True when `value`, rounded like the printed number, equals it."""
    return math.isclose(round_like(value, printed), parse_printed(printed), rel_tol=1e-9, abs_tol=0.0)


def published_cells(name: str, path: str | Path | None = None) -> list[dict[str, Any]]:
    """Flatten a table's grids into one dict per printed cell (block, row/column keys, printed, value)."""
    table = published_table(name, path)
    cells = []
    for block in table.get("blocks", []):
        for i, row in enumerate(block["rows"]):
            for j, column in enumerate(block["columns"]):
                printed = block["printed"][i][j]
                if printed is None:
                    continue
                keys = {k: v for k, v in {**row, **column}.items() if k != "label"}
                cells.append(
                    {
                        "block": block["name"],
                        "row": row["label"],
                        "column": column["label"],
                        "keys": keys,
                        "printed": str(printed),
                        "value": float(block["value"][i][j]),
                    }
                )
    return cells
