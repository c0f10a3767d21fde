"""The examples/ scripts run on tiny sizes (what docs/library.md shows cannot rot)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def _load(name: str):
    sys.path.insert(0, str(EXAMPLES))
    try:
        spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(EXAMPLES))


def _step_wu(level: int, sizes: list[int], levels: int = 3) -> float:
    """eq. 39: each term on its mesh and the next coarser one, the coarsest alone."""
    return sum(n * (4.0**-j + (4.0 ** -(j + 1) if j < levels - 1 else 0)) for j, n in enumerate(sizes, start=level))


def test_own_cnn_trained_with_full_multiscale_both_ways():
    import mfcbench as mfc

    result = _load("own_cnn_fmsgd").main(tiny=True)
    schedule = list(mfc.fmsgd_schedule(levels=3, iterations=2, batch_size=1))
    assert [its for _, its, _ in schedule] == [2, 1, 1]  # App. C's halving, at least one step per level
    expected = sum(its * _step_wu(level, sizes) for level, its, sizes in schedule)
    for way in ("fit", "own_loop"):
        assert result[way]["steps"] == 4
        assert result[way]["wu"] == pytest.approx(expected)


def test_torchvision_model_converted_and_trained_with_multiscale_sgd():
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # GroupNorm and average pooling: to_mfc has nothing to warn about
        result = _load("torchvision_msgd").main(tiny=True)
    assert result["val_mse_after"] < result["val_mse_before"]
    assert result["steps"] == 3
    assert result["wu_executed"] == pytest.approx(3 * _step_wu(0, [1, 2, 4]))  # split_batch(7, 3) = [1, 2, 4]


def test_flops_of_both_networks():
    counts = _load("flops").main(tiny=True)
    assert set(counts) == {"own MFC CNN", "ResNet-18 trunk, standard convs", "ResNet-18 trunk, MFCs"}
    for count in counts.values():
        assert count["training_step"] == 3 * count["forward"] > 0
    assert "rfft2" in counts["ResNet-18 trunk, MFCs"]["by_operation"]
    assert "rfft2" not in counts["ResNet-18 trunk, standard convs"]["by_operation"]


@pytest.mark.slow
@pytest.mark.parametrize("name", ["own_cnn_fmsgd", "torchvision_msgd", "flops"])
def test_examples_run_as_scripts(name):
    proc = subprocess.run([sys.executable, str(EXAMPLES / f"{name}.py"), "--tiny"], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip()
