"""The op costs fvcore leaves out: handles for FFTs, complex maths, elementwise ops and attention.

fvcore traces a model with torch.jit and sums per-op handles. It silently counts 0 for every FFT
op and every elementwise op, and counts a complex einsum as if it were real (about 4x too low),
which would make an FFT-based layer look free. The handles below close those gaps in the units of
CONVENTION; any op still left unsupported must be listed in UNCOUNTED_OK with a reason (a test
enforces it). `flop_handles()` is what `flops.count_flops` adds to fvcore's defaults.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Iterable

import torch

from ..core.optional import require

__all__ = [
    "CONVENTION",
    "FFT_COMPLEX_COST",
    "FFT_REAL_COST",
    "UNCOUNTED_OK",
    "fft_cost",
    "flop_handles",
]

# Cost of one FFT of N points, in units of N log2 N (see CONVENTION).
FFT_COMPLEX_COST = 5.0
FFT_REAL_COST = 2.5

CONVENTION = (
    "FLOPs are counted in fvcore's unit: one real multiply-add (MAC) = 1, so a Conv2d counts "
    "n^2 k^2 Cin Cout per image (Conv2d(32,32,5,padding=2) on 1x32x32x32 = 26,214,400). "
    "An FFT over N points counts 5 N log2 N if complex-to-complex and 2.5 N log2 N if one side "
    "is real (rfft/irfft): the classical radix-2 operation count, where each real add or multiply "
    "is one unit because FFT butterflies are mostly additions that do not pair into multiply-adds "
    "(one unit = one arithmetic instruction slot, the same slot a fused MAC occupies). "
    "A complex*complex multiply = 4 units (4 real products, the adds fused), complex*real = 2, "
    "complex add = 2; a complex einsum = 4x fvcore's real MAC count. Real elementwise ops, "
    "activations and transcendentals (exp, sin, ...) = 1 unit per output element; reductions, "
    "softmax and pooling = 1 unit per input element. Pure data movement (views, shifts, "
    "pixel shuffle, complex packing) = 0."
)

# Ops deliberately counted as zero. Each entry says why; a test fails on any other uncounted op.
UNCOUNTED_OK: dict[str, str] = {
    "aten::complex": "packs real and imaginary parts: data movement, no arithmetic",
    "aten::real": "a view of the real part",
    "aten::imag": "a view of the imaginary part",
    "aten::view_as_real": "a view",
    "aten::view_as_complex": "a view",
    "aten::fft_fftshift": "a circular shift (roll): data movement",
    "aten::fft_ifftshift": "a circular shift (roll): data movement",
    "aten::pixel_shuffle": "a permutation of elements",
    "aten::pixel_unshuffle": "a permutation of elements",
    "aten::repeat": "copies",
    "aten::repeat_interleave": "copies",
    "aten::flip": "a permutation of elements",
    "aten::pad": "copies (padding)",
    "aten::reflection_pad2d": "copies (padding)",
    "aten::replication_pad2d": "copies (padding)",
    "aten::circular_pad2d": "copies (padding)",
    "aten::clone": "copies",
    "aten::expand_as": "a view",
    "aten::view_as": "a view",
    "aten::reshape_as": "a view",
    "aten::movedim": "a view",
    "aten::lt": "comparison producing a mask; negligible and not arithmetic on features",
    "aten::le": "comparison producing a mask; negligible",
    "aten::ne": "comparison producing a mask; negligible",
    "aten::linspace": "a constant grid (O(n), independent of channels and batch)",
    "aten::fft_fftfreq": "a constant frequency grid (O(n), independent of channels and batch)",
    "aten::fft_rfftfreq": "a constant frequency grid (O(n), independent of channels and batch)",
    "aten::randn_like": "random sampling, not model arithmetic",
    "aten::rand_like": "random sampling, not model arithmetic",
    "aten::bernoulli_": "dropout mask sampling (training only)",
    "aten::feature_dropout": "identity at evaluation",
    "aten::alpha_dropout": "identity at evaluation",
    "aten::numpy_T": "a view",
    "aten::mT": "a view",
    "aten::lift_fresh": "wraps a constant tensor",
    "aten::new_ones": "allocation",
    "aten::empty_like": "allocation",
    "aten::ones_like": "allocation",
    "aten::scalar_tensor": "allocation",
    "aten::tensor": "allocation",
    "aten::dim": "shape query",
    "aten::len": "shape query",
    "aten::sort": "comparison-based, not arithmetic (absent from the benchmarked models)",
    "aten::argmax": "comparison-based",
    "aten::one_hot": "indexing",
    "aten::embedding": "a table lookup",
    "aten::copy": "copies",
    "aten::masked_fill_": "a masked copy",
    "aten::fill_": "a fill",
    "aten::zero_": "a fill",
    "aten::resolve_conj": "a lazy-conjugation flag",
    "aten::resolve_neg": "a lazy-negation flag",
    "aten::conj": "a lazy-conjugation flag",
    "aten::im2col": "unfold: data movement",
    "aten::col2im": "fold: adds overlapping patches; data movement dominated",
}

Handle = Callable[[list, list], float]


def fft_cost(points: int, complex_input: bool) -> float:
    """Units for one FFT over `points` points (see CONVENTION); 0 for a single point."""
    if points <= 1:
        return 0.0
    per = FFT_COMPLEX_COST if complex_input else FFT_REAL_COST
    return per * points * math.log2(points)


# ---------------------------------------------------------------------------------------------
# helpers reading jit values
def _shape(val) -> list[int] | None:
    try:
        if val.isCompleteTensor():
            return list(val.type().sizes())
    except RuntimeError:
        pass
    return None


def _is_complex(val) -> bool:
    try:
        kind = val.type().scalarType()
    except (RuntimeError, AttributeError):
        return False
    return kind is not None and "Complex" in kind


def _is_tensor(val) -> bool:
    return isinstance(val.type(), torch._C.TensorType)


def _const(val) -> Any:
    """Python value of a constant jit argument (int, list of ints, None); None if not constant."""
    node = val.node()
    if node.kind() == "prim::Constant":
        return val.toIValue()
    if node.kind() == "prim::ListConstruct":
        items = [_const(v) for v in node.inputs()]
        return None if any(i is None for i in items) else items
    return None


def _numel(shape: Iterable[int] | None) -> int:
    return math.prod(shape) if shape is not None else 0


# ---------------------------------------------------------------------------------------------
# FFT handles
def _fft_handle(ndim: int | None, complex_input: bool, real_side: str) -> Handle:
    """Handle for torch.fft ops. ndim: 1, 2 or None (n-d, dims from the `dim` argument).

    real_side: which tensor carries the full transform size ("input" for rfft, "output" for
    irfft and complex ffts, whose output holds the full N points per transform).
    """

    def handle(inputs: list, outputs: list) -> float:
        tensor = inputs[0] if real_side == "input" else outputs[0]
        shape = _shape(tensor)
        if shape is None:
            return 0.0
        dims = _const(inputs[2]) if len(inputs) > 2 else None
        if dims is None:
            dims = [-1] if ndim == 1 else [-2, -1] if ndim == 2 else list(range(len(shape)))
        if isinstance(dims, int):
            dims = [dims]
        points = math.prod(shape[d] for d in dims)
        transforms = _numel(shape) // max(points, 1)
        return transforms * fft_cost(points, complex_input)

    return handle


def _fft_handles() -> dict[str, Handle]:
    handles = {}
    for suffix, ndim in (("", 1), ("2", 2), ("n", None)):
        handles[f"aten::fft_rfft{suffix}"] = _fft_handle(ndim, False, "input")
        handles[f"aten::fft_irfft{suffix}"] = _fft_handle(ndim, False, "output")
        handles[f"aten::fft_hfft{suffix}"] = _fft_handle(ndim, False, "output")
        handles[f"aten::fft_ihfft{suffix}"] = _fft_handle(ndim, False, "input")
        handles[f"aten::fft_fft{suffix}"] = _fft_handle(ndim, True, "output")
        handles[f"aten::fft_ifft{suffix}"] = _fft_handle(ndim, True, "output")
    return handles


# ---------------------------------------------------------------------------------------------
# elementwise, reductions, einsum, attention
def _elementwise(inputs: list, outputs: list) -> float:
    """1 unit per output element; complex outputs: 4 for complex*complex, else 2."""
    out = _numel(_shape(outputs[0]))
    if not _is_complex(outputs[0]):
        return float(out)
    complex_args = sum(1 for v in inputs[:2] if _is_tensor(v) and _is_complex(v))
    return float(out * (4 if complex_args >= 2 else 2))


def _per_input(inputs: list, outputs: list) -> float:
    """1 unit per input element (reductions, softmax, pooling)."""
    factor = 2 if _is_complex(inputs[0]) else 1
    return float(_numel(_shape(inputs[0])) * factor)


def _einsum(inputs: list, outputs: list) -> float:
    """Two operands: exactly prod(size of every index) MACs; more: fvcore's estimate. x4 if complex."""
    require("fvcore.nn.jit_handles", "lib")  # a missing package names its extra
    from fvcore.nn.jit_handles import einsum_flop_jit

    node = inputs[1].node()
    operands = list(node.inputs()) if node.kind() == "prim::ListConstruct" else []
    equation = _const(inputs[0])
    shapes = [_shape(v) for v in operands]
    if isinstance(equation, str) and len(operands) == 2 and None not in shapes and "..." not in equation:
        sizes: dict[str, int] = {}
        for letters, shape in zip(equation.replace(" ", "").split("->")[0].split(","), shapes, strict=True):
            sizes.update(zip(letters, shape, strict=True))
        real = math.prod(sizes.values())
    else:
        real = einsum_flop_jit(inputs, outputs)
    return float(real * 4 if any(_is_complex(v) for v in operands) else real)


