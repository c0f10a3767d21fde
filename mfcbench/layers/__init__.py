"""Layers shared by all models: the mesh-free convolution (`mfc.py`: the layer; `functional.py`: the
filter and its symbol; `padding.py`: physical-width boundaries; `packed.py`: the packed FFT path;
`full.py`: full mixing and its symbol cache) and Lemma 4's layer (`lemma4.py`)."""

from .full import symbol_cache
from .functional import mesh_free_filter, mesh_free_symbol, wavenumbers
from .mfc import MeshFreeConv2d
from .padding import BOUNDARIES

__all__ = ["BOUNDARIES", "MeshFreeConv2d", "mesh_free_filter", "mesh_free_symbol", "symbol_cache", "wavenumbers"]
