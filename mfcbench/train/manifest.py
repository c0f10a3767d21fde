"""The manifest of a cell: everything needed to say which code, data and machine made a number."""

from __future__ import annotations

import datetime as _dt
import functools
import hashlib
import os
import platform
import socket
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

from .config import config_hash

# Distribution names; read from package metadata so recording them imports nothing heavy.
VERSIONED = ("torch", "torchvision", "numpy", "mfcbench", "fvcore", "neuraloperator", "scikit-image",
             "torchmetrics", "segment-anything")


# The packages whose code makes a trained number (issue 20): a change here does not retrain on its own
# ("code alone does not retrain"), but every cell records the digest it was trained under and the
# report flags cells whose digest differs from the current one (`python -m mfcbench grid --stale-code`).
TRAINING_PACKAGES = ("core", "layers", "models", "tasks", "data", "strategies", "train")


def training_code_files(root: str | Path | None = None) -> list[Path]:
    """The training modules' source files, sorted by their path under the package folder."""
    root = Path(root) if root else Path(__file__).resolve().parent.parent
    return sorted((p for pkg in TRAINING_PACKAGES for p in (root / pkg).rglob("*.py")),
                  key=lambda p: p.relative_to(root).as_posix())


def code_digest(root: str | Path | None = None) -> str:
    """sha256 over the training modules' relative paths and bytes (a rename or an edit changes it)."""
    root = Path(root) if root else Path(__file__).resolve().parent.parent
    digest = hashlib.sha256()
    for path in training_code_files(root):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()


@functools.lru_cache(maxsize=1)
def training_code() -> str:
    """This process's training-code digest, computed once (manifest.training_code)."""
    return code_digest()


def now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def git_state(path: str | Path | None = None) -> tuple[str | None, bool | None]:
    """(commit, dirty) of the checkout holding mfcbench; (None, None) without git or a repo. The
    committed report snapshot (reports/published/, which the pipeline itself rewrites) does not
    make a checkout dirty: it is an output, never read by the code that makes results."""
    cwd = Path(path) if path else Path(__file__).resolve().parent
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=10)
        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ":/",
                                 ":(top,exclude)reports/published"], cwd=cwd, capture_output=True, text=True,
                                timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None, None
    sha = commit.stdout.strip() if commit.returncode == 0 else None
    dirty = bool(status.stdout.strip()) if status.returncode == 0 else None
    return sha, dirty


def versions() -> dict[str, str]:
    """Versions of the packages that can change a result, for those installed here."""
    import torch

    from .. import __version__

    out = {"python": platform.python_version(), "torch_runtime": torch.__version__, "mfcbench": __version__}
    if torch.cuda.is_available():  # cuFFT ships with the CUDA runtime torch was built against
        out.update(cuda=str(torch.version.cuda), cudnn=str(torch.backends.cudnn.version()),
                   gpu=torch.cuda.get_device_name(0))
    for name in VERSIONED:
        try:
            out.setdefault(name, metadata.version(name))
        except metadata.PackageNotFoundError:
            continue
    return out


def device_description(device) -> str:
    import torch

    device = torch.device(device)
    if device.type == "cuda":
        return f"cuda: {torch.cuda.get_device_name(device)}"
    return f"cpu: {cpu_model() or platform.processor() or platform.machine()}"


def cpu_model(cpuinfo: str | Path = "/proc/cpuinfo") -> str | None:
    """The processor's "model name" from /proc/cpuinfo (None where there is no such file or line)."""
    try:
        text = Path(cpuinfo).read_text(errors="replace")
    except OSError:
        return None
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() == "model name":
            return value.strip()
    return None


def build_line(config_text: str, prefix: str) -> str | None:
    """The version part of a `torch.__config__.show()` line starting (after "- ") with `prefix`."""
    for line in config_text.splitlines():
        line = line.strip().removeprefix("- ")
        if line.startswith(prefix):
            return line.removeprefix(prefix).strip() or None
    return None


def compute_provenance() -> dict[str, Any]:
    """What can make the same code give different last bits on another machine (issue 18 item 8):
    processor model, the instruction set torch dispatches to, MKL and oneDNN versions, thread counts."""
    import torch

    shown = torch.__config__.show()
    return {
        "cpu_model": cpu_model(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "mkl": build_line(shown, "Intel(R) oneAPI Math Kernel Library") if torch.backends.mkl.is_available() else None,
        "onednn": build_line(shown, "Intel(R) MKL-DNN") if torch.backends.mkldnn.is_available() else None,
        "threads": torch.get_num_threads(),
        "interop_threads": torch.get_num_interop_threads(),
        "thread_env": {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")},
    }


def build_manifest(*, config: dict[str, Any], seed: int, device, dataset: str | None,
                   dataset_checksum: str | None, started_at: str, finished_at: str | None = None) -> dict[str, Any]:
    import torch

    commit, dirty = git_state()
    return {
        "git_commit": commit,
        "git_dirty": dirty,
        "training_code": training_code(),
        "versions": versions(),
        "device": device_description(device),
        "seed": seed,
        "config_hash": config_hash(config),
        "dataset": dataset,
        "dataset_checksum": dataset_checksum,
        "hostname": socket.gethostname(),
        "threads": torch.get_num_threads(),
        "compute": compute_provenance(),
        "allocator_env": {k: os.environ.get(k) for k in ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")},
        "started_at": started_at,
        "finished_at": finished_at or now(),
    }
