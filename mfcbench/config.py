"""Cell-config defaults and validation: one table is the documentation of every training option.

A config is a flat dict (plus the free-form `model`, `task_options` and `early_stop` dicts).
`resolve()` fills defaults, applies `--set key=value` overrides and checks every key and type
before any training starts, so a typo fails in a second instead of after an hour.
"""

from __future__ import annotations

import copy
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

import yaml


@dataclass(frozen=True)
class Option:
    default: Any
    types: tuple[type, ...]
    help: str
    choices: tuple[Any, ...] | None = None


# Paper defaults (Table 13 / App. C) unless noted; "authors' code" marks where their code differs.
OPTIONS: dict[str, Option] = {
    "image_size": Option(64, (int,), "finest-mesh side length of the training images"),
    "levels": Option(4, (int,), "number of meshes L (level 0 finest, level L-1 coarsest)"),
    "batch_size": Option(4, (int,), "N0: the batch at the finest level of a multiscale step"),
    "batch_growth": Option(2, (int, float), "N_j = N0 * batch_growth**j (App. C uses 2)"),
    "level_batches": Option(None, (list, type(None)), "explicit N_j list, finest first (overrides batch_growth)"),
    "sgd_batch": Option("matched", (str, int), "'matched' = sum of the msgd level batches (App. C), or an int"),
    "iterations": Option([2000, 2000, 2000, 2000], (list,), "per-level iterations, coarse -> fine"),
    "phase_batch_growth": Option(2, (int, float), "fmsgd phase r batch N0 * growth**r (App. C eq. 48)"),
    "optimizer_state": Option("carry", (str,), "fmsgd/progressive: keep or reset Adam state per phase", ("carry", "reset")),
    "restriction": Option("pool", (str,), "restriction operator", ("pool", "bilinear", "nearest")),
    "optimizer": Option("adam", (str,), "optimizer", ("adam", "adamw", "sgd")),
    "lr": Option(5e-4, (int, float), "learning rate (Table 13)"),
    "weight_decay": Option(0.0, (int, float), "weight decay"),
    "momentum": Option(0.9, (int, float), "momentum (optimizer sgd only)"),
    "lr_schedule": Option("constant", (str,), "constant (paper) or cosine over all iterations (authors' code)", ("constant", "cosine")),
    "val_size": Option(512, (int,), "images in the fixed validation batch"),
    "val_every": Option(500, (int,), "validate every this many iterations (and at the end)"),
    "checkpoint_every": Option(500, (int,), "checkpoint every this many iterations (and at phase ends)"),
    "early_stop": Option(None, (dict, type(None)), "{patience, min_delta} on the headline val metric"),
    "augment": Option("none", (str,), "clean-image augmentation for any strategy: none | crops (RandomResizedCrop, App. D.8)",
                      ("none", "crops")),
    "crop_size": Option(None, (int, type(None)), "crops: output side of RandomResizedCrop (null = image_size)"),
    "crop_scale": Option([0.08, 1.0], (list,), "crops: area fraction range (torchvision default)"),
    "crop_ratio": Option([0.75, 4 / 3], (list,), "crops: aspect-ratio range (torchvision default)"),
    "model": Option({}, (dict,), "options passed to build_model"),
    "task_options": Option({}, (dict,), "options passed to the task"),
    "data_root": Option("data", (str,), "root of the prepared datasets"),
    "threads": Option(None, (int, type(None)), "torch CPU threads (null = torch's default)"),
}

EARLY_STOP_KEYS = {"patience": (int,), "min_delta": (int, float)}


def defaults() -> dict[str, Any]:
    return {name: copy.deepcopy(opt.default) for name, opt in OPTIONS.items()}


def _type_name(types: Iterable[type]) -> str:
    return " or ".join("null" if t is type(None) else t.__name__ for t in types)


def _check_type(key: str, value: Any, types: tuple[type, ...]) -> None:
    # bool is an int subclass; a YAML `true` must not pass as an iteration count.
    if isinstance(value, bool) or not isinstance(value, types):
        raise ValueError(f"config key {key!r} must be {_type_name(types)}, got {value!r}")


def _coerce_float(value: Any, types: tuple[type, ...]) -> Any:
    """PyYAML reads `5e-4` (no dot) as a string; accept it where a float is expected."""
    if float in types and isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


