"""mfcbench: mesh-free convolutions and multiscale training, as a library and as the harness that
reproduces 'Multiscale Training of Convolutional Neural Networks'.

    import mfcbench as mfc

    layer = mfc.MeshFreeConv2d(16, 32)                   # a drop-in for nn.Conv2d(16, 32, k, padding=k//2)
    net = mfc.to_mfc(torchvision_model)                   # every k > 1 Conv2d -> MeshFreeConv2d
    loss, wu = mfc.multiscale_loss(net, x, y, F.mse_loss, levels=3)   # Algorithm 1 on your batch
    for level, iterations, batch_sizes in mfc.fmsgd_schedule(levels=3, iterations=400, batch_size=8): ...
    net, result = mfc.fit(net, (x_train, y_train), (x_val, y_val), strategy="fmsgd")   # result["metrics"]
    print(mfc.count_flops(net, (x[:1],)).table())

The public names (docs/library.md walks through them; each has a docstring for every argument):

- layers: `MeshFreeConv2d`, `mesh_free_filter`, `symbol_cache`, `wavenumbers`, `BOUNDARIES`
- models: `to_mfc`, `register_model`, `build_model`, `model_names`, `MODELS`
- training: `multiscale_loss`, `fmsgd_schedule`, `split_batch`, `fit`, `restrict`
- work units: `WorkCounter`, `wu_sgd`, `wu_msgd`, `wu_fmsgd`
- FLOPs: `count_flops` (its result has `.table()`, `.forward`, `.training_step`), `FlopCount`
- registries: `MODELS`, `STRATEGIES`, `TASKS`, `DATASETS`, `RESTRICTIONS`
- `DEFAULTS`: the one set of defaults every public function above uses.

Importing the package is light: the names are loaded on first use (PEP 562 module `__getattr__`),
so `import mfcbench` imports neither torch nor the pipeline nor plotting. They need the `lib` extra
(`pip install 'mfcbench[lib]'`: torch, torchvision, fvcore, torchmetrics); a missing package names
the extra that brings it.

Defaults. The public functions share `DEFAULTS`: pointwise channel mixing (a trainable 1x1 map,
then one 7-parameter PDE filter per output channel: O(C n log n), Lemma 4's structure), kernels
initialised 0.5-1.5 pixels wide at a 64-pixel mesh, periodic boundaries (the paper's FFT), average
pooling as restriction, 4 levels, N0 = 4 images in the finest term (`fit` picks its batch per
strategy), 1000 steps on the coarsest level of a Full-Multiscale schedule (halved per finer
level). The registered paper models keep their own, each stated in its
builder: `mfc_resnet`, `mfc_unet`, `mfc_unet5` and `blur_mfc` use full mixing (7 parameters per
channel pair, the count Table 13 implies); `mfc_espcn`, `mfc_srresnet`, `mfc_resnet18` and
`mfc_resnet50` use pointwise mixing.
"""

import importlib as _importlib
from typing import Any as _Any

# pyproject.toml's version (tests/test_library.py keeps the two equal); `python -m mfcbench --version`
# prints the installed distribution's, and this one where none is installed.
__version__ = "0.1.0"

# The one set of defaults of the public API (the functions below spell them out as their own
# keyword defaults; tests/test_library.py checks that they agree with this table).
DEFAULTS: dict[str, _Any] = {
    "mixing": "pointwise",
    "init_resolution": 64,
    "boundary": "periodic",
    "restriction": "pool",
    "levels": 4,
    "batch_size": 4,
    "iterations": 1000,
}

# public name -> module that defines it (relative to this package)
_LAZY: dict[str, str] = {
    **dict.fromkeys(("MeshFreeConv2d", "mesh_free_filter", "symbol_cache", "wavenumbers", "BOUNDARIES"),
                    "layers"),
    "to_mfc": "models.convert",
    **dict.fromkeys(("MODELS", "register_model", "build_model", "model_names"), "models"),
    **dict.fromkeys(("multiscale_loss", "fmsgd_schedule", "split_batch"), "strategies.functional"),
    "STRATEGIES": "strategies",
    "TASKS": "tasks",
    "DATASETS": "data.base",
    **dict.fromkeys(("restrict", "RESTRICTIONS"), "core.restrict"),
    **dict.fromkeys(("WorkCounter", "wu_sgd", "wu_msgd", "wu_fmsgd"), "core.workunits"),
    **dict.fromkeys(("count_flops", "FlopCount"), "measure.flops"),
    "fit": "train.fit",
}

__all__ = sorted(["DEFAULTS", "__version__", *_LAZY])


def __getattr__(name: str) -> _Any:
    """Load a public name on first use (PEP 562) and keep it in the module's namespace; a package of
    an extra that is missing is named with the extra to install."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'mfcbench' has no attribute {name!r}; public names: {', '.join(__all__)}")
    try:
        value = getattr(_importlib.import_module(f"{__name__}.{module}"), name)
    except ModuleNotFoundError as error:
        better = _importlib.import_module(f"{__name__}.core.optional").explain(error)
        if better is None or better is error:
            raise
        raise better from error
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    """The public names and the module's own dunders (`__version__`, `__doc__`, ...), not its helpers."""
    return sorted(set(__all__) | {n for n in globals() if n.startswith("__") and n.endswith("__")})
