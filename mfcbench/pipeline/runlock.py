"""The run lock (issue 20): a Snakemake run holds `<root>/.snakemake/mfcbench.lock` (fcntl.flock) from
parsing the workflow until it exits, so `dvc repro` refuses to rebuild data/prepared under its jobs.

The Snakefile takes it in its main process only (`hold`) and exports MFCBENCH_RUN_LOCK_HOLDER=<pid>:
the jobs inherit it, so the pipeline's own nested `dvc --wait-for-lock repro prepare@<name>` passes the
check, while a `dvc repro` from another shell is refused (`refusal`) before DVC touches the outputs
(the prepare stages' outputs are `persist`, so DVC never deletes them before the command runs).
The kernel drops the lock when the process ends, even on kill -9: no stale lock to clean up.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

LOCK_ENV = "MFCBENCH_RUN_LOCK_HOLDER"
_HELD: list[int] = []  # the open lock file of this process (kept open for its lifetime)


def lock_path(root: str | Path) -> Path:
    return Path(root) / ".snakemake" / "mfcbench.lock"


def hold(root: str | Path) -> bool:
    """Take the lock for this process's lifetime; False in a job of a run (it inherits LOCK_ENV) or when
    another run holds it (Snakemake's own locking decides about that run)."""
    if os.environ.get(LOCK_ENV):
        return False
    path = lock_path(root)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)  # not inherited by the jobs (PEP 446)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return False
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    _HELD.append(fd)
    os.environ[LOCK_ENV] = str(os.getpid())
    return True


def holder(root: str | Path) -> str | None:
    """The PID written by the process holding the lock ('unknown' when unreadable), None when free."""
    try:
        fd = os.open(lock_path(root), os.O_RDONLY)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return os.read(fd, 64).decode(errors="replace").strip() or "unknown"
    finally:
        os.close(fd)  # closing drops the shared lock taken above
    return None


def refusal(root: str | Path) -> str | None:
    """One line when a Snakemake run other than our own parent holds the lock, else None."""
    pid = holder(root)
    if pid is None or os.environ.get(LOCK_ENV) == pid:
        return None
    return (f"{lock_path(root)} is held by a running Snakemake (pid {pid}): `dvc repro` would rebuild data/prepared "
            "under its jobs; wait for that run to end (or stop it), then rerun dvc repro")
