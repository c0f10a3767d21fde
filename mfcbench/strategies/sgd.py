"""SGD: single scale on the finest mesh. Its batch is "matched" by default, the sum of the msgd
level batches (App. C: 15 N0 for 4 levels, "seeing an equivalent amount of data"), or an int."""

from __future__ import annotations

from ..core.options import Option
from ..core.workunits import single_scale_batch
from . import STRATEGIES
from .base import Draw, Phase, Strategy

SGD_OPTIONS = {
    "sgd_batch": Option("matched", {"oneOf": [{"const": "matched"}, {"type": "integer", "minimum": 1}]},
                        "'matched' = sum of the msgd level batches (App. C), or an int"),
}


@STRATEGIES.register("sgd")
class SGD(Strategy):
    name = "sgd"
    options = SGD_OPTIONS

    def phases(self) -> list[Phase]:
        n = single_scale_batch(self.config)
        return [Phase(0, its, (Draw(n, (0,)),)) for _, its in self.phase_iterations()]
