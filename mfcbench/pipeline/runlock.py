"""The run lock: one Snakemake run per checkout. A run holds `<root>/.snakemake/mfcbench.lock` (fcntl.flock)
from parsing the workflow until it exits; the file says who holds it (`{"pid", "profile", "host"}`).

- A second run in the same checkout, of any profile, is refused while parsing (`hold` raises `RunLockError`,
  one line naming the other run's PID and profile), before Snakemake takes its own lock and before the
  workflow writes a file: two runs would overwrite each other's reports (reports/REPORT.md is shared).
- A dry run (`-n`) and the commands that only show the workflow (`--summary`, `--dag`, `--list-rules`, ...)
  neither take the lock nor are refused, as Snakemake's own lock leaves them alone; the Snakefile passes its
  command line (`sys.argv`) so `hold` can tell (the workflow cannot ask Snakemake while it is parsed).
- The jobs of a run inherit MFCBENCH_RUN_LOCK_HOLDER=<pid>: a job that parses the workflow again takes no
  lock, and the pipeline's own nested `dvc --wait-for-lock repro prepare@<name>` passes `refusal`, while a
  `dvc repro` from another shell is refused before DVC touches the outputs (the prepare stages' outputs are
  `persist`, so DVC never deletes them before the command runs).
- The kernel drops the flock when the run ends, even on kill -9: the file then holds a dead PID and the
  next run takes it. A flock still held under a PID of this host that is gone (a process the dead run
  forked kept the file open) is taken over too: the file is replaced by a new one.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
from pathlib import Path

LOCK_ENV = "MFCBENCH_RUN_LOCK_HOLDER"
_HELD: list[int] = []  # the open lock file of this process (kept open for its lifetime)
# Snakemake's options that run no job (its own lock is not taken): a dry run, and what only shows the workflow
_NO_JOBS = {"-n", "--dry-run", "--dryrun", "--dry_run", "--summary", "-S", "--detailed-summary", "-D", "--dag",
            "--rulegraph", "--filegraph", "--d3dag", "--list-rules", "--list", "-l", "--list-target-rules", "--lt",
            "--lint", "--list-changes", "--lc", "--print-compilation", "--containerize", "--export-cwl",
            "--archive", "--report", "--unlock", "--cleanup-metadata", "--cm"}


class RunLockError(ValueError):
    """Another run holds this checkout's run lock; names its PID and profile and the fix."""


def lock_path(root: str | Path) -> Path:
    return Path(root) / ".snakemake" / "mfcbench.lock"


def runs_no_jobs(argv: list[str] | None) -> bool:
    """Whether a Snakemake command line starts no run of its own: a dry run (`-n`, also within `-np`), an option
    that only shows or maintains the workflow, or a job of a run (`--mode subprocess|remote`). None (no command
    line known): a run."""
    for arg in (argv or [])[1:]:
        option = arg.split("=", 1)[0]
        if option in _NO_JOBS or option == "--mode" or (
                arg.startswith("-") and not arg.startswith("--") and arg[1:].isalpha() and "n" in arg[1:]):
            return True
    return False


def _read(fd: int) -> dict:
    """What the lock file says: {"pid", "profile", "host"} (a bare PID from an older run: profile unknown)."""
    os.lseek(fd, 0, os.SEEK_SET)
    text = os.read(fd, 4096).decode(errors="replace").strip()
    try:
        info = json.loads(text)
    except ValueError:
        info = {"pid": text.split()[0] if text else "unknown"}
    if not isinstance(info, dict):
        info = {"pid": str(info)}
    return {"pid": str(info.get("pid", "unknown")), "profile": str(info.get("profile", "unknown")),
            "host": str(info.get("host", ""))}


def _gone(info: dict) -> bool:
    """Whether the holder named by `info` is a process of this host that no longer exists."""
    if info["host"] != socket.gethostname() or not info["pid"].isdigit():
        return False
    try:
        os.kill(int(info["pid"]), 0)
    except ProcessLookupError:
        return True
    except OSError:
        return False
    return False


def _take(path: Path, profile: str, retried: bool = False) -> int:
    """The locked file descriptor of `path` with our record written in it. Raises RunLockError naming the
    run that holds it."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)  # not inherited by the jobs (PEP 446)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        info = _read(fd)
        stale = not retried and _gone(info) and os.fstat(fd).st_ino == os.stat(path).st_ino
        os.close(fd)
        if stale:  # held by a leftover of a dead run: a new file, which nobody holds, takes its place
            path.unlink()
            return _take(path, profile, retried=True)
        raise RunLockError(
            f"{path} is held by another run in this checkout (pid {info['pid']}, profile {info['profile']}): two "
            f"runs would overwrite each other's reports; wait for it to end (or stop it: kill {info['pid']}), "
            "then rerun") from None
    os.ftruncate(fd, 0)
    os.write(fd, json.dumps({"pid": os.getpid(), "profile": profile, "host": socket.gethostname()}).encode() + b"\n")
    return fd


def hold(root: str | Path, profile: str = "unknown", argv: list[str] | None = None) -> bool:
    """Take the lock for this process's lifetime (True). False, taking nothing, in a job of a run (it inherits
    LOCK_ENV) and for a command line that runs no job (`runs_no_jobs`). Raises RunLockError when another run
    holds it."""
    if os.environ.get(LOCK_ENV) or runs_no_jobs(argv):
        return False
    path = lock_path(root)
    path.parent.mkdir(parents=True, exist_ok=True)
    _HELD.append(_take(path, profile))
    os.environ[LOCK_ENV] = str(os.getpid())
    return True


def owner(root: str | Path) -> tuple[str, str, str] | None:
    """(pid, profile, host) of the process holding the lock, None when it is free."""
    try:
        fd = os.open(lock_path(root), os.O_RDONLY)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        info = _read(fd)
        return info["pid"], info["profile"], info["host"]
    finally:
        os.close(fd)  # closing drops the shared lock taken above
    return None


def holder(root: str | Path) -> str | None:
    """The PID of the process holding the lock ('unknown' when unreadable), None when free."""
    held = owner(root)
    return None if held is None else held[0]


def refusal(root: str | Path) -> str | None:
    """One line when a Snakemake run other than our own parent holds the lock, else None."""
    pid = holder(root)
    if pid is None or os.environ.get(LOCK_ENV) == pid:
        return None
    return (f"{lock_path(root)} is held by a running Snakemake (pid {pid}): `dvc repro` would rebuild data/prepared "
            "under its jobs; wait for that run to end (or stop it), then rerun dvc repro")