def _sdpa(inputs: list, outputs: list) -> float:
    """scaled_dot_product_attention: Q K^T and A V, each B*heads*L*S*E MACs, plus the softmax."""
    q, k = _shape(inputs[0]), _shape(inputs[1])
    if q is None or k is None:
        return 0.0
    *batch, length, embed = q
    source = k[-2]
    return float(math.prod(batch) * length * source * (2 * embed + 1))


def _pairwise_symbol_contraction(inputs: list, outputs: list) -> float:
    """MeshFreeConv2d(mixing="full")'s custom op: per frequency a complex (Co x Ci) @ (Ci x B)
    product (4 real MACs each) plus building the pair symbols (about 9 real ops per pair and
    frequency: 3-term quadratic form, scale, exp, 2-term odd factor, 2 multiplies)."""
    x, tau = _shape(inputs[0]), _shape(inputs[1])
    if x is None or tau is None:
        return 0.0
    batch, cin, height, wr = x
    pairs_times_freqs = tau[0] * cin * height * wr
    return float(4 * batch * pairs_times_freqs + 9 * pairs_times_freqs)


def _zero(inputs: list, outputs: list) -> float:
    return 0.0


ELEMENTWISE_OPS = (
    "add sub mul div neg exp rsub pow sqrt rsqrt reciprocal sin cos tanh sigmoid silu gelu "
    "leaky_relu elu softplus hardtanh hardswish hardsigmoid abs square where maximum minimum "
    "lerp addcmul addcdiv log log1p expm1 clamp_min clamp_max sign erf prelu mish celu selu "
    "true_divide floor_divide"
).split()
REDUCTION_OPS = (
    "mean sum softmax log_softmax avg_pool2d max_pool2d adaptive_max_pool2d norm var std "
    "linalg_vector_norm frobenius_norm amax amin cumsum logsumexp"
).split()


def flop_handles() -> dict[str, Handle]:
    """Every handle mfcbench adds to fvcore's defaults (op name -> fn(inputs, outputs))."""
    handles: dict[str, Handle] = {}
    for name in ELEMENTWISE_OPS:
        handles[f"aten::{name}"] = _elementwise
        handles[f"aten::{name}_"] = _elementwise
    for name in REDUCTION_OPS:
        handles[f"aten::{name}"] = _per_input
    handles.update(_fft_handles())
    handles["aten::einsum"] = _einsum
    handles["prim::PythonOp._PairwiseSymbolContraction"] = _pairwise_symbol_contraction
    handles["aten::scaled_dot_product_attention"] = _sdpa
    for name in UNCOUNTED_OK:
        handles[name] = _zero
    return handles
