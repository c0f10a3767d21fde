"""Work units: App. C's closed forms, the schedule closed form, and the executed counter agree."""

from __future__ import annotations

from fractions import Fraction

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from mfcbench.cli import wu as wu_cli
from mfcbench.core.workunits import WorkCounter, schedule_wu, wu_fmsgd, wu_msgd, wu_sgd
from mfcbench.strategies import build_strategy, strategy_names
from mfcbench.tasks.base import Batch, Task
from mfcbench.train.config import resolve


class TinyNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 1, 3, padding=1)

    def forward(self, x, cond=None):
        return self.conv(x)


class Identity(Task):
    def make_batch(self, images, generator):
        return Batch(images + 0.1 * torch.randn(images.shape, generator=generator), images)

    def loss(self, prediction, batch):
        return F.mse_loss(prediction, batch.targets)


class Sampler:
    def __init__(self, pool, task):
        self.pool, self.task, self.gen = pool, task, torch.Generator().manual_seed(0)

    def generator(self, purpose):
        return self.gen

    def images(self, n):
        return self.pool[torch.randint(len(self.pool), (n,), generator=self.gen)]

    def batch(self, images):
        return self.task.make_batch(images, self.gen)


def cfg(**kw):
    """The runner's validated defaults on App. C's shape: 4 levels, N0 = 1, I = 8/4/2/1."""
    return resolve({"levels": 4, "batch_size": 1, "iterations": [8, 4, 2, 1], "image_size": 16, **kw})


# --- closed forms (App. C) -----------------------------------------------------------------------
def test_appendix_c_closed_forms_match_table_4():
    n0, i = 4, 8000  # N0 * I = 32,000
    assert wu_sgd(n0, i) == 480_000
    assert wu_msgd(n0, i) == 74_000
    assert wu_fmsgd(n0, i) == 28_750
    assert wu_msgd(1, 1) == Fraction(37, 16) and wu_fmsgd(1, 1) == Fraction(115, 128) and wu_sgd(1, 1) == 15


def test_closed_forms_are_general_in_levels_and_growth():
    assert wu_sgd(3, 10, levels=1) == wu_msgd(3, 10, levels=1) == wu_fmsgd(3, 10, levels=1) == 30
    # L=2: N0 (1 + 1/4) + 2 N0 / 4 = 7/4 N0 per step; growth 1: N0 (1 + 1/4) + N0 / 4 = 3/2 N0
    assert wu_msgd(1, 1, levels=2) == Fraction(7, 4)
    assert wu_msgd(1, 1, levels=2, growth=1) == Fraction(3, 2)
    # fmsgd L=2: coarse phase I steps of 2 N0 / 4; fine phase I/2 steps of 7/4 N0
    assert wu_fmsgd(1, 8, levels=2) == Fraction(2, 4) * 8 + Fraction(7, 4) * 4


def test_schedule_closed_form_of_strategy_phases_equals_appendix_c():
    n0 = 4
    assert schedule_wu(build_strategy("sgd", cfg(batch_size=n0, iterations=[2000] * 4)).phases()) == 480_000
    assert schedule_wu(build_strategy("msgd", cfg(batch_size=n0, iterations=[2000] * 4)).phases()) == 74_000
    fm = build_strategy("fmsgd", cfg(batch_size=n0, iterations=[8000, 4000, 2000, 1000])).phases()
    assert schedule_wu(fm) == 28_750
    # the paper's Table 13 fmsgd schedule is a quarter of App. C's I = 8000
    quarter = build_strategy("fmsgd", cfg(batch_size=n0, iterations=[2000, 1000, 500, 250])).phases()
    assert schedule_wu(quarter) == Fraction(28_750, 4)


def test_wu_cli_prints_the_closed_forms(capsys):
    for name, expected in (("msgd", "74000"), ("sgd", "480000"), ("fmsgd", "28750")):
        assert wu_cli.main(["--strategy", name, "--levels", "4", "--batch", "4", "--iterations", "8000"]) == 0
        line = capsys.readouterr().out.splitlines()[1].split()
        assert line[0] == name and line[4] == expected
    assert wu_cli.main(["--strategy", "nope"]) == 2
    assert "valid choices" in capsys.readouterr().err


@pytest.mark.parametrize("name", strategy_names())
def test_executed_work_units_equal_the_closed_form(name):
    """App. C proportions (I_8h = 2 I_4h = 4 I_2h = 8 I_h; N_j = 2^j N0), tiny model, few steps."""
    torch.manual_seed(0)
    task, model = Identity({}), TinyNet()
    config = cfg(batch_size=1, iterations=[8, 4, 2, 1] if name in ("fmsgd", "progressive") else [4, 4, 4, 3],
                 crop_size=8 if name == "crops" else None)
    strategy = build_strategy(name, config)
    sampler, counter = Sampler(torch.rand(32, 1, 16, 16), task), WorkCounter(16 * 16)
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)
    for phase in strategy.phases():
        for _ in range(phase.iterations):
            opt.zero_grad()
            loss = strategy.loss(model, task, phase, sampler, counter)
            assert torch.isfinite(loss)
            loss.backward()
            assert model.conv.weight.grad is not None
            opt.step()
    assert counter.total == schedule_wu(strategy.phases())
    if name == "fmsgd":
        assert counter.total == wu_fmsgd(1, 8)
    if name == "msgd":
        assert counter.total == wu_msgd(1, 15)


def test_work_counter_round_trips_through_state_dict():
    c = WorkCounter(256)
    c.add(torch.zeros(3, 1, 8, 8))
    d = WorkCounter(1)
    d.load_state_dict(c.state_dict())
    assert d.total == Fraction(3, 4) and d.value == 0.75
    with pytest.raises(ValueError):
        WorkCounter(0)
