"""The lr schedule's position: each Full-Multiscale level restarts `cosine`; `cosine_run` continues one cosine."""

import math
from types import SimpleNamespace

import pytest

from mfcbench.train.parts import learning_rate
from mfcbench.train.runner import schedule_position

PHASES = [SimpleNamespace(iterations=8), SimpleNamespace(iterations=4), SimpleNamespace(iterations=2)]


@pytest.mark.parametrize(("schedule", "expected"), [("constant", (1, 4)), ("cosine", (1, 4)), ("cosine_run", (9, 14))])
def test_the_schedule_position_of_a_later_phase(schedule, expected):
    run = SimpleNamespace(cfg={"lr_schedule": schedule}, phases=PHASES)
    assert schedule_position(run, SimpleNamespace(phase=1, phase_iter=1)) == expected


def test_cosine_run_starts_the_second_level_where_the_first_left_off():
    cfg = {"lr_schedule": "cosine_run", "lr": 1.0}
    run = SimpleNamespace(cfg=cfg, phases=PHASES)
    lr = learning_rate(cfg, *schedule_position(run, SimpleNamespace(phase=1, phase_iter=0)))
    assert lr == pytest.approx(0.5 * (1 + math.cos(math.pi * 8 / 14)))
    restart = {"lr_schedule": "cosine", "lr": 1.0}
    assert learning_rate(restart, *schedule_position(SimpleNamespace(cfg=restart, phases=PHASES),
                                                     SimpleNamespace(phase=1, phase_iter=0))) == 1.0
