"""Which shipped profile decides a claim, read from the profiles themselves (`workflow/config/*.yaml`).

A profile decides a claim when its run builds every result file the claim reads (its trained `tables`, each with
its curves; the `extras` it lists, or the schema's default extras when it lists none, as the workflow's `builds`
does) and meets what the claim requires: the dataset it names (`requires_dataset`), the table's variants it
compares (`variant`, `reference_variant`), a GPU (`device: cuda`), a SAM checkpoint (`sam_quality`). Among
several, the one that decides is the CPU profile with the largest training budget on the claim's tables (the
iterations its tables run), then the name: the converged profiles before the default one, whose budget is a
demonstration's. The profiles are read as plain YAML (no schema, no torch), so REPORT.md and the verdict page
can name the profile for a NOT_RUN claim.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import yaml

from ..core import catalogue

PROFILES_DIR = Path(__file__).resolve().parents[2] / "workflow" / "config"
REQUIRED_KEYS = {"sam_quality": "sam/checkpoint"}  # check kind -> profile key (dpath) it needs set


def shipped_profiles(folder: str | Path | None = None) -> dict[str, dict]:
    """name -> config of every profile in `folder` (default: the checkout's workflow/config; none in a wheel)."""
    folder = Path(folder) if folder else PROFILES_DIR
    if not folder.is_dir():
        return {}
    profiles = {}
    for path in sorted(folder.glob("*.yaml")):
        config = yaml.safe_load(path.read_text())
        if isinstance(config, dict) and isinstance(config.get("tables"), dict):
            profiles[str(config.get("profile") or path.stem)] = config
    return profiles


def _lookup(config: Mapping[str, Any], dpath: str | None) -> Any:
    value: Any = config
    for key in (dpath or "").split("/"):
        if not key:
            continue
        value = value.get(key) if isinstance(value, Mapping) else None
    return value


def built_results(config: Mapping[str, Any]) -> set[str]:
    """The result names (`<name>.csv` under results/<profile>/) a profile's run builds."""
    tables = set(config.get("tables") or {})
    extras = config.get("extras")
    extras = catalogue.extras(default_only=True) if extras is None else extras
    built = {"workunits"} | tables | {f"curves_{t}" for t in tables}
    for output in catalogue.OUTPUTS:
        if (output.kind != "table" and output.result and output.id in extras
                and catalogue.trained_inputs(output.id) <= tables
                and (output.requires is None or _lookup(config, output.requires))):
            built.add(output.result.removesuffix(".csv"))
    return built


def claim_needs(spec: Mapping[str, Any]) -> set[str]:
    """The result names a claim reads: its `input`, `inputs`, `table`, its reference's `input`, a ladder's
    `rungs`, and the curves of a time-to-quality claim's table."""
    names = {spec.get("input"), spec.get("table"), (spec.get("reference") or {}).get("input"),
             *(spec.get("inputs") or []), *(spec.get("rungs") or {})}
    if spec.get("check") == "time_to_quality" and spec.get("input"):
        names.add(f"curves_{spec['input']}")
    return {str(n) for n in names if n}


def requirement(spec: Mapping[str, Any]) -> str:
    """What a profile must do beyond building the claim's results, in words ('' when nothing)."""
    needs = []
    if spec.get("requires_dataset"):
        needs.append(f"{spec.get('table') or spec.get('input')} on {spec['requires_dataset']}")
    variants = [v for v in (spec.get("variant"), spec.get("reference_variant")) if v]
    if variants:
        needs.append(f"variants {', '.join(variants)} of {spec.get('input')}")
    if spec.get("device") == "cuda":
        needs.append("a GPU (gpu: true)")
    if spec.get("check") in REQUIRED_KEYS:
        needs.append(f"{REQUIRED_KEYS[spec['check']].replace('/', '.')} set")
    return ", ".join(needs)


def meets(spec: Mapping[str, Any], config: Mapping[str, Any]) -> bool:
    """Whether a profile meets the claim's requirements beyond its results (dataset, GPU, key)."""
    dataset = spec.get("requires_dataset")
    table = (config.get("tables") or {}).get(spec.get("table") or spec.get("input")) or {}
    if dataset and str(table.get("dataset")) != str(dataset):
        return False
    variants = {v for v in (spec.get("variant"), spec.get("reference_variant")) if v}
    if not variants <= set(table.get("variants") or {}):
        return False
    if spec.get("device") == "cuda" and not config.get("gpu"):
        return False
    return not (spec.get("check") in REQUIRED_KEYS and not _lookup(config, REQUIRED_KEYS[spec["check"]]))


def budget(spec: Mapping[str, Any], config: Mapping[str, Any]) -> float:
    """The iterations the profile's tables behind the claim run (a table's `overrides`, else `defaults`)."""
    total = 0.0
    defaults = config.get("defaults") or {}
    for name, table in (config.get("tables") or {}).items():
        if name not in claim_needs(spec):
            continue
        overrides = (table or {}).get("overrides") or {}
        iterations = overrides.get("iterations") or defaults.get("iterations") or []
        scale = overrides.get("budget_scale") or defaults.get("budget_scale") or 1
        total += float(sum(iterations)) * float(scale)
    return total


def deciding_profiles(spec: Mapping[str, Any], profiles: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """The profiles that decide the claim, the deciding one first (see the module)."""
    needs = claim_needs(spec)
    able = [name for name, config in profiles.items() if needs <= built_results(config) and meets(spec, config)]
    return sorted(able, key=lambda n: (bool(profiles[n].get("gpu")), -budget(spec, profiles[n]), n))


def decided_by(spec: Mapping[str, Any], profiles: Mapping[str, Mapping[str, Any]], profile: str = "") -> str:
    """'decided by profile `converged`' (others that build its inputs after it), for a claim `profile` did
    not run; a profile that should have decided it says so; no shipped profile: what one would need."""
    able = deciding_profiles(spec, profiles)
    if not profiles:
        return ""
    if not able:
        wanted = ", ".join(sorted(claim_needs(spec))) or "its inputs"
        extra = requirement(spec)
        return f"no shipped profile decides it: one must build {wanted}" + (f" with {extra}" if extra else "")
    if able[0] == profile:
        return "this profile decides it (its inputs are missing: rerun it)"
    others = [n for n in able[1:] if n != profile]
    return f"decided by profile `{able[0]}`" + (f" (also built by {', '.join(others)})" if others else "")
