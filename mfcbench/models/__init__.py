"""Model registry: every architecture is built by name.

A builder has the signature `build(in_channels, out_channels, *, cond, upscale, **options) -> nn.Module`
and the module's forward is `forward(x, cond=None)`, where `cond` is a (B,) tensor (the noise
level t for denoising) or None. Modules expose `upscale` (1 or 2) as an attribute.
Builders live in sibling modules and register themselves with `@MODELS.register("name")`.
"""

from __future__ import annotations

from ..core.registry import Registry

MODELS: Registry = Registry("model")


def build_model(name: str, in_channels: int = 3, out_channels: int = 3, **options):
    """Build a registered model by name; unknown names list the valid choices."""
    _load_all()
    return MODELS.get(name)(in_channels, out_channels, **options)


def model_names() -> list[str]:
    _load_all()
    return MODELS.names()


def _load_all() -> None:
    """Import the modules that register builders (kept lazy so `import mfcbench` stays cheap)."""
    import importlib
    import pkgutil

    for info in pkgutil.iter_modules(__path__):
        if not info.name.startswith("_"):
            importlib.import_module(f"{__name__}.{info.name}")
