"""Cell-config defaults and validation: the one declaration of every training option.

A config is a flat dict (plus the free-form `model`, `task_options` and `early_stop` dicts).
`resolve()` fills defaults, applies `--set key=value` overrides and checks every key and type
before any training starts, so a typo fails in a second instead of after an hour. The profile
schema's training keys are generated from the same declarations (`training_schema`).
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
from pathlib import Path
from typing import Any, Iterable, Mapping

import yaml

from ..core import workunits
from ..core.options import INT_MIN1, NUMBER_MIN1, Option

# Paper defaults (Table 13 / App. C) unless noted; "authors' code" marks where their code differs.
# Options only one strategy reads are declared on its class (mfcbench/strategies/*.py `options`).
_LIST_POS = {"type": "array", "minItems": 2, "maxItems": 2, "items": {"type": "number", "exclusiveMinimum": 0}}
OPTIONS: dict[str, Option] = {
    "image_size": Option(64, {"type": "integer", "minimum": 4},
                         "finest-mesh side length (set on the profile's dataset entry; a table may not change it)"),
    "levels": Option(4, INT_MIN1, "number of meshes L (level 0 finest, level L-1 coarsest)"),
    "batch_size": Option(4, INT_MIN1, "N0: the batch at the finest level of a multiscale step"),
    "batch_growth": Option(2, NUMBER_MIN1, "N_j = N0 * batch_growth**j (App. C uses 2)"),
    "level_batches": Option(None, {"type": ["array", "null"], "items": INT_MIN1},
                            "explicit N_j list, finest first (overrides batch_growth)"),
    "iterations": Option([2000, 2000, 2000, 2000], {"type": ["array", "integer"], "minItems": 1, "minimum": 1,
                                                    "items": {"type": "integer", "minimum": 0}},
                         "per-level iterations, coarse -> fine (one per level); an int n means n at every level"),
    "restriction": Option("pool", {"enum": ["pool", "bilinear", "nearest"]}, "restriction operator"),
    "optimizer": Option("adam", {"enum": ["adam", "adamw", "sgd"]}, "optimizer"),
    "lr": Option(5e-4, {"type": "number", "exclusiveMinimum": 0}, "learning rate (Table 13)"),
    "weight_decay": Option(0.0, {"type": "number", "minimum": 0}, "weight decay"),
    "momentum": Option(0.9, {"type": "number", "minimum": 0}, "momentum (optimizer sgd only)"),
    "lr_schedule": Option("constant", {"enum": ["constant", "cosine", "cosine_run"]},
                          "constant (paper); cosine: annealing to 0 over each phase's iterations (a Full-Multiscale "
                          "level restarts it, as Algorithm 2 solves each level in turn); cosine_run: one cosine over "
                          "the whole run, every phase continuing it (the authors' code; docs/readings.md)"),
    "budget_scale": Option(1, {"type": "number", "exclusiveMinimum": 0},
                           "multiplies every phase's iterations (rounded); a profile's `variants: {x2: {budget_scale: "
                           "2}}` is the budget-doubling convergence test (docs/architecture.md)"),
    "val_size": Option(512, INT_MIN1, "images in the fixed validation batch"),
    "val_selection": Option("spread", {"enum": ["spread", "first"]},
                            "which val_size images validate: spread = evenly spaced over the val split (default), "
                            "first = the first val_size (the first skimage val patches are flat: std 0.006)"),
    "val_every": Option(500, INT_MIN1, "validate every this many iterations (and at the end)"),
    "checkpoint_every": Option(500, INT_MIN1, "checkpoint every this many iterations (and at phase ends)"),
    "plateau_threshold": Option(0.01, {"type": "number", "minimum": 0},
                                "a cell is converged when its validation metric changed by at most this fraction "
                                "(better or worse) over the last quarter of its last phase's steps (metrics.json "
                                "`plateau`, `converged`)"),
    "early_stop": Option(None, {"type": ["object", "null"], "additionalProperties": False, "required": ["patience"],
                                "properties": {
                                    "patience": {**INT_MIN1, "default": 5,
                                                 "description": "validations without improvement before stopping"},
                                    "min_delta": {"type": "number", "minimum": 0, "default": 0.0,
                                                  "description": "smallest improvement that counts"},
                                    "scope": {"enum": ["phase", "run"], "default": "phase",
                                              "description": "what a plateau ends: the phase (Algorithm 2: "
                                                             "the next, finer level starts) or the whole run"}}},
                         "{patience, min_delta, scope} on the headline val metric (blur estimation stops on a plateau); with "
                         "several phases (Full-Multiscale) a plateau ends the phase unless scope is 'run'"),
    "augment": Option("none", {"enum": ["none", "crops"]},
                      "clean-image augmentation for any strategy: none | crops (RandomResizedCrop, App. D.8; Table 12)"),
    "crop_size": Option(None, {"type": ["integer", "null"], "minimum": 1},
                        "crops: output side of RandomResizedCrop (null = image_size)"),
    "crop_scale": Option([0.08, 1.0], _LIST_POS, "crops: area fraction range (torchvision default)"),
    "crop_ratio": Option([0.75, 4 / 3], _LIST_POS, "crops: aspect-ratio range (torchvision default)"),
    "model": Option({}, {"type": "object"}, "options passed to build_model (e.g. width, mixing)"),
    "task_options": Option({}, {"type": "object"}, "options passed to the task"),
    "data_root": Option("data", {"type": "string"}, "root of the prepared datasets (set from the profile's data_root)"),
    "threads": Option(None, {"type": ["integer", "null"], "minimum": 1},
                      "torch CPU threads, null = torch's default (set from the profile's threads_per_cell)"),
}
SET_BY_PROFILE = ("data_root", "threads")  # a table cannot override these: the profile's top level sets them


def all_options() -> dict[str, Option]:
    """The common OPTIONS plus every registered strategy's own `options` (one declaration each)."""
    from ..strategies import STRATEGIES, strategy_names

    out = dict(OPTIONS)
    for name in strategy_names():
        for key, opt in STRATEGIES.get(name).options.items():
            if key in out and out[key] is not opt:
                raise RuntimeError(f"option {key!r} is declared twice with different definitions (strategy {name})")
            out[key] = opt
    return out


