"""`python -m mfcbench models`: the registered models; `--params` adds each one's parameter count beside Table 13.

Listing names builds nothing (the registry imports the builder modules and the `mfcbench.models`
entry points only). `--params` (or `--models NAME ...`) builds the models it prints to count their
parameters; the published counts are read from the one file of published values
(mfcbench/core/published.yaml, Table 13) for the comparison column only.
"""

from __future__ import annotations

import argparse
import csv
import sys

from ..models import MODELS, build_model, model_names
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


def summary(name: str) -> str:
    """The first line of a builder's docstring, else of its module's (`models` lists these without
    building anything)."""
    import inspect

    builder = MODELS.get(name)
    doc = (builder.__doc__ or getattr(inspect.getmodule(builder), "__doc__", None) or "").strip()
    return doc.splitlines()[0].strip() if doc else ""


def _write(table: list[dict], columns: tuple[str, ...], fmt: str) -> None:
    if fmt == "csv":
        writer = csv.DictWriter(sys.stdout, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows({k: ("" if r[k] is None else r[k]) for k in columns} for r in table)
    elif columns == COLUMNS:
        print(_text(table))
    else:
        width = max(len(r["model"]) for r in table)
        print("\n".join(f"{r['model']:<{width}}  {r['summary']}" for r in table))
        print("(python -m mfcbench models --params builds them and prints each one's parameter count)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mfcbench models", description=__doc__.splitlines()[0])
    parser.add_argument("--format", choices=("text", "csv"), default="text")
    parser.add_argument("--params", action="store_true",
                        help="build every listed model and print its parameter count beside Table 13")
    parser.add_argument("--models", nargs="+", metavar="NAME",
                        help="only these models, with their parameter counts (default: every registered one)")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.models or ()) - set(model_names()))
    if unknown:
        parser.error(f"unknown model(s) {', '.join(unknown)}; valid choices: {', '.join(model_names())}")
    if args.params or args.models:
        _write(rows(args.models), COLUMNS, args.format)
    else:
        _write([{"model": n, "summary": summary(n)} for n in model_names()], ("model", "summary"), args.format)
    return 0

