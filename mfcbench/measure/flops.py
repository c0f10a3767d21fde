"""Counting a model's FLOPs with fvcore and the handles of `flop_handles`, and reading the count.

    result = count_flops(model, (torch.randn(1, 3, 64, 64),))
    result.forward          # one forward pass, counted op by op (units: flop_handles.CONVENTION)
    result.training_step    # forward + backward, the backward by TRAINING_CONVENTION (2x forward)
    print(result.table())   # per module (fvcore's flop_count_table)
    result.by_operation     # per operation, readable names ("mfc symbol contraction", "rfft2", ...)

Importing fvcore.nn scripts a loss with `torch.jit.script`, which recent torch answers with a
FutureWarning about fvcore, not about the caller's code: `quiet_fvcore` silences exactly that
warning around every fvcore call and lets every other warning through.
"""

from __future__ import annotations

import contextlib
import types
import warnings
from dataclasses import dataclass, field
from typing import Iterator

import torch

from ..core.optional import require
from .flop_handles import flop_handles

__all__ = [
    "BACKWARD_FACTOR",
    "READABLE_OPS",
    "TRAINING_CONVENTION",
    "FlopCount",
    "count_flops",
    "quiet_fvcore",
]

# fvcore's import scripts a function with torch.jit.script, which torch deprecates with this message.
JIT_SCRIPT_DEPRECATED = r"`torch\.jit\.script` is deprecated"

# A training step is not traced (fvcore follows the forward only): its count is a stated convention.
BACKWARD_FACTOR = 2
TRAINING_CONVENTION = (
    "training step = forward + backward, with the backward counted as 2x the forward (the standard "
    "convention: the gradients with respect to the activations and to the weights each cost about one "
    "forward; Kaplan et al. 2020, Hoffmann et al. 2022). Only the forward is counted op by op; the "
    "backward is this convention, not a measurement."
)

# fvcore's operator keys -> names a reader knows. Unlisted keys are shown as they are.
READABLE_OPS: dict[str, str] = {
    "PythonOp._PairwiseSymbolContraction": "mfc symbol contraction",
    "PythonOp._PackedFilter": "mfc packed filter",
    "fft_rfft2": "rfft2",
    "fft_irfft2": "irfft2",
    "fft_fft2": "fft2",
    "fft_ifft2": "ifft2",
    "fft_rfft": "rfft",
    "fft_irfft": "irfft",
    "fft_fft": "fft",
    "fft_ifft": "ifft",
    "fft_rfftn": "rfftn",
    "fft_irfftn": "irfftn",
    "fft_fftn": "fftn",
    "fft_ifftn": "ifftn",
    "conv": "convolution",
    "addmm": "linear",
    "linear": "linear",
    "matmul": "matmul",
    "bmm": "batched matmul",
    "einsum": "einsum",
    "group_norm": "group norm",
    "batch_norm": "batch norm",
    "layer_norm": "layer norm",
    "instance_norm": "instance norm",
    "upsample_nearest2d": "nearest upsampling",
    "upsample_bilinear2d": "bilinear upsampling",
    "adaptive_avg_pool2d": "adaptive average pooling",
    "avg_pool2d": "average pooling",
    "max_pool2d": "max pooling",
    "mul": "multiply",
    "add": "add",
    "add_": "add (in place)",
    "sub": "subtract",
    "div": "divide",
    "exp": "exp",
    "neg": "negate",
    "scaled_dot_product_attention": "attention",
}


