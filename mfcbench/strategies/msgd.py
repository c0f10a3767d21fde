"""Multiscale-SGD (Algorithm 1): the telescoping loss over L meshes, an independent batch
N_j = N0 * growth**j per level, one backward per step, sum(iterations) steps."""

from __future__ import annotations

from ..core.workunits import level_batches
from . import STRATEGIES
from .base import Phase, Strategy, telescoping_draws


@STRATEGIES.register("msgd")
class MSGD(Strategy):
    name = "msgd"

    def phases(self) -> list[Phase]:
        draws = telescoping_draws(level_batches(self.config), first_level=0)
        return [Phase(0, its, draws) for _, its in self.phase_iterations()]
