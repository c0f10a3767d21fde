"""CUDA paths: the same numbers on the GPU as on the CPU. Skipped cleanly without a CUDA device
(conftest.py); run them on a GPU machine with `pytest -m gpu`."""

import copy
import json

import pytest
import torch

from mfcbench.layers import MeshFreeConv2d
from mfcbench.train.runner import run_cell

pytestmark = pytest.mark.gpu


@pytest.mark.parametrize("mixing", ["pointwise", "full"])
def test_mfc_forward_and_backward_match_cpu(mixing):
    layer = MeshFreeConv2d(4, 6, mixing=mixing).double()
    layer_gpu = copy.deepcopy(layer).cuda()
    x = torch.randn(2, 4, 32, 32, dtype=torch.float64, requires_grad=True)
    x_gpu = x.detach().cuda().requires_grad_()
    out, out_gpu = layer(x), layer_gpu(x_gpu)
    out.square().mean().backward()
    out_gpu.square().mean().backward()
    assert torch.allclose(out, out_gpu.cpu(), atol=1e-10)
    for a, b in zip([*layer.parameters(), x], [*layer_gpu.parameters(), x_gpu]):
        assert torch.allclose(a.grad, b.grad.cpu(), atol=1e-9)


def test_a_tiny_cell_runs_on_cuda(tmp_path):
    images = torch.rand(16, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    config = {"image_size": 16, "levels": 2, "batch_size": 2, "iterations": [2, 2], "val_size": 4,
              "val_every": 2, "model": {"width": 0.125}}
    record = run_cell(config, task="denoise", arch="resnet", strategy="fmsgd", out_dir=tmp_path / "cell",
                      device="cuda", train_images=images[:12], val_images=images[12:], progress=False,
                      log=lambda msg: None)
    assert record["status"] == "ok" and "cuda" in json.dumps(record["manifest"]).lower()
    assert record["peak_memory_mb"] > 0
