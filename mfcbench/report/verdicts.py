"""The verdict page: `reports/published/VERDICTS.md` and `verdicts.csv`, every claim's verdict on one page,
generated from the committed snapshots `reports/published/<profile>/` and nothing else.

One row per claim and snapshot that decides it (REPRODUCED, DEVIATES or INCONCLUSIVE; a claim decided in two
profiles has two rows, the deciding profile's first, see report/deciders.py): its verdict, the scale of the
cells behind it (REPORT.md's scale line and settings), the deciding pair's effect with its interval and seeds, a
one-line reason (report/verdict_text.py), the snapshot's commit and whether its cells were trained by the
current training code (the digest cells.csv records against `current`). NOT_RUN in a profile is not a verdict: a
claim NOT_RUN in every snapshot (or in none yet) has one NOT_RUN row naming the profile that decides it. Claims
carry an `origin` (claims.yaml): `paper` (the default), `beyond` (claims beyond the paper), `reading` (a reading
the paper leaves open); the page lists each apart. "What this means for the paper" is written from the rows:
counts per verdict in the deciding profile, which claims hold, which do not and at what scale.

`python -m mfcbench report verdicts` writes both files (atomically), `--check` compares; `publish` rewrites them
after swapping a snapshot in and `publish --check` fails when they disagree with the snapshots.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import pandas as pd

from ..core.atomic import write_text
from .claims import load_claims
from .deciders import claim_needs, decided_by, deciding_profiles, shipped_profiles
from .markdown import md_table
from .verdict_sources import Snapshot, read_snapshots, table_scale
from .verdict_text import pair_reason

PAGE, TABLE = "VERDICTS.md", "verdicts.csv"
COLUMNS = ["id", "origin", "claim", "source", "verdict", "profile", "scale", "effect", "seeds", "reason", "commit",
           "current_code", "decided_by"]
ORDER = {"REPRODUCED": 0, "DEVIATES": 1, "INCONCLUSIVE": 2, "NOT_RUN": 3}
ORIGINS = {"paper": ("Claims of the paper", "the paper's claims"),
           "beyond": ("Claims beyond the paper", "the claims beyond the paper"),
           "reading": ("Readings the paper leaves open", "the claims on a reading the paper leaves open")}


def origins(rows: pd.DataFrame) -> list[tuple[str, str, str]]:
    """(origin, section title, words) for the paper's claims, those beyond it, the readings, then any other origin."""
    seen = list(dict.fromkeys(rows["origin"].astype(str)))
    names = list(ORIGINS) + [o for o in seen if o not in ORIGINS]
    return [(o, *ORIGINS.get(o, (f"Claims ({o})", f"the claims of origin {o}"))) for o in names]
UNTRAINED = "not trained (closed form, measurement or experiment)"
REBUILD = "python -m mfcbench report verdicts"


def code_words(snapshot: Snapshot, current: str | None) -> str:
    """'yes', 'no: 12 of 177 cells by other code (digest …)', 'no trained cells' or 'unknown'."""
    same, total = snapshot.code_status(current)
    if total == 0:
        return "no trained cells"
    if current is None:
        return "unknown"
    if same == total:
        return "yes"
    codes = snapshot.cells["training_code"].dropna().astype(str)
    other = sorted({c[:12] for c in codes if c and c != current})
    return f"no: {total - same} of {total} cells by other code (digest {', '.join(other)})"


def _commit(snapshot: Snapshot | None) -> str:
    if snapshot is None or not snapshot.commit:
        return ""
    return snapshot.commit[:12] + (" (dirty)" if snapshot.dirty else "")


def decided_row(spec: Mapping[str, Any], snapshot: Snapshot, row: Mapping[str, Any], current: str | None) -> dict:
    """The page's row for a claim one snapshot decides."""
    pairs = snapshot.pairs
    if not pairs.empty and "claim" in pairs.columns:
        pairs = pairs[pairs["claim"].astype(str) == row["id"]]
    effect, seeds, reason = pair_reason(spec, row["verdict"], pairs, snapshot.cells)
    if not reason:
        published = row.get("published", "")
        effect = str(row.get("reproduced", "")) + (f" (paper: {published})" if published else "")
        reason = str(row.get("reason", ""))
    archs = sorted(set(pairs["arch"].astype(str))) if not pairs.empty and "arch" in pairs.columns else []
    tables = [t for t in sorted(claim_needs(spec)) if t in snapshot.schedules]
    scale = " | ".join(table_scale(snapshot, t, archs, str(row.get("dataset", ""))) for t in tables)
    return {"id": row["id"], "origin": spec.get("origin", "paper"), "claim": row.get("claim", spec.get("claim", "")),
            "source": row.get("source", spec.get("source", "")), "verdict": row["verdict"], "profile": snapshot.profile,
            "scale": scale or UNTRAINED, "effect": effect, "seeds": seeds, "reason": reason,
            "commit": _commit(snapshot), "current_code": code_words(snapshot, current), "decided_by": ""}


