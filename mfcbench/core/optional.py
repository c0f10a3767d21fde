"""Optional dependencies: a module that an extra of pyproject.toml brings names that extra when missing.

`require("fvcore.nn")` imports and returns a module, or raises ModuleNotFoundError saying which
extra installs it (``pip install 'mfcbench[lib]'``); `explain(error)` turns any ModuleNotFoundError
of such a module into that message (the command line and `mfcbench.<name>` use it for the imports at
the top of a module). The base install (numpy, pyyaml, tqdm, jsonschema) is never optional.

The extras (README, "Install"): `lib` the library (layer, loss, `fit`, FLOPs, metrics), `harness`
the pipeline, its reports and the embedded datasets, `paper` the experiments built on another
project's model. tests/core/test_optional.py checks `EXTRAS` against pyproject.toml.
"""

from __future__ import annotations

import importlib
from types import ModuleType

#: top-level import name -> (distribution, extra that installs it)
EXTRAS: dict[str, tuple[str, str]] = {
    "torch": ("torch", "lib"),
    "torchvision": ("torchvision", "lib"),
    "PIL": ("pillow", "lib"),  # through torchvision
    "fvcore": ("fvcore", "lib"),
    "torchmetrics": ("torchmetrics", "lib"),
    "snakemake": ("snakemake", "harness"),
    "snakemake_executor_plugin_slurm": ("snakemake-executor-plugin-slurm", "harness"),
    "dvc": ("dvc", "harness"),
    "pandas": ("pandas", "harness"),
    "seaborn": ("seaborn", "harness"),
    "matplotlib": ("matplotlib", "harness"),
    "rich": ("rich", "harness"),
    "scipy": ("scipy", "harness"),
    "statsmodels": ("statsmodels", "harness"),
    "skimage": ("scikit-image", "harness"),
    "sklearn": ("scikit-learn", "harness"),
    "segment_anything": ("segment-anything", "paper"),
    "diffusers": ("diffusers", "paper"),
    "neuralop": ("neuraloperator", "paper"),
}

#: what each extra is for, in the message
PURPOSE = {
    "lib": "the library (layer, loss, fit, FLOPs, metrics)",
    "harness": "the pipeline, its reports and the embedded datasets",
    "paper": "the experiments built on SAM, diffusers and neuraloperator",
}


def install_hint(extra: str) -> str:
    return f"pip install 'mfcbench[{extra}]'  ({PURPOSE.get(extra, extra)}; or 'mfcbench[all]')"


def explain(error: ModuleNotFoundError, extra: str | None = None) -> ModuleNotFoundError | None:
    """A ModuleNotFoundError naming the extra that installs `error.name`, or None when no extra does.

    `extra` names the extra of the module that was asked for: a module missing beneath it (a
    dependency of that package) is then blamed on the same extra.
    """
    name = error.name or ""
    if "mfcbench[" in str(error):
        return error
    top = name.partition(".")[0]
    if top in EXTRAS:
        distribution, extra = EXTRAS[top]
    elif extra is not None:
        distribution = top
    else:
        return None
    message = f"No module named {name!r}: {distribution} comes with the '{extra}' extra: {install_hint(extra)}"
    return ModuleNotFoundError(message, name=name)


def require(module: str, extra: str | None = None) -> ModuleType:
    """Import `module` (dotted names allowed) and return it; when it is missing, raise
    ModuleNotFoundError naming the extra that installs it (`extra`, else the one in `EXTRAS`)."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as error:
        better = explain(error, extra or EXTRAS.get(module.partition(".")[0], (None, None))[1])
        if better is None or better is error:
            raise
        raise better from error
