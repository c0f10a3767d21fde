"""Full-Multiscale-SGD (Algorithm 2): coarse to fine. Phase r (finest mesh r, coarsest first) runs
Algorithm 1 over meshes r..L-1 for iterations[i] steps, warm-started from the previous phase, with
the phase batch N0 * phase_batch_growth**r (App. C eq. 48). `optimizer_state` carry|reset."""

from __future__ import annotations

from ..core.options import NUMBER_MIN1, Option
from ..core.workunits import phase_batches
from . import STRATEGIES
from .base import Phase, Strategy, telescoping_draws

PHASED_OPTIONS = {
    "phase_batch_growth": Option(2, NUMBER_MIN1, "fmsgd/progressive phase r batch N0 * growth**r (App. C eq. 48)"),
    "optimizer_state": Option("carry", {"enum": ["carry", "reset"]},
                              "fmsgd/progressive: keep or reset the optimizer state at each phase"),
}


@STRATEGIES.register("fmsgd")
class FMSGD(Strategy):
    name = "fmsgd"
    options = PHASED_OPTIONS
    phased = True

    def phases(self) -> list[Phase]:
        return [Phase(level, its, telescoping_draws(phase_batches(self.config, level), first_level=level))
                for level, its in self.phase_iterations()]