def defaults() -> dict[str, Any]:
    return {name: copy.deepcopy(opt.default) for name, opt in all_options().items()}


def training_schema(with_defaults: bool = True) -> dict:
    """JSON schema of a cell's training options, generated from the options (the profile schema's
    `$defs/training`; without defaults and profile-set keys it is `$defs/training_overrides`)."""
    options = all_options()
    props = {k: o.json_schema(with_defaults) for k, o in options.items() if with_defaults or k not in SET_BY_PROFILE}
    return {"type": "object", "additionalProperties": False, "properties": props}


def schema_error_message(error) -> str:
    """One line for a jsonschema error: where, what is wrong, what is allowed."""
    where = "/".join(str(p) for p in error.absolute_path) or "<top level>"
    schema = error.schema
    if error.validator == "additionalProperties":
        allowed = sorted(schema.get("properties", {}))
        extra = sorted(set(error.instance) - set(allowed))
        hint = f"; allowed keys: {', '.join(allowed)}" if allowed else ""
        return f"config error at {where}: unknown key(s) {', '.join(map(repr, extra))}{hint}"
    if error.validator == "enum":
        return f"config error at {where}: {error.instance!r} is not allowed; valid choices: {', '.join(map(str, error.validator_value))}"
    expected = schema.get("description", "")
    return f"config error at {where}: {error.message}" + (f" ({expected})" if expected else "")


def strict_validator(schema: dict):
    """A Draft 2020-12 validator whose "integer" is a Python int (JSON Schema would take 4.0 and YAML's
    `true` is no count): the runner and the profile check types alike."""
    import jsonschema

    checker = jsonschema.Draft202012Validator.TYPE_CHECKER.redefine(
        "integer", lambda _, value: isinstance(value, int) and not isinstance(value, bool))
    return jsonschema.validators.extend(jsonschema.Draft202012Validator, type_checker=checker)(schema)


def _coerce_float(value: Any, schema: dict) -> Any:
    """PyYAML reads `5e-4` (no dot) as a string; accept it where a number is expected."""
    if "number" in (schema.get("type") if isinstance(schema.get("type"), list) else [schema.get("type")]) \
            and isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


