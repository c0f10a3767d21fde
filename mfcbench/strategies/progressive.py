"""Progressive resizing: plain SGD at each phase's mesh, coarse to fine, on fmsgd's iteration
schedule, with no telescoping correction. Not in the paper; the baseline a practitioner would try.

Batch: "matched" (sgd_batch default) = the images an fmsgd step of the same phase sees, so the two
differ only in the correction terms; an int `sgd_batch` uses that batch in every phase."""

from __future__ import annotations

from ..core.workunits import phase_batches
from . import STRATEGIES
from .base import Draw, Phase, Strategy
from .fmsgd import PHASED_OPTIONS
from .sgd import SGD_OPTIONS


@STRATEGIES.register("progressive")
class Progressive(Strategy):
    name = "progressive"
    phased = True
    options = {**SGD_OPTIONS, **PHASED_OPTIONS}

    def phases(self) -> list[Phase]:
        fixed = self.config.get("sgd_batch", "matched")
        out = []
        for level, its in self.phase_iterations():
            n = sum(phase_batches(self.config, level)) if fixed == "matched" else int(fixed)
            out.append(Phase(level, its, (Draw(n, (level,)),)))
        return out
