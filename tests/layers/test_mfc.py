"""The maths of the mesh-free convolution: heat kernel, mesh independence, gradients, layer."""

import math

import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter

from mfcbench.core.restrict import restrict
from mfcbench.layers import MeshFreeConv2d, mesh_free_filter, mesh_free_symbol, wavenumbers


def _params(channels, tau, alpha=(1.0, 0.0, 1.0), gamma=(1.0, 0.0, 0.0), dtype=torch.float64):
    return (
        torch.full((channels,), tau, dtype=dtype),
        torch.tensor([alpha] * channels, dtype=dtype),
        torch.tensor([gamma] * channels, dtype=dtype),
    )


@pytest.mark.parametrize("tau", [5e-4, 2e-3])
def test_isotropic_filter_is_periodic_gaussian_of_variance_2tau(tau):
    x = torch.randn(2, 3, 64, 48, dtype=torch.float64)
    out = mesh_free_filter(x, *_params(3, tau))
    sigma_pixels = math.sqrt(2 * tau) * 48  # h = 1/W on both axes
    ref = gaussian_filter(x.numpy(), sigma=(0, 0, sigma_pixels, sigma_pixels), mode="wrap", truncate=12.0)
    rel = np.abs(out.numpy() - ref).max() / np.abs(ref).max()
    assert rel < 1e-5


def test_anisotropic_filter_matches_rotated_gaussian_variances():
    """alpha is the covariance/(2 tau): the impulse response's second moments are 2 tau alpha."""
    n, tau = 128, 1e-3
    alpha = (1.0, 0.4, 0.6)
    delta = torch.zeros(1, 1, n, n, dtype=torch.float64)
    delta[..., 0, 0] = 1.0
    kernel = mesh_free_filter(delta, *_params(1, tau, alpha))[0, 0]
    coords = torch.fft.fftfreq(n, d=1.0 / n, dtype=torch.float64) / n  # signed physical offsets
    y, x = torch.meshgrid(coords, coords, indexing="ij")
    mass = kernel.sum()
    cov_xx = (kernel * x * x).sum() / mass
    cov_xy = (kernel * x * y).sum() / mass
    cov_yy = (kernel * y * y).sum() / mass
    assert torch.allclose(torch.stack([cov_xx, cov_xy, cov_yy]), 2 * tau * torch.tensor(alpha, dtype=torch.float64), rtol=1e-6)


def _smooth_field(n, dtype=torch.float64):
    """A smooth periodic field that is not band-limited (its spectrum decays exponentially)."""
    coords = torch.arange(n, dtype=dtype) / n
    y, x = torch.meshgrid(coords, coords, indexing="ij")
    return torch.exp(torch.sin(2 * math.pi * x) + 0.5 * torch.cos(2 * math.pi * (x + 2 * y)))[None, None]


def test_same_parameters_give_the_same_operator_on_every_mesh():
    """Filter an n and a 2n sampling; restrict the fine result by injection; errors shrink with h."""
    tau, alpha, gamma = _params(1, 2e-3, (1.0, 0.3, 0.8), (0.7, 0.02, -0.01))
    errors = []
    for n in (8, 16, 32):
        coarse = mesh_free_filter(_smooth_field(n), tau, alpha, gamma)
        fine = mesh_free_filter(_smooth_field(2 * n), tau, alpha, gamma)
        diff = restrict(fine, 1, "nearest") - coarse
        errors.append(float(diff.abs().max() / coarse.abs().max()))
    assert errors[0] > errors[1] > errors[2]
    assert errors[2] < 1e-6


@pytest.mark.slow
def test_gradcheck_all_seven_parameters_and_input():
    x = torch.randn(1, 2, 8, 6, dtype=torch.float64, requires_grad=True)
    tau = torch.tensor([3e-3, 1e-2], dtype=torch.float64, requires_grad=True)
    alpha = torch.tensor([[1.0, 0.2, 0.9], [0.5, -0.1, 1.5]], dtype=torch.float64, requires_grad=True)
    gamma = torch.tensor([[1.0, 0.03, -0.02], [-0.5, 0.01, 0.04]], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda *a: mesh_free_filter(*a), (x, tau, alpha, gamma))


@pytest.mark.parametrize(
    "tau, alpha, message",
    [
        (0.0, (1.0, 0.0, 1.0), "tau"),
        (-1e-3, (1.0, 0.0, 1.0), "tau"),
        (1e-3, (0.0, 0.0, 1.0), "elliptic"),
        (1e-3, (1.0, 1.0, 1.0), "elliptic"),
        (1e-3, (1.0, 2.0, 1.0), "elliptic"),
    ],
)
def test_invalid_parameters_raise(tau, alpha, message):
    with pytest.raises(ValueError, match=message):
        mesh_free_filter(torch.randn(1, 1, 8, 8, dtype=torch.float64), *_params(1, tau, alpha))


