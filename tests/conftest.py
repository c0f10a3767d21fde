"""Shared test settings: CPU-only, few threads, deterministic."""

import os
import sys
from pathlib import Path

os.environ.setdefault("MFCBENCH_OFFLINE", "1")
# the pipelines the tests run start their jobs warm (cli/warm.py); each test's copy of the package has a
# server of its own, which leaves soon after the test instead of after the default idle time
os.environ.setdefault("MFCBENCH_WARM_IDLE", "30")
# tests/ mirrors the package (tests/<package>/test_*.py); the shared helpers of the end-to-end tests
# (tests/_cluster.py) are imported as a top-level module from any of those folders.
sys.path.insert(0, str(Path(__file__).resolve().parent))

import pytest
import torch

torch.set_num_threads(max(1, min(2, torch.get_num_threads())))


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    yield


def pytest_collection_modifyitems(config, items):
    """GPU tests are skipped cleanly when CUDA is absent."""
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
