"""Model registry: every architecture is built by name.

A builder has the signature `build(in_channels, out_channels, *, cond, upscale, **options) -> nn.Module`
and the module's forward is `forward(x, cond=None)`, where `cond` is a (B,) tensor (the noise
level t for denoising) or None. Modules expose `upscale` (1 or 2) as an attribute.
Builders live in sibling modules and register themselves with `@MODELS.register("name")`; user code
registers its own with `@register_model` (or an entry point in the group `mfcbench.models`).

`MODELS` fills itself on first use (`MODELS.names()`, `MODELS.get(name)`, `name in MODELS`): it imports
the builder modules and the entry points, and builds no model.

Unregistered code is named as `"package.module:function"` wherever a model name is taken (`build_model`,
`--arch`, a profile's `archs:`): the module is imported and the callable is used as a builder, with
the same signature as a registered one (a class whose `__init__` takes those arguments works too).
"""

from __future__ import annotations

from typing import Callable

from ..core.registry import Registry

ENTRY_POINT_GROUP = "mfcbench.models"


class ModelBuildError(RuntimeError):
    """A model's builder failed or returned no module; the message names the model."""


class _ModelRegistry(Registry):
    """The model `Registry` (self-loading: the builder modules, then the entry points), which also takes
    `"package.module:function"` for a builder that is not registered."""

    def get(self, name: str):
        if is_import_path(name):
            return import_builder(name)
        return super().get(name)

    def __contains__(self, name: str) -> bool:
        """A registered name, or a `module:function` that imports (`import_builder` says why not)."""
        if is_import_path(name):
            try:
                import_builder(name)
            except ValueError:
                return False
            return True
        return super().__contains__(name)


def is_import_path(name: str) -> bool:
    """`"package.module:function"`: a model given by where its builder lives, not by a registered name."""
    module, sep, attr = str(name).partition(":")
    return bool(sep and module and attr)


def import_builder(spec: str) -> Callable:
    """The builder named `"package.module:function"` (or `module:Class`, or `module:object.attribute`);
    a ValueError of one line names the module or attribute that is missing and what to check."""
    import importlib

    module_name, _, attr = spec.partition(":")
    try:
        obj = importlib.import_module(module_name)
    except ImportError as error:
        raise ValueError(f"model {spec!r}: cannot import module {module_name!r} ({error}); make it importable "
                         f"(installed, or its folder on PYTHONPATH)") from None
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise ValueError(f"model {spec!r}: module {module_name!r} has no attribute {attr!r}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise ValueError(f"model {spec!r}: {attr!r} is not callable (expected a builder "
                         f"`(in_channels, out_channels, *, cond=False, upscale=1, **options) -> nn.Module`)")
    return obj


def build_model(name: str, in_channels: int = 3, out_channels: int = 3, **options):
    """Build a registered model by name; unknown names list the valid choices.

    name: a registered model (`model_names()`) or `"package.module:function"` (imported, called alike);
    in_channels, out_channels: image channels in and out;
    options: passed to the builder (e.g. cond=True, upscale=2, width=0.5, mixing="full").

    A builder's error names the model: a ValueError (an option it cannot honour) or ImportError (a
    missing extra) keeps its type, any other is a ModelBuildError ("<name>: its builder raised ...");
    a builder that returns something other than a torch.nn.Module is a ModelBuildError too.
    """
    builder = MODELS.get(name)
    try:
        model = builder(in_channels, out_channels, **options)
    except ImportError:
        raise  # a missing extra: its message names the package and the extra to install
    except ValueError as error:
        if name in str(error):
            raise
        raise ValueError(f"{name}: {error}") from error
    except Exception as error:
        raise ModelBuildError(f"{name}: its builder raised {type(error).__name__}: {error}") from error
    import torch

    if not isinstance(model, torch.nn.Module):
        raise ModelBuildError(f"{name}: builder returned {type(model).__name__}, not a torch.nn.Module; "
                              f"return the model (an nn.Module whose forward is forward(x, cond=None))")
    return model


def model_names() -> list[str]:
    """Every registered model name, sorted (imports the builder modules; builds nothing)."""
    return MODELS.names()


def register_model(name: str | Callable | None = None):
    """Register a model builder, as timm's `register_model`: `@register_model` (the function's name)
    or `@register_model("my_net")`.

    name: the registry name, or the builder itself when used without parentheses.
    The builder is called as `builder(in_channels, out_channels, cond=..., upscale=..., **options)` and
    returns a module whose forward is `forward(x, cond=None)`; accept `cond` and `upscale` even if
    you ignore them (raise ValueError for a value you cannot honour). Registering a taken name raises
    ValueError. Installed packages can register builders without being imported by hand through an
    entry point in the group `mfcbench.models` (the entry point's module is imported on first lookup).
    """
    if callable(name):
        return MODELS.register(name.__name__)(name)

    def decorator(builder: Callable) -> Callable:
        return MODELS.register(name or builder.__name__)(builder)

    return decorator


MODELS: Registry = _ModelRegistry("model", autoload=__name__, entry_points=ENTRY_POINT_GROUP)
