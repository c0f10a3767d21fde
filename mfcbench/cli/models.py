"""`python -m mfcbench models`: every registered model's parameter count beside Table 13.

Counts are computed by building each model here; the published counts are read from the one
file of published values (mfcbench/report/published.yaml, Table 13) for the comparison column only.
"""

from __future__ import annotations

import argparse
import csv
import sys

from ..models import build_model, model_names
from ..models.convert import count_parameters
from ..report.published import load_published


def _published_table13() -> dict[str, int]:
    """Table 13's parameter counts by model name (3 in/out channels, noise-conditioned denoisers)."""

    block = next(b for b in load_published()["tables"]["table13"]["blocks"] if b["name"] == "params")
    return {row["model"]: int(value[0]) for row, value in zip(block["rows"], block["value"])}


#: Published in the paper, Table 13 (from published.yaml).
PUBLISHED_TABLE13 = _published_table13()

#: Channels the paper uses for models that are not 3-channel image models.
CHANNELS = {"blur_conv": 1, "blur_mfc": 1}

COLUMNS = ("model", "params", "cond", "table13", "diff", "match")


def paper_build(name: str):
    """Build `name` as the paper's tables use it: conditioned on t when the model takes a condition."""
    channels = CHANNELS.get(name, 3)
    try:
        return build_model(name, channels, channels, cond=True), True
    except ValueError:
        return build_model(name, channels, channels, cond=False), False


def rows(names: list[str] | None = None) -> list[dict]:
    out = []
    for name in names or model_names():
        model, cond = paper_build(name)
        params = count_parameters(model)
        published = PUBLISHED_TABLE13.get(name)
        out.append({
            "model": name,
            "params": params,
            "cond": cond,
            "table13": published,
            "diff": None if published is None else params - published,
            "match": None if published is None else params == published,
        })
    return out


def _text(table: list[dict]) -> str:
    def fmt(key, value):
        if value is None:
            return "-"
        if key == "match":
            return "yes" if value else "NO"
        if key == "diff":
            return f"{value:+,}"
        return f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else str(value)

    cells = [[fmt(k, r[k]) for k in COLUMNS] for r in table]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(COLUMNS)]
    lines = ["  ".join(h.ljust(w) if i == 0 else h.rjust(w) for i, (h, w) in enumerate(zip(COLUMNS, widths)))]
    for c in cells:
        lines.append("  ".join(v.ljust(w) if i == 0 else v.rjust(w) for i, (v, w) in enumerate(zip(c, widths))))
    lines.append("table13: published counts (paper, Table 13); mfc_unet's gap is explained in mfcbench/models/unet.py")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mfcbench models", description=__doc__.splitlines()[0])
    parser.add_argument("--format", choices=("text", "csv"), default="text")
    parser.add_argument("--models", nargs="+", metavar="NAME", help="only these models (default: all registered)")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.models or ()) - set(model_names()))
    if unknown:
        parser.error(f"unknown model(s) {', '.join(unknown)}; valid choices: {', '.join(model_names())}")
    table = rows(args.models)
    if args.format == "csv":
        writer = csv.DictWriter(sys.stdout, fieldnames=COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows({k: ("" if v is None else v) for k, v in r.items()} for r in table)
    else:
        print(_text(table))
    return 0

