"""The benchmark's row collector: `Bench` times one variant of a comparison and keeps its row.

Every row carries the machine's description (`timing.environment`), so a CSV of rows says where each
number was measured; each row is printed to stderr as it is added.
"""

from __future__ import annotations

import sys
from typing import Callable

from .timing import environment, measure


class Bench:
    """Collects rows: one per measured variant, plus ratios against targets."""

    def __init__(self, device: str, threads: int, quick: bool):
        self.device, self.threads, self.quick = device, threads, quick
        self.env = environment(device, threads)
        self.rows: list[dict] = []

    def time(self, fn: Callable[[], object], min_run_time: float | None = None) -> dict:
        return measure(fn, device=self.device, threads=self.threads,
                       min_run_time=min_run_time or (0.2 if self.quick else 1.5),
                       cuda_repeats=20 if self.quick else 100)

    def add(self, comparison: str, variant: str, result: dict | None = None, **fields) -> dict:
        row = {"comparison": comparison, "variant": variant, "median_ms": "", "iqr_ms": "", "runs": "",
               "status": "ok", "value": "", "target": "", "met": "", "notes": ""}
        row.update(result or {})
        row.update(fields)
        row.update(self.env)
        self.rows.append(row)
        print(f"[bench] {comparison:<18} {variant:<34} {_fmt(row)}", file=sys.stderr, flush=True)
        return row


def _fmt(row: dict) -> str:
    if row.get("status") != "ok":
        return str(row["status"])
    if row.get("median_ms") != "":
        return f"{row['median_ms']:.2f} ms (iqr {row['iqr_ms']:.2f})"
    return f"{row['value']} (target {row['target']}, met={row['met']}) {row['notes']}"


def median_ms(row: dict) -> float:
    """A measured row's median milliseconds."""
    return float(row["median_ms"])