def validate(config: Mapping[str, Any]) -> dict[str, Any]:
    """Check keys, types, choices and the schedule's shape; return a plain dict copy."""
    unknown = sorted(set(config) - set(OPTIONS))
    if unknown:
        raise ValueError(f"unknown config key(s) {', '.join(map(repr, unknown))}; valid keys: {', '.join(OPTIONS)}")
    cfg = {**defaults(), **copy.deepcopy(dict(config))}
    for key, opt in OPTIONS.items():
        cfg[key] = _coerce_float(cfg[key], opt.types)
        _check_type(key, cfg[key], opt.types)
        if opt.choices and cfg[key] not in opt.choices:
            raise ValueError(f"config key {key!r} = {cfg[key]!r}; valid choices: {', '.join(opt.choices)}")
    for key in ("image_size", "levels", "batch_size", "val_size", "val_every", "checkpoint_every"):
        if cfg[key] < 1:
            raise ValueError(f"config key {key!r} must be >= 1, got {cfg[key]}")
    for key in ("batch_growth", "phase_batch_growth"):
        if cfg[key] < 1:
            raise ValueError(f"config key {key!r} must be >= 1 (batches grow toward coarse meshes), got {cfg[key]}")
    levels = cfg["levels"]
    its = cfg["iterations"]
    if len(its) != levels or any(isinstance(i, bool) or not isinstance(i, int) or i < 0 for i in its):
        raise ValueError(f"'iterations' must be a list of {levels} non-negative ints (one per level, coarse -> fine), got {its!r}")
    if sum(its) < 1:
        raise ValueError("'iterations' must sum to at least 1")
    if cfg["level_batches"] is not None:
        lb = cfg["level_batches"]
        if len(lb) != levels or any(isinstance(b, bool) or not isinstance(b, int) or b < 1 for b in lb):
            raise ValueError(f"'level_batches' must be a list of {levels} positive ints (finest first), got {lb!r}")
    if isinstance(cfg["sgd_batch"], str) and cfg["sgd_batch"] != "matched":
        raise ValueError(f"'sgd_batch' must be 'matched' or a positive int, got {cfg['sgd_batch']!r}")
    if isinstance(cfg["sgd_batch"], int) and cfg["sgd_batch"] < 1:
        raise ValueError(f"'sgd_batch' must be a positive int, got {cfg['sgd_batch']}")
    if cfg["crop_size"] is not None and cfg["crop_size"] < 1:
        raise ValueError(f"'crop_size' must be positive, got {cfg['crop_size']}")
    if cfg["augment"] == "crops" and cfg["crop_size"] not in (None, cfg["image_size"]):
        raise ValueError("'augment: crops' keeps the training mesh: crop_size must be null or image_size "
                         "(a smaller crop_size is the single-scale `crops` strategy's cheaper variant)")
    for key in ("crop_scale", "crop_ratio"):
        pair = cfg[key]
        if len(pair) != 2 or not all(isinstance(v, (int, float)) and v > 0 for v in pair) or pair[0] > pair[1]:
            raise ValueError(f"{key!r} must be [low, high] with 0 < low <= high, got {pair!r}")
    if cfg["early_stop"] is not None:
        es = cfg["early_stop"]
        bad = sorted(set(es) - set(EARLY_STOP_KEYS))
        if bad or "patience" not in es:
            raise ValueError(f"'early_stop' takes keys {', '.join(EARLY_STOP_KEYS)} (patience required), got {sorted(es)}")
        for k, types in EARLY_STOP_KEYS.items():
            if k in es:
                es[k] = _coerce_float(es[k], types)
                _check_type(f"early_stop.{k}", es[k], types)
        if es["patience"] < 1:
            raise ValueError("'early_stop.patience' must be >= 1")
        cfg["early_stop"] = {"patience": es["patience"], "min_delta": float(es.get("min_delta", 0.0))}
    if cfg["threads"] is not None and cfg["threads"] < 1:
        raise ValueError("'threads' must be >= 1 or null")
    return cfg


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


def _merge(base: dict, extra: Mapping) -> dict:
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(base.get(key), dict):
            base[key] = _merge(dict(base[key]), value)
        else:
            base[key] = value
    return base


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
    return validate(_merge(base, extra))


def config_hash(config: Mapping[str, Any]) -> str:
    """sha256 of the canonical JSON of a resolved config."""
    text = json.dumps(config, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()