def test_wrong_parameter_shape_raises():
    with pytest.raises(ValueError, match="shape"):
        mesh_free_filter(torch.randn(1, 2, 8, 8), *_params(3, 1e-3, dtype=torch.float32))


def test_wavenumbers_are_physical():
    ky, kx = wavenumbers(8, 8)
    assert kx[0, 1].item() == pytest.approx(2 * math.pi)
    assert ky[-1, 0].item() == pytest.approx(-2 * math.pi)
    ky2, kx2 = wavenumbers(16, 16)
    assert torch.allclose(kx2[0, :5], kx[0, :5])  # same physical modes on a finer mesh


@pytest.mark.parametrize("mixing, expected", [("pointwise", 4 * 5 + 7 * 5 + 5), ("full", 7 * 4 * 5 + 5)])
def test_layer_parameter_counts(mixing, expected):
    layer = MeshFreeConv2d(4, 5, mixing=mixing)
    assert sum(p.numel() for p in layer.parameters()) == expected


def test_parametrization_is_valid_by_construction():
    layer = MeshFreeConv2d(3, 4, mixing="full")
    with torch.no_grad():
        layer.chol.normal_(0, 3)
        layer.log_tau.normal_(0, 3)
    a = layer.alpha()
    assert (layer.tau() > 0).all()
    assert (a[..., 0] > 0).all() and (a[..., 0] * a[..., 2] - a[..., 1] ** 2 > 0).all()


def test_full_mixing_equals_sum_of_pairwise_filters():
    layer = MeshFreeConv2d(3, 2, mixing="full", bias=False).double()
    x = torch.randn(2, 3, 16, 16, dtype=torch.float64)
    out = layer(x)
    tau, alpha, gamma = layer.tau(), layer.alpha(), layer.gamma
    for o in range(2):
        expected = sum(mesh_free_filter(x[:, i : i + 1], tau[o, i : i + 1], alpha[o, i : i + 1], gamma[o, i : i + 1])[:, 0] for i in range(3))
        assert torch.allclose(out[:, o], expected, atol=1e-12)


def test_pointwise_mixing_is_1x1_then_filter():
    layer = MeshFreeConv2d(3, 2, mixing="pointwise").double()
    x = torch.randn(2, 3, 16, 16, dtype=torch.float64)
    mixed = torch.nn.functional.conv2d(x, layer.mix.weight)
    expected = mesh_free_filter(mixed, layer.tau(), layer.alpha(), layer.gamma) + layer.bias[None, :, None, None]
    assert torch.allclose(layer(x), expected, atol=1e-12)


@pytest.mark.parametrize("mixing", ["pointwise", "full"])
def test_initial_kernels_are_local_at_the_training_resolution(mixing):
    n = 64
    layer = MeshFreeConv2d(1, 8, mixing=mixing, bias=False, init_resolution=n).double()
    delta = torch.zeros(1, 1, n, n, dtype=torch.float64)
    delta[..., 0, 0] = 1.0
    with torch.no_grad():
        if mixing == "pointwise":
            layer.mix.weight.fill_(1.0)
        response = layer(delta)[0]
    energy = response.pow(2).sum(dim=(-2, -1))
    window = torch.roll(response, shifts=(3, 3), dims=(-2, -1))[..., :7, :7].pow(2).sum(dim=(-2, -1))
    assert (window / energy > 0.9).all()  # most energy within a 7x7 neighbourhood


def test_layer_runs_on_several_meshes_and_backpropagates():
    layer = MeshFreeConv2d(3, 4)
    for n in (8, 16, 32):
        out = layer(torch.randn(2, 3, n, n))
        assert out.shape == (2, 4, n, n)
        out.square().mean().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in layer.parameters())


def test_symbol_shape_broadcasts_over_parameter_batch():
    ky, kx = wavenumbers(8, 8)
    s = mesh_free_symbol(torch.ones(2, 3) * 1e-3, torch.tensor([1.0, 0, 1]).expand(2, 3, 3), torch.tensor([1.0, 0, 0]).expand(2, 3, 3), ky, kx)
    assert s.shape == (2, 3, 8, 5) and s.is_complex()


