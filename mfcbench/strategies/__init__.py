"""Training-strategy registry (sgd, msgd, fmsgd, crops, progressive). See base.py for the interface."""

from __future__ import annotations

from fractions import Fraction
from typing import Sequence

from ..core.registry import Registry
from ..core.workunits import Number, fmsgd_schedule, schedule_wu, wu_fmsgd, wu_msgd, wu_sgd

STRATEGIES: Registry = Registry("strategy", autoload=__name__, skip=("base",))


def build_strategy(name: str, config: dict):
    return STRATEGIES.get(name)(config)


def strategy_names() -> list[str]:
    return STRATEGIES.names()


PAPER_FORMS = {"sgd": wu_sgd, "msgd": wu_msgd}


def closed_form(strategy: str, n0: int, iterations: int | Sequence[int], levels: int,
                growth: Number = 2, phase_growth: Number = 2, **extra) -> Fraction:
    """Closed-form #WU of a strategy. An int `iterations` is App. C's I (total steps for sgd/msgd/
    crops; coarsest-phase steps for fmsgd/progressive, halved per finer phase); a list is the exact
    per-level schedule, coarse -> fine, priced through the strategy's own phases."""
    if strategy not in strategy_names():
        raise ValueError(f"unknown strategy {strategy!r}; valid choices: {', '.join(strategy_names())}")
    if isinstance(iterations, int):
        if strategy == "fmsgd" and not extra:
            return wu_fmsgd(n0, iterations, levels, growth, phase_growth)
        if strategy in PAPER_FORMS and not extra:
            return PAPER_FORMS[strategy](n0, iterations, levels, growth)
        phased = STRATEGIES.get(strategy).phased
        schedule = fmsgd_schedule(iterations, levels) if phased else [Fraction(iterations)] + [0] * (levels - 1)
    else:
        schedule = [Fraction(i) for i in iterations]
    return schedule_wu(build_strategy(strategy, schedule_config(levels, n0, schedule, growth, phase_growth,
                                                                **extra)).phases())


def schedule_config(levels: int, n0: int, iterations: Sequence[Number], growth: Number = 2,
                    phase_growth: Number = 2, **extra) -> dict:
    """The strategy config of a schedule outside a cell (closed forms, the DDPM experiment): `iterations`
    per level coarse -> fine, pool restriction, optimizer state carried across phases, `sgd_batch`
    matched; `extra` overrides any key."""
    return {"levels": levels, "batch_size": n0, "batch_growth": growth, "phase_batch_growth": phase_growth,
            "iterations": iterations, "level_batches": None, "sgd_batch": "matched", "restriction": "pool",
            "optimizer_state": "carry", **extra}