@dataclass
class FlopCount:
    """Result of one count (units: flop_handles.CONVENTION).

    total: units of one forward pass of the given inputs (also `forward`).
    by_operator: per-operator forward totals under fvcore's keys ("conv", "fft_rfft2", ...);
        `by_operation` gives the same with readable names (READABLE_OPS).
    unsupported: ops nobody counted (op -> occurrences); empty under strict=True.
    by_module: forward units per module path ("" = the whole model).
    module_table: fvcore's flop_count_table (per module, with parameter counts); `table()` returns it.
    """

    total: int
    by_operator: dict[str, int] = field(default_factory=dict)
    unsupported: dict[str, int] = field(default_factory=dict)
    by_module: dict[str, int] = field(default_factory=dict)
    module_table: str = ""

    @property
    def forward(self) -> int:
        """Units of one forward pass (counted op by op)."""
        return self.total

    @property
    def backward(self) -> int:
        """Units of the backward pass by TRAINING_CONVENTION (BACKWARD_FACTOR x forward), not traced."""
        return BACKWARD_FACTOR * self.total

    @property
    def training_step(self) -> int:
        """forward + backward (TRAINING_CONVENTION): the units of one training step on these inputs."""
        return self.forward + self.backward

    @property
    def by_operation(self) -> dict[str, int]:
        """by_operator under readable names, largest first (keys READABLE_OPS does not know are kept)."""
        out: dict[str, int] = {}
        for key, value in self.by_operator.items():
            name = READABLE_OPS.get(key, key)
            out[name] = out.get(name, 0) + value
        return dict(sorted(out.items(), key=lambda kv: -kv[1]))

    def table(self) -> str:
        """The per-module table (fvcore's flop_count_table), then forward, backward and training step."""
        return "\n".join((self.module_table, self.summary()))

    def summary(self) -> str:
        """Forward / backward / training-step lines and the per-operation split, each labelled."""
        lines = [f"forward        {self.forward:,} (counted)",
                 f"backward       {self.backward:,} (convention: {BACKWARD_FACTOR}x forward, not counted)",
                 f"training step  {self.training_step:,} (forward + backward)",
                 "forward by operation: " + ", ".join(f"{k} {v:,}" for k, v in self.by_operation.items())]
        return "\n".join(lines)


def count_flops(model: torch.nn.Module, inputs: tuple, *, strict: bool = False, max_depth: int = 3) -> FlopCount:
    """Count FLOPs (see flop_handles.CONVENTION) of `model(*inputs)` in evaluation mode, with no gradients.

    model: any module (its training flag is restored afterwards).
    inputs: the positional arguments of one forward, e.g. `(torch.randn(1, 3, 64, 64),)`; counts scale
        with the batch, so count one image for a per-image figure.
    strict: raise ValueError if an op is left uncounted (not handled, not in UNCOUNTED_OK).
    max_depth: module depth shown in the per-module table (`FlopCount.table()`).

    The backward and the training step are not traced: `FlopCount.training_step` adds the
    backward by TRAINING_CONVENTION (2x forward) and says so wherever it is printed.
    """
    with quiet_fvcore():
        require("fvcore.nn", "lib")  # a missing package names its extra
        from fvcore.nn import FlopCountAnalysis, flop_count_table

    was_training = model.training
    model.eval()
    patched = _bypass_state_dict_override(model)
    try:
        with torch.no_grad(), quiet_fvcore():
            analysis = FlopCountAnalysis(model, inputs)
            analysis.set_op_handle(**flop_handles())
            analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
            analysis.tracer_warnings("none")
            total = analysis.total()
            by_operator = {k: int(round(v)) for k, v in analysis.by_operator().items()}
            unsupported = dict(analysis.unsupported_ops())
            by_module = {k: int(round(v)) for k, v in analysis.by_module().items()}
            module_table = flop_count_table(analysis, max_depth=max_depth, show_param_shapes=False)
    finally:
        model.train(was_training)
        if patched:
            del model.state_dict
    if strict and unsupported:
        raise ValueError(f"ops left uncounted (add a handle or an UNCOUNTED_OK entry): {unsupported}")
    return FlopCount(int(round(total)), by_operator, unsupported, by_module, module_table)


@contextlib.contextmanager
def quiet_fvcore() -> Iterator[None]:
    """Silence torch's `torch.jit.script is deprecated` FutureWarning (fvcore's, not the caller's) and
    nothing else."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=JIT_SCRIPT_DEPRECATED, category=FutureWarning)
        yield


def _bypass_state_dict_override(model: torch.nn.Module) -> bool:
    """neuraloperator's FNO overrides state_dict in a way jit tracing cannot follow (fvcore's trace
    fails inside it; its SpectralConv alone traces): shadow it with nn.Module's for the duration of
    the count. Returns whether it patched."""
    if type(model).state_dict is torch.nn.Module.state_dict or "state_dict" in vars(model):
        return False
    model.state_dict = types.MethodType(torch.nn.Module.state_dict, model)
    return True