@pytest.mark.slow
@pytest.mark.parametrize("chunk_elements", [1 << 23, 7])  # one chunk; one frequency per chunk
def test_full_mixing_custom_backward_passes_gradcheck(monkeypatch, chunk_elements):
    """The pairwise contraction has a hand-written, frequency-chunked backward: check it against
    the autograd einsum and finite differences."""
    from mfcbench.layers import full
    from mfcbench.layers.full import _PairwiseSymbolContraction, join_wavenumbers

    monkeypatch.setattr(full, "_CHUNK_ELEMENTS", chunk_elements)

    ky, kx = wavenumbers(6, 8, dtype=torch.float64)
    x_hat = torch.fft.rfft2(torch.randn(2, 2, 6, 8, dtype=torch.float64)).requires_grad_()
    tau = (torch.rand(3, 2, dtype=torch.float64) * 5e-3 + 1e-3).requires_grad_()
    alpha = torch.tensor([1.0, 0.2, 0.9], dtype=torch.float64).repeat(3, 2, 1).requires_grad_()
    gamma = (torch.randn(3, 2, 3, dtype=torch.float64) * torch.tensor([1.0, 0.05, 0.05], dtype=torch.float64)).requires_grad_()
    apply = lambda *a: _PairwiseSymbolContraction.apply(*a, join_wavenumbers(ky, kx), None)  # noqa: E731
    expected = torch.einsum("bihw,oihw->bohw", x_hat, mesh_free_symbol(tau, alpha, gamma, ky, kx))
    assert torch.allclose(apply(x_hat, tau, alpha, gamma), expected, atol=1e-12)
    assert torch.autograd.gradcheck(apply, (x_hat, tau, alpha, gamma))


# --- boundaries: periodic (the FFT's), zero and reflect done the mesh-free way -------------------
def _edge_impulse(n=32):
    x = torch.zeros(1, 1, n, n, dtype=torch.float64)
    x[..., n // 2, 1] = 1.0  # one pixel from the left edge
    return x


@pytest.mark.parametrize("boundary,wraps", [("periodic", True), ("zero", False), ("reflect", False)])
def test_impulse_near_an_edge_wraps_only_under_periodic(boundary, wraps):
    out = mesh_free_filter(_edge_impulse(), *_params(1, 1e-3), boundary=boundary)
    far_side = float(out[..., -4:].abs().max())  # the four columns at the opposite (right) edge
    assert (far_side > 1e-3) if wraps else (far_side < 1e-5), far_side
    assert float(out[..., :4].abs().max()) > 0.05  # the response itself is where the impulse is


@pytest.mark.parametrize("mixing", ["pointwise", "full"])
@pytest.mark.parametrize("boundary,wraps", [("periodic", True), ("zero", False), ("reflect", False)])
def test_layer_boundary_option(mixing, boundary, wraps):
    torch.manual_seed(0)
    # kernels 2-2.5 pixels wide (resolved: no spectral ringing), 7 widths inside an 8-pixel pad's reach
    layer = MeshFreeConv2d(1, 2, mixing=mixing, boundary=boundary, pad_width=0.25, init_resolution=32,
                           init_width=(2.0, 2.5), bias=False).double()
    out = layer(_edge_impulse()).detach()
    assert out.shape == (1, 2, 32, 32)
    far_side = float(out[..., -3:].abs().max())
    assert (far_side > 1e-4) if wraps else (far_side < 1e-6), far_side
    assert boundary == "periodic" or f"boundary={boundary!r}" in repr(layer)


def _cell_centred_field(n, dtype=torch.float64):
    """A smooth field that is not periodic, sampled at pixel centres (what average pooling restricts)."""
    coords = (torch.arange(n, dtype=dtype) + 0.5) / n
    y, x = torch.meshgrid(coords, coords, indexing="ij")
    return (torch.exp(torch.sin(2 * math.pi * x) + 0.5 * torch.cos(2 * math.pi * (x + 2 * y))) + 2 * x * y)[None, None]


@pytest.mark.parametrize("boundary,tol", [("periodic", 5e-3), ("zero", 1e-2), ("reflect", 2e-3)])
def test_padded_boundaries_stay_mesh_independent(boundary, tol):
    """Filter-then-restrict equals restrict-then-filter ever more closely as h shrinks: the pad is a
    physical width (ceil(0.125 / h) pixels), so both meshes see the same padded domain."""
    tau, alpha, gamma = _params(1, 2e-3, (1.0, 0.3, 0.8), (0.7, 0.02, -0.01))
    errors = []
    for n in (8, 16, 32):
        fine = _cell_centred_field(2 * n)
        coarse = mesh_free_filter(restrict(fine, 1, "pool"), tau, alpha, gamma, boundary=boundary)
        restricted = restrict(mesh_free_filter(fine, tau, alpha, gamma, boundary=boundary), 1, "pool")
        errors.append(float((restricted - coarse).abs().max() / coarse.abs().max()))
    assert errors[0] > errors[1] > errors[2], errors
    assert errors[2] < tol, errors


def test_pad_is_a_physical_width():
    from mfcbench.layers.padding import pad_pixels

    assert [pad_pixels(n, None, 0.125) for n in (64, 32, 16)] == [8, 4, 2]
    assert pad_pixels(64, 1 / 128, 0.125) == 16  # an explicit h: pixels = pad_width / h
    with pytest.raises(ValueError, match="boundary must be one of"):
        MeshFreeConv2d(1, 1, boundary="mirror")
    with pytest.raises(ValueError, match="reflect"):
        mesh_free_filter(torch.zeros(1, 1, 4, 4), *_params(1, 1e-3, dtype=torch.float32), boundary="reflect",
                         pad_width=2.0)
