"""The one self-loading registry: a registry made with `autoload=` imports its package's modules before
its first lookup, once, skipping private and listed helper modules; the four registries use it."""

import sys
import textwrap

import pytest

from mfcbench.core.registry import Registry, UnknownNameError


@pytest.fixture
def plugin_package(tmp_path, monkeypatch):
    """A package `h2_plugins` whose modules `alpha` and `beta` register into `h2_plugins.REG`."""
    root = tmp_path / "h2_plugins"
    root.mkdir()
    (root / "__init__.py").write_text(textwrap.dedent("""
        from mfcbench.core.registry import Registry
        REG = Registry("plugin", autoload=__name__, skip=("helper",))
        IMPORTS = []
    """))
    for name in ("alpha", "beta"):
        (root / f"{name}.py").write_text(f"from . import REG, IMPORTS\nIMPORTS.append({name!r})\n"
                                         f"REG.register({name!r})(object)\n")
    (root / "helper.py").write_text("raise AssertionError('a skipped helper is never imported')\n")
    (root / "_private.py").write_text("raise AssertionError('a private module is never imported')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield
    for module in [m for m in sys.modules if m == "h2_plugins" or m.startswith("h2_plugins.")]:
        del sys.modules[module]


def test_autoload_fills_the_registry_once_before_the_first_lookup(plugin_package):
    import h2_plugins

    assert h2_plugins.IMPORTS == []  # importing the package imports no builder module
    assert "beta" in h2_plugins.REG
    assert h2_plugins.REG.names() == ["alpha", "beta"] and list(h2_plugins.REG) == ["alpha", "beta"]
    assert h2_plugins.REG.get("alpha") is object
    assert sorted(h2_plugins.IMPORTS) == ["alpha", "beta"]  # each module imported once
    with pytest.raises(UnknownNameError, match="valid choices: alpha, beta"):
        h2_plugins.REG.get("gamma")
    with h2_plugins.REG.temporarily("gamma", int):
        assert h2_plugins.REG.get("gamma") is int
    assert "gamma" not in h2_plugins.REG


def test_a_plain_registry_loads_nothing():
    registry = Registry("thing")
    registry.register("a")(1)
    assert registry.names() == ["a"]


def test_the_four_registries_fill_themselves():
    from mfcbench.data.base import DATASETS
    from mfcbench.models import MODELS
    from mfcbench.strategies import STRATEGIES
    from mfcbench.tasks import TASKS

    assert {"sgd", "msgd", "fmsgd"} <= set(STRATEGIES.names())
    assert {"denoise", "superres"} <= set(TASKS.names())
    assert "fields" in DATASETS
    assert "mfc_resnet" in MODELS