def not_run_row(spec: Mapping[str, Any], seen: list[tuple[Snapshot, Mapping]], profiles: Mapping) -> dict:
    """The one row of a claim no snapshot decides: the profile that would, and why it is not run."""
    deciders = deciding_profiles(spec, profiles)
    by_profile = {s.profile: (s, r) for s, r in seen}
    snapshot, row = by_profile.get(deciders[0] if deciders else "", (None, None))
    if row is None:
        informative = [(s, r) for s, r in seen if not str(r.get("reason", "")).startswith("no results:")]
        snapshot, row = (informative or seen or [(None, None)])[0]
    reason = str(row.get("reason", "")) if row is not None else "in no committed snapshot yet"
    return {"id": spec["id"], "origin": spec.get("origin", "paper"), "claim": spec.get("claim", ""),
            "source": spec.get("source", ""), "verdict": "NOT_RUN",
            "profile": deciders[0] if deciders else "none shipped", "scale": "", "effect": "", "seeds": "",
            "reason": reason, "commit": _commit(snapshot) if deciders and snapshot and snapshot.profile == deciders[0] else "",
            "current_code": "",
            "decided_by": decided_by(spec, profiles)}


def _reading_notes(rows: list[dict]) -> None:
    """A reading's claim (`<base>_<reading>`) whose verdict differs from its base claim's in the same profile says so."""
    verdicts = {(r["id"], r["profile"]): r["verdict"] for r in rows}
    ids = {r["id"] for r in rows}
    for row in rows:
        base = next((b for b in sorted(ids, key=len, reverse=True) if row["id"].startswith(b + "_")), None)
        theirs = verdicts.get((base, row["profile"]))
        if base and row["verdict"] != "NOT_RUN" and theirs not in (None, "NOT_RUN", row["verdict"]):
            row["reason"] += f"; the verdict differs from `{base}`'s ({theirs}) in this profile"


def verdict_rows(root: str | Path = "reports/published", current: str | None = None,
                 claims: list[dict] | None = None, profiles: Mapping | None = None) -> pd.DataFrame:
    """verdicts.csv: every claim of claims.yaml (then any other a snapshot holds), its rows as the module says."""
    snapshots = read_snapshots(root)
    specs = {s["id"]: s for s in (claims if claims is not None else load_claims())}
    profiles = shipped_profiles() if profiles is None else profiles
    for snapshot in snapshots:
        for claim_id, claim in zip(snapshot.claims["id"], snapshot.claims.get("claim", snapshot.claims["id"])):
            specs.setdefault(claim_id, {"id": claim_id, "claim": claim})
    rows = []
    for claim_id, spec in specs.items():
        seen = [(s, r) for s in snapshots for r in s.claims[s.claims["id"] == claim_id].to_dict("records")]
        decided = [decided_row(spec, s, r, current) for s, r in seen if r["verdict"] != "NOT_RUN"]
        rank = {name: i for i, name in enumerate(deciding_profiles(spec, profiles))}
        decided.sort(key=lambda r: (rank.get(r["profile"], len(rank)), r["profile"]))
        rows += decided or [not_run_row(spec, seen, profiles)]
    _reading_notes(rows)
    return pd.DataFrame(rows, columns=COLUMNS)


def _names(frame: pd.DataFrame) -> str:
    return ", ".join(f"`{i}` ({p})" for i, p in zip(frame["id"], frame["profile"])) or "none"


def meaning(rows: pd.DataFrame, snapshots: int, current: pd.Series) -> str:
    """'What this means for the paper', from the rows: per origin, the deciding profile's verdict of each claim."""
    out = ["## What this means for the paper", ""]
    first = rows.drop_duplicates("id")
    for origin, _, title in origins(rows):
        part = first[first["origin"] == origin]
        if part.empty:
            out.append(f"- No row for {title} in the committed snapshots yet.")
            continue
        counts = part["verdict"].value_counts()
        out.append(f"- Of {title} ({len(part)}), in the profile that decides each: "
                   + ", ".join(f"**{counts.get(v, 0)} {v}**" for v in ORDER) + ".")
        out.append(f"  - Hold (REPRODUCED): {_names(part[part['verdict'] == 'REPRODUCED'])}.")
        for row in part[part["verdict"] == "DEVIATES"].itertuples():
            where = row.profile if row.scale == UNTRAINED else f"{row.profile}; {row.scale.split('; iterations')[0]}"
            said = row.reason if row.seeds else f"{row.effect}; {row.reason}"  # no pair: the measured value first
            out.append(f"  - Does not hold: `{row.id}` ({where}): {said}.")
        out.append(f"  - Undecided (INCONCLUSIVE): {_names(part[part['verdict'] == 'INCONCLUSIVE'])}.")
        out.append(f"  - Not run: {_names(part[part['verdict'] == 'NOT_RUN'])}.")
    stale = sorted(set(current[current.str.startswith("no")].index))
    out.append(f"- Trained verdicts hold at the scale of their profile only (the scale column); the paper's settings "
               f"are its Tables 13-14 (`workflow/config/paper.yaml`). {snapshots - len(stale)} of {snapshots} "
               f"snapshots were trained by the current training code"
               + (f"; {', '.join(stale)} by other code: rebuild and publish them." if stale else "."))
    return "\n".join(out) + "\n"


