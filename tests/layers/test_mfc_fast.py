"""Fast paths of the mesh-free convolution: the packed pointwise filter and the full-mixing
symbol cache must give the same numbers as the plain paths."""

import pytest
import torch
from torch.nn import functional as F

from mfcbench.layers import MeshFreeConv2d, full, symbol_cache, wavenumbers


def _rel(a, b):
    return ((a - b).abs().max() / b.abs().max().clamp_min(1e-30)).item()


def _outputs_and_grads(layer, x, **kwargs):
    out = layer(x, **kwargs) if kwargs else layer(x)
    weight = torch.randn(out.shape, dtype=out.dtype, generator=torch.Generator().manual_seed(1))
    params = [x, layer.log_tau, layer.chol, layer.gamma] + ([layer.mix.weight] if layer.mix is not None else [])
    return [out, *torch.autograd.grad((out * weight).sum(), params)]


@pytest.mark.parametrize("height,width,channels", [(8, 8, 4), (7, 9, 3), (6, 5, 5), (9, 6, 2), (12, 16, 1)])
def test_packed_pointwise_equals_rfft_path(height, width, channels):
    torch.manual_seed(0)
    layer = MeshFreeConv2d(channels, channels, init_resolution=4).double()
    with torch.no_grad():
        layer.gamma[..., 1:] *= 50  # make the odd (derivative) part of the symbol matter
    x = torch.randn(2, channels, height, width, dtype=torch.float64, requires_grad=True)
    results = {}
    for path in ("rfft", "packed"):
        layer.fft_path = path
        results[path] = _outputs_and_grads(layer, x)
    # output, grad x, grad log_tau (tau), grad chol (the 3 alpha entries), grad gamma (3), grad 1x1 mix
    for a, b in zip(results["packed"], results["rfft"]):
        assert _rel(a, b) < 1e-10


def test_packed_pointwise_float32_bench_like():
    torch.manual_seed(0)
    layer = MeshFreeConv2d(6, 7, init_resolution=32)
    x = torch.randn(2, 6, 32, 32, requires_grad=True)
    layer.fft_path = "rfft"
    ref = _outputs_and_grads(layer, x)
    layer.fft_path = "packed"
    for a, b in zip(_outputs_and_grads(layer, x), ref):
        assert _rel(a, b) < 1e-5


def test_unknown_fft_path_raises():
    layer = MeshFreeConv2d(2, 2, fft_path="fft")
    with pytest.raises(ValueError, match="fft_path"):
        layer(torch.randn(1, 2, 8, 8))


def _symbol_tables(layer, height, width):
    ky, kx = wavenumbers(height, width, dtype=torch.float64)
    with torch.no_grad():
        return full.build_pair_symbol(layer.tau(), layer.alpha(), layer.gamma, ky, kx), ky, kx


@pytest.mark.parametrize("fine,coarse", [((16, 16), (8, 8)), ((16, 16), (4, 4)), ((15, 15), (7, 7)), ((9, 9), (6, 6)),
                                         ((12, 10), (6, 5))])
def test_sliced_coarse_symbol_equals_direct_build(fine, coarse):
    """With h = 1/W a smaller mesh of the same aspect ratio samples integer modes inside the finer
    mesh's rfft grid (odd sizes and the Nyquist row/column included): its tables are a slice."""
    torch.manual_seed(0)
    layer = MeshFreeConv2d(3, 2, mixing="full", init_resolution=4).double()
    cache = full.SymbolCache(1 << 30)
    (fd, fo), fky, fkx = _symbol_tables(layer, *fine)
    cache._store(cache.entries.setdefault("x", {"grids": []}), fky, fkx, (fd, fo))
    (cd, co), cky, ckx = _symbol_tables(layer, *coarse)
    sliced = cache._slice(cache.entries["x"], cky, ckx)
    assert sliced is not None
    assert _rel(sliced[0], cd) < 1e-12 and _rel(sliced[1], co) < 1e-12


