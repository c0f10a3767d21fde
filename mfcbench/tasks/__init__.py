"""Task registry. A task owns its data transform (clean images -> model input/target), its loss
and its metrics. Register with `@TASKS.register("name")` in a sibling module.
"""

from __future__ import annotations

from ..core.registry import Registry
from .base import Batch, Task  # noqa: F401

TASKS: Registry = Registry("task", autoload=__name__, skip=("base",))


def build_task(name: str, options: dict | None = None, seed: int | None = None) -> Task:
    """Build a task; options a task lists in `seeded_options` default to the cell seed."""
    cls = TASKS.get(name)
    options = dict(options or {})
    if seed is not None:
        for key in getattr(cls, "seeded_options", ()):
            options.setdefault(key, int(seed))
    return cls(options)


def task_names() -> list[str]:
    return TASKS.names()
