"""Training-strategy registry (sgd, msgd, fmsgd, crops, progressive). See base.py for the interface."""

from __future__ import annotations

from ..registry import Registry

STRATEGIES: Registry = Registry("strategy")


def build_strategy(name: str, config: dict):
    _load_all()
    return STRATEGIES.get(name)(config)


def strategy_names() -> list[str]:
    _load_all()
    return STRATEGIES.names()


def _load_all() -> None:
    import importlib
    import pkgutil

    for info in pkgutil.iter_modules(__path__):
        if not info.name.startswith("_") and info.name != "base":
            importlib.import_module(f"{__name__}.{info.name}")