def validate(config: Mapping[str, Any]) -> dict[str, Any]:
    """Check keys, types and choices (the generated schema), then the schedule's shape; return a copy."""
    options = all_options()
    unknown = sorted(set(config) - set(options))
    if unknown:
        raise ValueError(f"unknown config key(s) {', '.join(map(repr, unknown))}; valid keys: {', '.join(options)}")
    cfg = {**defaults(), **copy.deepcopy(dict(config))}
    for key, opt in options.items():
        cfg[key] = _coerce_float(cfg[key], opt.schema)
    if isinstance(cfg.get("early_stop"), dict) and "min_delta" in cfg["early_stop"]:
        cfg["early_stop"]["min_delta"] = _coerce_float(cfg["early_stop"]["min_delta"], {"type": "number"})
    errors = sorted(strict_validator(training_schema()).iter_errors(cfg), key=lambda e: list(e.path))
    if errors:
        raise ValueError(schema_error_message(errors[0]))
    if isinstance(cfg["iterations"], int):  # the one place an int becomes the per-level list
        cfg["iterations"] = [cfg["iterations"]] * cfg["levels"]
    _check_schedule(cfg)
    check_batches(cfg)
    cfg["early_stop"] = full_early_stop(cfg["early_stop"])
    return cfg


def full_early_stop(rule: dict | None) -> dict | None:
    """An `early_stop` rule with every field spelled out (the schema's defaults filled in), so a
    cell's written config says what it ran and changes when a default's meaning does."""
    if rule is None:
        return None
    fields = OPTIONS["early_stop"].schema["properties"]
    out = {k: copy.deepcopy(rule.get(k, spec.get("default"))) for k, spec in fields.items()}
    out["min_delta"] = float(out["min_delta"])
    return out


def _check_schedule(cfg: dict[str, Any]) -> None:
    """What one key's schema cannot say: lengths that depend on `levels`, pairs, combinations."""
    levels, its = cfg["levels"], cfg["iterations"]
    if len(its) != levels:
        raise ValueError(f"'iterations' must be a list of {levels} non-negative ints (one per level, coarse -> fine), got {its!r}")
    if sum(its) < 1:
        raise ValueError("'iterations' must sum to at least 1")
    if cfg["level_batches"] is not None and len(cfg["level_batches"]) != levels:
        raise ValueError(f"'level_batches' must be a list of {levels} positive ints (finest first), got {cfg['level_batches']!r}")
    if cfg["augment"] == "crops" and cfg["crop_size"] not in (None, cfg["image_size"]):
        raise ValueError("'augment: crops' keeps the training mesh: crop_size must be null or image_size "
                         "(a smaller crop_size is the single-scale `crops` strategy's cheaper variant)")
    for key in ("crop_scale", "crop_ratio"):
        if cfg[key][0] > cfg[key][1]:
            raise ValueError(f"{key!r} must be [low, high] with 0 < low <= high, got {cfg[key]!r}")


# --- the one bound on every batch ------------------------------------------------------------------------
BATCH_COPIES = 4  # float32 copies of its batch's images a training step holds at least: inputs, targets, the
# prediction and its gradient (the model's activations come on top, so the estimate is a lower bound)
FALLBACK_MEMORY = 64 << 30  # bytes, where the system does not say how much memory it has


def memory_bytes() -> int:
    """This machine's physical memory in bytes (FALLBACK_MEMORY where the system does not say)."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return FALLBACK_MEMORY


def batch_problem(key: str, images: int, channels: int, height: int, width: int,
                  memory: int | None = None) -> str | None:
    """The bound: None when `images` images of channels x height x width fit, else one line naming `key` and
    the estimate images x channels x H x W x 4 bytes x BATCH_COPIES against this machine's memory."""
    need = int(images) * channels * height * width * 4 * BATCH_COPIES
    limit = memory_bytes() if memory is None else memory
    if need <= limit:
        return None
    return (f"{key}: {images} images of {channels} x {height} x {width} need about {need / 1e9:,.1f} GB (images x "
            f"channels x H x W x 4 bytes x {BATCH_COPIES} copies), more than this machine's {limit / 1e9:,.1f} GB of "
            f"memory; give a smaller batch")


