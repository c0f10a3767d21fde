"""A tiny name -> builder registry, so a new model/strategy/task/dataset is one file plus one line.

A registry made with `autoload="package"` fills itself: before its first lookup (`get`, `names`, `in`,
iteration) it imports every module of the package (except private ones and those in `skip`), each of
which registers its builders with `@REGISTRY.register("name")`, then the entry points of the group
`entry_points`, if given. Importing the package therefore stays cheap, and no caller loads by hand.
"""

from __future__ import annotations

import contextlib
from typing import Callable, Dict, Generic, Iterable, Iterator, TypeVar

T = TypeVar("T")


class UnknownNameError(ValueError):
    """Raised for a name that is not registered; the message lists the valid choices."""


class Registry(Generic[T]):
    """Maps names to builders (classes or functions). Lookup errors list the valid names.

    kind: what is registered, for messages ("model", "strategy", ...).
    autoload: the package whose modules register themselves (see the module docstring); None: the
        builders are registered by whoever imports them.
    skip: module names of that package that register nothing (helpers), left unimported.
    entry_points: an entry-point group whose entry points are loaded after the package's modules.
    """

    def __init__(self, kind: str, *, autoload: str | None = None, skip: Iterable[str] = (),
                 entry_points: str | None = None):
        self.kind = kind
        self._items: Dict[str, T] = {}
        self._autoload, self._skip, self._entry_points = autoload, frozenset(skip), entry_points
        self._loaded = autoload is None

    def load(self) -> None:
        """Import the autoload package's modules and the entry points, once (a failed import is retried
        at the next lookup)."""
        if self._loaded:
            return
        import importlib
        import pkgutil
        from importlib.metadata import entry_points

        package = importlib.import_module(self._autoload)
        for info in pkgutil.iter_modules(package.__path__):
            if not info.name.startswith("_") and info.name not in self._skip:
                importlib.import_module(f"{self._autoload}.{info.name}")
        if self._entry_points is not None:
            for point in entry_points(group=self._entry_points):
                point.load()
        self._loaded = True

    def register(self, name: str) -> Callable[[T], T]:
        def decorator(obj: T) -> T:
            if name in self._items:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._items[name] = obj
            return obj

        return decorator

    def unregister(self, name: str) -> None:
        self._items.pop(name, None)

    @contextlib.contextmanager
    def temporarily(self, name: str, obj: T) -> Iterator[T]:
        """Register `obj` for the duration of a block (tests), then remove it."""
        self.load()  # on top of the self-registered builders, so loading them later cannot clash
        self.register(name)(obj)
        try:
            yield obj
        finally:
            self.unregister(name)

    def get(self, name: str) -> T:
        self.load()
        try:
            return self._items[name]
        except KeyError:
            raise UnknownNameError(
                f"unknown {self.kind} {name!r}; valid choices: {', '.join(self.names())}"
            ) from None

    def names(self) -> list[str]:
        self.load()
        return sorted(self._items)

    def __contains__(self, name: str) -> bool:
        self.load()
        return name in self._items

    def __iter__(self) -> Iterable[str]:
        return iter(self.names())
