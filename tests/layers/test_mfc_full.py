"""Full-mixing MFC exactness: the chunked, cached contraction equals plain autograd through the symbol.

The reference builds the (Cout, Cin, H, W//2+1) symbol with `mesh_free_symbol` and contracts with an
einsum, so every output and all parameter gradients come from torch's own autograd. The fast path
must agree in float64 to 1e-10 relative for any frequency-chunk size, with or without the step's
symbol cache, over several meshes of one multiscale loss (coarse meshes sliced from the finest).
"""

import pytest
import torch
from torch.nn import functional as F

from mfcbench.layers import MeshFreeConv2d, full, mesh_free_symbol, symbol_cache, wavenumbers


def _reference(layer: MeshFreeConv2d, x: torch.Tensor) -> torch.Tensor:
    height, width = x.shape[-2:]
    ky, kx = wavenumbers(height, width, layer.h, dtype=x.dtype)
    symbol = mesh_free_symbol(layer.tau(), layer.alpha(), layer.gamma, ky, kx)
    y_hat = torch.einsum("bihw,oihw->bohw", torch.fft.rfft2(x), symbol)
    return torch.fft.irfft2(y_hat, s=(height, width)) + layer.bias[None, :, None, None]


def _multiscale_loss(forward, x: torch.Tensor, meshes) -> torch.Tensor:
    """A telescoping-style loss over several meshes, each with its own sign and batch."""
    loss = x.new_zeros(())
    for j, n in enumerate(meshes):
        xs = F.adaptive_avg_pool2d(x[: j + 1], n)
        loss = loss + (forward(xs) ** 2).mean() * (1.0 if j % 2 == 0 else -0.5)
    return loss


def _grads(layer, forward, x, meshes):
    x = x.detach().requires_grad_(True)
    params = list(layer.parameters())
    return torch.autograd.grad(_multiscale_loss(forward, x, meshes), params + [x])


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / b.abs().max().clamp_min(1e-300))


def _layer(cin=3, cout=4):
    torch.manual_seed(0)
    layer = MeshFreeConv2d(cin, cout, mixing="full", init_resolution=8).double()
    with torch.no_grad():
        layer.bias.normal_()
    return layer


@pytest.mark.parametrize("chunk_elements", [1 << 23, 64, 5])
@pytest.mark.parametrize("cached", [False, True])
def test_full_mixing_outputs_and_gradients_equal_autograd_reference(monkeypatch, chunk_elements, cached):
    monkeypatch.setattr(full, "_CHUNK_ELEMENTS", chunk_elements)
    layer = _layer()
    x = torch.randn(3, 3, 16, 16, dtype=torch.float64)
    meshes = (16, 8, 4)
    expected = _grads(layer, lambda xs: _reference(layer, xs), x, meshes)
    if cached:
        with symbol_cache() as cache:
            got = _grads(layer, layer, x, meshes)
            grids = cache.entries[id(layer)]["grids"]
            assert len(grids) == len(meshes)  # built once on the finest mesh, the coarser two sliced from it
    else:
        got = _grads(layer, layer, x, meshes)
    for a, b in zip(got, expected):
        assert _rel(a, b) < 1e-10
    torch.testing.assert_close(layer(x), _reference(layer, x), rtol=1e-10, atol=1e-12)


def test_full_mixing_float32_matches_float64_reference():
    layer = _layer(4, 3)
    x = torch.randn(2, 4, 16, 16, dtype=torch.float64)
    expected = _grads(layer, lambda xs: _reference(layer, xs), x, (16, 8))
    layer32 = layer.float()
    with symbol_cache():
        got = _grads(layer32, layer32, x.float(), (16, 8))
    for a, b in zip(got, expected):
        assert _rel(a.double(), b) < 1e-5


def test_bench_says_how_many_full_mixing_layers_fit_the_step_cache():
    """At the Table 15 setting (two 128x128-channel full-mixing layers) only one layer's step tables fit
    symbol_cache's default budget at 256^2: the other rebuilds its symbol on every call."""
    from mfcbench.measure.bench_steps import _symbol_cache_note

    model = torch.nn.Sequential(*(MeshFreeConv2d(128, 128, mixing="full") for _ in range(2)))
    assert "1 of 2 full-mixing layers fit" in _symbol_cache_note(model, 256)
    assert "2 of 2 full-mixing layers fit" in _symbol_cache_note(model, 128)
    assert _symbol_cache_note(torch.nn.Sequential(MeshFreeConv2d(4, 4)), 256) == ""