def _batches(cfg: Mapping[str, Any]) -> list[tuple[str, int, int]]:
    """(key, images, level) of every batch a config can draw, from the strategies' own arithmetic
    (`mfcbench.core.workunits`): the level batches on mesh j, sgd's single-scale batch ('matched' = their
    sum) on the finest mesh, and, when `phase_batch_growth` is given, the fmsgd/progressive phase batches."""
    full = {key: cfg.get(key, OPTIONS[key].default) for key in ("levels", "batch_size", "batch_growth")}
    full.update({key: cfg[key] for key in ("level_batches", "sgd_batch", "phase_batch_growth") if key in cfg})
    explicit = bool(cfg.get("level_batches"))
    names = [f"level_batches[{j}]" if explicit else "batch_size" if j == 0 else f"batch_size x batch_growth**{j}"
             for j in range(len(workunits.level_batches(full)))]
    out = [(key, n, j) for j, (key, n) in enumerate(zip(names, workunits.level_batches(full)))]
    single = "sgd_batch" if full.get("sgd_batch", "matched") != "matched" else \
        "sgd_batch (matched: the sum of the level batches)"
    out.append((single, workunits.single_scale_batch(full), 0))
    for r in range(1, len(names)) if cfg.get("phase_batch_growth") else ():
        out += [(f"{key} x phase_batch_growth**{r}", n, r + k)
                for k, (key, n) in enumerate(zip(names, workunits.phase_batches(full, r)))]
    return out


def batch_problems(cfg: Mapping[str, Any], channels: int = 1, mesh: tuple[int, int] | None = None) -> list[str]:
    """One line per batch of `cfg` that could not fit in memory (`batch_problem`), on its mesh: `mesh`
    (H, W) or image_size squared, halved per level. channels: the data's (1, the fewest, when unknown)."""
    side = cfg.get("image_size", OPTIONS["image_size"].default)
    height, width = mesh or (side, side)
    problems = (batch_problem(key, n, channels, max(1, height >> j), max(1, width >> j)) for key, n, j in _batches(cfg))
    return [p for p in problems if p]


def check_batches(cfg: Mapping[str, Any], channels: int = 1, mesh: tuple[int, int] | None = None) -> None:
    """Raise ValueError naming the first batch of `cfg` that could not fit in memory (`batch_problems`)."""
    problems = batch_problems(cfg, channels, mesh)
    if problems:
        raise ValueError(problems[0])


def parse_overrides(pairs: Iterable[str]) -> dict[str, Any]:
    """`key=value` strings (values parsed as YAML; `model.width=16` sets a nested key)."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"--set expects key=value, got {pair!r}")
        value = yaml.safe_load(raw)
        *parents, leaf = key.split(".")
        node = out
        for p in parents:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise ValueError(f"--set {pair!r}: {p!r} is not a mapping")
        node[leaf] = value
    return out


def merge(base: Mapping[str, Any], update: Mapping[str, Any] | None) -> dict:
    """A new dict: mappings merge key by key, anything else (lists included) is replaced."""
    out = copy.deepcopy(dict(base))
    for key, value in (update or {}).items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def load_yaml(path: str | Path) -> dict[str, Any]:
    data = yaml.safe_load(Path(path).read_text()) or {}
    if not isinstance(data, dict):
        raise ValueError(f"config file {path} must hold a mapping of options, got {type(data).__name__}")
    return data


def resolve(config: Mapping[str, Any] | str | Path | None = None, overrides: Iterable[str] | Mapping = ()) -> dict[str, Any]:
    """Defaults <- config (dict or YAML path) <- overrides; validated."""
    if config is None:
        base: dict[str, Any] = {}
    elif isinstance(config, (str, Path)):
        base = load_yaml(config)
    else:
        base = copy.deepcopy(dict(config))
    extra = overrides if isinstance(overrides, Mapping) else parse_overrides(overrides)
    return validate(merge(base, extra))


def config_hash(config: Mapping[str, Any]) -> str:
    """sha256 of the canonical JSON of a resolved config."""
    text = json.dumps(config, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()
