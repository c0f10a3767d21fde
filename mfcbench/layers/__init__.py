"""Layers shared by all models."""

from .mfc import BOUNDARIES, MeshFreeConv2d, mesh_free_filter, mesh_free_symbol, symbol_cache, wavenumbers

__all__ = ["BOUNDARIES", "MeshFreeConv2d", "mesh_free_filter", "mesh_free_symbol", "symbol_cache", "wavenumbers"]
