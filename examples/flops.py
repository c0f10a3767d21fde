"""FLOPs of the two example networks: per module, per operation, forward and training step.

    python examples/flops.py            # at 64x64: 9 s (measured on a shared 2-core machine)
    python examples/flops.py --tiny     # at 16x16 (the test suite's run)

The forward is counted operation by operation (fvcore, with mfcbench's handles for FFTs and the
mesh-free symbol contraction; units: `mfcbench.measure.flop_handles.CONVENTION`). The backward is not
traced: the training step adds it by the stated convention (2x forward), and every printout says so.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import torch

import mfcbench as mfc

sys.path.insert(0, str(Path(__file__).resolve().parent))
from own_cnn_fmsgd import MFCDenoiser  # noqa: E402
from torchvision_msgd import DenseResNet, build  # noqa: E402


def main(tiny: bool = False) -> dict:
    """Count one image through each network (and the unconverted ResNet trunk); returns the counts."""
    size = 16 if tiny else 64
    networks = {
        "own MFC CNN": (MFCDenoiser(image_size=size), 1),
        "ResNet-18 trunk, standard convs": (DenseResNet(), 3),
        "ResNet-18 trunk, MFCs": (build(size), 3),
    }
    out = {}
    for name, (net, channels) in networks.items():
        count = mfc.count_flops(net, (torch.randn(1, channels, size, size),), max_depth=2)
        out[name] = {"forward": count.forward, "training_step": count.training_step,
                     "by_operation": count.by_operation}
        print(f"== {name}, one {size}x{size} image ==")
        print(count.table(), flush=True)
        print()
    return out


if __name__ == "__main__":
    main(tiny="--tiny" in sys.argv[1:] or os.environ.get("MFCBENCH_EXAMPLES_TINY") == "1")