@pytest.mark.parametrize("coarse,h", [((8, 8), 0.15), ((7, 9), None), ((5, 5), 1 / 16)])
def test_mesh_that_is_not_a_subgrid_falls_back_to_building(coarse, h):
    """Wavenumbers 2 pi m / (n h) that are not among the fine mesh's (another h, another aspect
    ratio) give no slice; the cache then builds that mesh's own tables."""
    torch.manual_seed(0)
    layer = MeshFreeConv2d(2, 2, mixing="full", init_resolution=4).double()
    cache = full.SymbolCache(1 << 30)
    fky, fkx = wavenumbers(16, 16, dtype=torch.float64)
    cky, ckx = wavenumbers(*coarse, h=h, dtype=torch.float64)
    tables = full.build_pair_symbol(layer.tau(), layer.alpha(), layer.gamma, fky, fkx)
    cache._store(cache.entries.setdefault("x", {"grids": []}), fky, fkx, [t.detach() for t in tables])
    assert cache._slice(cache.entries["x"], cky, ckx) is None


def _msgd_grads(model, x, meshes):
    """A telescoping-style loss: one term per mesh (restriction by average pooling), one backward."""
    loss = 0.0
    for n in meshes:
        xs = F.adaptive_avg_pool2d(x, n)
        loss = loss + (model(xs) ** 2).mean() * (1 if n == meshes[0] else -0.5)
    return torch.autograd.grad(loss, [p for p in model.parameters()])


@pytest.mark.parametrize("meshes,boundary", [((16, 8, 4), "periodic"), ((16, 8, 8, 4), "periodic"),
                                             ((15, 7, 5), "periodic"), ((16, 8, 4), "zero"), ((16, 8, 4), "reflect")])
def test_cached_msgd_gradients_equal_uncached(meshes, boundary):
    """Padded meshes (a physical pad) sample a coarser padded mesh's wavenumbers too: the cache slices."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(MeshFreeConv2d(3, 4, mixing="full", init_resolution=8, boundary=boundary),
                                torch.nn.Tanh(),
                                MeshFreeConv2d(4, 3, mixing="full", init_resolution=8, boundary=boundary))
    x = torch.randn(2, 3, meshes[0], meshes[0])
    ref = _msgd_grads(model, x, meshes)
    with symbol_cache() as cache:
        got = _msgd_grads(model, x, meshes)
        assert all(len(entry["grids"]) >= 1 for entry in cache.entries.values())
    assert full.active_cache() is None
    for a, b in zip(got, ref):
        assert _rel(a, b) < 1e-5


def test_cache_budget_too_small_uses_uncached_path_and_param_change_invalidates():
    torch.manual_seed(0)
    layer = MeshFreeConv2d(2, 2, mixing="full", init_resolution=8)
    x = torch.randn(1, 2, 8, 8)
    with symbol_cache(max_bytes=0) as cache:
        out = layer(x)
        assert cache.entries[id(layer)]["grids"] == []
    torch.testing.assert_close(out, layer(x))
    with symbol_cache() as cache:
        before = layer(x)
        with torch.no_grad():
            layer.gamma.mul_(2)  # an optimizer step inside the context must not reuse stale tables
        after = layer(x)
    torch.testing.assert_close(after, layer(x))
    assert not torch.allclose(before, after)


@pytest.mark.parametrize("boundary", ["zero", "reflect"])
def test_packed_path_under_padded_boundaries(boundary):
    torch.manual_seed(0)
    layer = MeshFreeConv2d(3, 5, boundary=boundary, init_resolution=16).double()
    x = torch.randn(2, 3, 16, 12, dtype=torch.float64, requires_grad=True)
    results = {}
    for path in ("rfft", "packed"):
        layer.fft_path = path
        results[path] = _outputs_and_grads(layer, x)
    assert results["rfft"][0].shape == (2, 5, 16, 12)
    for a, b in zip(results["packed"], results["rfft"]):
        assert _rel(a, b) < 1e-10
