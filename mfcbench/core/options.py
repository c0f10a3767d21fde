"""`Option`: one training option, declared once, with its default, its JSON-schema type and its help.

The runner's common options live in `mfcbench.train.config.OPTIONS`; a strategy declares the options
only it reads on its class (`Strategy.options`, like benchopt's `parameters`). From these one
source come the defaults, the runner's validation and the profile schema's training keys
(`mfcbench.train.config.training_schema`, injected into mfcbench/pipeline/config.schema.yaml).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Option:
    default: Any
    schema: dict = field(hash=False)  # JSON-schema fragment of the value: type, minimum, enum, items ...
    help: str = ""

    def json_schema(self, with_default: bool = True) -> dict:
        out = {**self.schema, "description": self.help}
        if with_default:
            out["default"] = self.default
        return out


INT_MIN1 = {"type": "integer", "minimum": 1}
NUMBER_MIN1 = {"type": "number", "minimum": 1}