SAME = ["id", "verdict", "scale", "effect", "seeds", "reason", "decided_by"]


def _view(rows: pd.DataFrame) -> pd.DataFrame:
    """The page's table: rows that say the same in several profiles (a closed form, say) shown once, their
    profiles and commits together."""
    merged = rows.assign(_n=range(len(rows))).groupby(SAME, sort=False, dropna=False).agg(
        claim=("claim", "first"), profile=("profile", ", ".join),
        commit=("commit", lambda c: ", ".join(x for x in c if x)), _n=("_n", "first")).reset_index().sort_values("_n")
    return pd.DataFrame({"claim": [f"{c} (`{i}`)" for c, i in zip(merged["claim"], merged["id"])],
                         "verdict": merged["verdict"].map(lambda v: f"**{v}**"), "profile": merged["profile"],
                         "scale": merged["scale"], "effect": merged["effect"], "seeds": merged["seeds"],
                         "reason": [r + (f" ({d})" if d else "") for r, d in zip(merged["reason"], merged["decided_by"])],
                         "commit": merged["commit"]})


def verdict_page(rows: pd.DataFrame, root: str | Path = "reports/published", current: str | None = None) -> str:
    """VERDICTS.md from the rows and the snapshots' provenance."""
    snapshots = read_snapshots(root)
    status = pd.Series({s.profile: code_words(s, current) for s in snapshots}, dtype=str)
    table = pd.DataFrame({"profile": [f"[{s.profile}]({s.profile}/REPORT.md)" for s in snapshots],
                          "commit": [_commit(s) for s in snapshots],
                          "trained by the current training code": status.tolist(),
                          "scale": [s.common for s in snapshots]})
    parts = ["# Every verdict, from the committed snapshots", "",
             f"Generated from `reports/published/<profile>/` (claims.csv, pairs.csv, cells.csv, REPORT.md) by `{REBUILD}` "
             "and by every `publish`; do not edit by hand (a test fails when it disagrees with the snapshots). "
             "The same rows: [`verdicts.csv`](verdicts.csv). A claim decided in two profiles has a row for each, the "
             "profile that decides it first; NOT_RUN rows name that profile.", "",
             meaning(rows, len(snapshots), status), "## Snapshots", "", md_table(table)]
    for origin, title, _ in origins(rows):
        part = rows[rows["origin"] == origin]
        parts += [f"## {title}", "", md_table(_view(part)) if len(part) else "_(none yet)_\n"]
    return "\n".join(parts)


def render(root: str | Path = "reports/published", current: str | None = None,
           claims: list[dict] | None = None, profiles: Mapping | None = None) -> tuple[str, str]:
    """(VERDICTS.md text, verdicts.csv text) for the snapshots under `root`."""
    rows = verdict_rows(root, current, claims, profiles)
    return verdict_page(rows, root, current), rows.to_csv(index=False)


def has_snapshots(root: str | Path) -> bool:
    """Whether the root holds a verdict page or a readable snapshot (what `publish --check` compares)."""
    root = Path(root)
    return (root / PAGE).is_file() or (root / TABLE).is_file() or bool(read_snapshots(root))


def write(root: str | Path = "reports/published", current: str | None = None, **inputs: Any) -> list[Path]:
    """Write VERDICTS.md and verdicts.csv under `root`, each atomically."""
    page, table = render(root, current, **inputs)
    root = Path(root)
    write_text(root / TABLE, table)
    write_text(root / PAGE, page)
    return [root / PAGE, root / TABLE]


def differences(root: str | Path = "reports/published", current: str | None = None, **inputs: Any) -> list[str]:
    """One line per file of the page that is missing or differs from what the snapshots give now."""
    root, bad = Path(root), []
    for name, text in zip((PAGE, TABLE), render(root, current, **inputs)):
        path = root / name
        if not path.is_file():
            bad.append(f"{path} (missing: build it with `{REBUILD}`)")
        elif path.read_text() != text:
            bad.append(f"{path} (differs from the snapshots under {root}: rebuild it with `{REBUILD}`)")
    return bad
