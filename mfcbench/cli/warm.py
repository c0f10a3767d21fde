"""Warm start for the pipeline's jobs: one process that has imported torch forks each command.

A pipeline job is `python -m mfcbench <command> ...`; starting Python and importing torch (and
torch._dynamo, which the first optimizer imports) costs several seconds a job, more than a small
cell's training. With `MFCBENCH_WARM=1` (the Snakefile sets it) the command is sent to a server that
imported them once: it forks a process that runs exactly what a fresh `python -m mfcbench` would, in
the caller's folder, environment and standard streams, and the caller exits with its status. So each
cell keeps its own files, checkpoint, resume and seeds: only the start is shared.

- The server is found by an abstract Unix socket named from what a fresh process would import: the
  Python executable, the package's folder and every source file's size and mtime, and the environment
  variables read when torch loads (threads, allocator, devices). Any change starts another server.
- It forks before any torch operation runs (no thread pool exists yet), and the job reseeds Python's
  `random` as a fresh process would; cell results are bit-identical to a cold start (tests/test_warm.py).
- It exits after `MFCBENCH_WARM_IDLE` seconds without a request (default 180); a running job does not
  depend on it. A caller that is interrupted or killed takes its job down (SIGTERM, the same as a cold
  job gets: it keeps its last checkpoint).
- Anything unavailable (not Linux, a server that cannot start) falls back to running in the caller.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import select
import signal
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

ENV_FLAG = "MFCBENCH_WARM"
IDLE_ENV = "MFCBENCH_WARM_IDLE"
DEFAULT_IDLE_S = 180.0
START_TIMEOUT_S = 120.0
# variables read at interpreter or torch start (a server serves only callers that agree on them)
START_ENV = re.compile(r"^(LANG$|LC_|OMP_|MKL_|KMP_|GOMP_|OPENBLAS_|TORCH|PYTORCH_|CUDA_|MALLOC_|LD_|PYTHON|NUMEXPR_|VECLIB_|GOTO_)")
PRELOAD = ("torch", "torch._dynamo", "mfcbench.cli.train", "mfcbench.train.runner", "mfcbench.train.cell",
           "mfcbench.measure.timing", "mfcbench.experiments.ddpm")
_HEADER = struct.Struct("!I")


def enabled(environ=os.environ) -> bool:
    return environ.get(ENV_FLAG) == "1" and sys.platform.startswith("linux")


def server_name(environ=os.environ) -> str:
    """The abstract socket of the server that a fresh process with this environment would equal."""
    package = Path(__file__).resolve().parents[1]
    h = hashlib.sha256(f"{sys.executable}\0{sys.version}\0{package}\0".encode())
    for path in sorted(package.rglob("*")):
        if path.suffix in (".py", ".yaml", ".json") and "__pycache__" not in path.parts:
            st = path.stat()
            h.update(f"{path.relative_to(package)}\0{st.st_size}\0{st.st_mtime_ns}\0".encode())
    for key in sorted(k for k in environ if START_ENV.match(k)):
        h.update(f"{key}={environ[key]}\0".encode())
    return f"mfcbench-warm-{os.getuid()}-{h.hexdigest()[:24]}"


# ---- the caller -----------------------------------------------------------------------------------------

def run_warm(argv: list[str]) -> int | None:
    """Run `python -m mfcbench <argv>` in a fork of the warm server; None when no server is to be had."""
    name = server_name()
    conn = _connect(name) or _start_and_connect(name)
    if conn is None:
        return None
    with conn:
        request = json.dumps({"argv": argv, "cwd": os.getcwd(), "env": dict(os.environ)}).encode()
        try:
            socket.send_fds(conn, [_HEADER.pack(len(request)) + request], [0, 1, 2])
        except OSError:  # a closed standard stream cannot be passed on: run here
            return None
        pid_bytes = _recv_exact(conn, _HEADER.size)
        if pid_bytes is None:
            return None
        job = _HEADER.unpack(pid_bytes)[0]
        forward = lambda signum, frame: _kill(job, signal.SIGTERM)  # noqa: E731 - a signal handler
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(signum, forward)
        status = _recv_exact(conn, 4)
    if status is None:  # the server's handler died: the job is gone with it
        print("mfcbench: the warm server lost the job; run it again (MFCBENCH_WARM=0 runs it here)", file=sys.stderr)
        return 1
    return struct.unpack("!i", status)[0]


def listening(name: str) -> bool:
    """Whether a server holds `name`, read from /proc/net/unix (connecting would count as a request)."""
    try:
        return any(line.rstrip().endswith(" @" + name) for line in Path("/proc/net/unix").read_text().splitlines())
    except OSError:
        return False


def _connect(name: str) -> socket.socket | None:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect("\0" + name)
        return sock
    except OSError:
        sock.close()
        return None


def _start_and_connect(name: str) -> socket.socket | None:
    """Start a server (one wins the name; others exit at once) and wait until it answers."""
    if listening(name):  # one holds the name but refused this connection (its backlog is full): wait for it
        server = None
    else:
        server = _start_server(name)
        if server is None:
            return None
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        conn = _connect(name)
        if conn is not None:
            return conn
        if server is not None and server.poll() is not None and not listening(name):
            return None  # it failed, or lost the name to a server that has gone since: run here
        time.sleep(0.05)
    return None


def _start_server(name: str) -> subprocess.Popen | None:
    log = open(os.devnull, "wb")  # noqa: SIM115 - handed to the detached server
    try:
        from . import MALLOC_ENV

        return subprocess.Popen([sys.executable, "-m", "mfcbench.cli.warm", name], stdin=subprocess.DEVNULL, stdout=log,
                                stderr=log, start_new_session=True, close_fds=True, cwd=os.getcwd(),
                                env={**os.environ, **MALLOC_ENV})
    except OSError:
        return None
    finally:
        log.close()


def _recv_exact(conn: socket.socket, n: int) -> bytes | None:
    data = b""
    while len(data) < n:
        try:
            chunk = conn.recv(n - len(data))
        except InterruptedError:
            continue
        if not chunk:
            return None
        data += chunk
    return data


def _kill(pid: int, signum: int) -> None:
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        pass


# ---- the server ----------------------------------------------------------------------------------------

def serve(name: str, idle_s: float) -> None:
    """Bind the name (or leave: another server has it), preload, then fork a handler per request."""
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        listener.bind("\0" + name)
    except OSError:
        return
    import importlib

    for module in PRELOAD:
        try:
            importlib.import_module(module)
        except ImportError:
            pass  # an extra that is not installed: the job imports it, or fails, as a cold one would
    listener.listen(64)
    listener.settimeout(idle_s)
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # handlers are reaped by the kernel
    while True:
        try:
            conn, _ = listener.accept()
        except TimeoutError:
            return
        if _peer_uid(conn) != os.getuid():  # the abstract namespace is shared: serve this user only
            conn.close()
            continue
        sys.stdout.flush()
        sys.stderr.flush()
        if os.fork() == 0:
            listener.close()
            code = 1
            try:
                code = _handle(conn)
            finally:
                os._exit(code)
        conn.close()


def _peer_uid(conn: socket.socket) -> int:
    """The user id of the process at the other end (SO_PEERCRED: pid, uid, gid)."""
    return struct.unpack("3i", conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i")))[1]


def _handle(conn: socket.socket) -> int:
    """One request: receive it and the caller's streams, fork the job, pass on its pid and status,
    and end the job if the caller goes away."""
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    header, fds, _, _ = socket.recv_fds(conn, _HEADER.size, 3)
    if len(header) < _HEADER.size or len(fds) != 3:
        return 1
    request = json.loads(_recv_exact(conn, _HEADER.unpack(header)[0]) or b"{}")
    job = os.fork()
    if job == 0:
        try:
            conn.close()
            _run_job(request, fds)
        finally:
            os._exit(1)
    for fd in fds:
        os.close(fd)
    conn.sendall(_HEADER.pack(job))
    status = _wait(job, conn)
    try:
        conn.sendall(struct.pack("!i", status))
    except OSError:
        pass
    return 0


def _wait(job: int, conn: socket.socket) -> int:
    """The job's exit status as a shell reports it (128 + signal); SIGTERM to it if the caller is gone."""
    caller_gone = False
    while True:
        done, raw = os.waitpid(job, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(raw) if os.WIFEXITED(raw) else 128 + os.WTERMSIG(raw)
        readable, _, _ = select.select([conn], [], [], 0.2)
        if readable and not caller_gone and not conn.recv(1, socket.MSG_PEEK):
            caller_gone = True
            _kill(job, signal.SIGTERM)


def _run_job(request: dict, fds: list[int]) -> None:
    """In the forked job: become the caller's process (streams, folder, environment, fresh random
    state, default signals), run the command, exit as the program would."""
    for target, fd in enumerate(fds):
        os.dup2(fd, target)
        os.close(fd)
    _fresh_streams()
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGCHLD):
        signal.signal(signum, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    os.environ[ENV_FLAG] = "0"  # a command the job starts runs cold
    import random

    random.seed()
    sys.argv = ["python -m mfcbench", *request["argv"]]
    code = 1
    try:
        from . import main

        code = main(request["argv"])
    except SystemExit as stop:
        code = stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 1)
    except KeyboardInterrupt:
        code = 130
    except BaseException:  # noqa: BLE001 - printed as a cold process would, then the exit status
        import traceback

        traceback.print_exc()
        code = 1
    finally:
        import atexit

        atexit._run_exitfuncs()
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
    os._exit(code)


def _fresh_streams() -> None:
    """Standard streams as a fresh interpreter opens them on these descriptors: stdout line-buffered
    only on a terminal, stderr line-buffered."""
    def stream(fd: int, mode: str, line: bool, errors: str):
        raw = io.FileIO(fd, mode, closefd=False)
        buffered = io.BufferedReader(raw) if mode == "r" else io.BufferedWriter(raw)
        return io.TextIOWrapper(buffered, encoding=sys.stdout.encoding, errors=errors, line_buffering=line)

    sys.stdin = stream(0, "r", False, "strict")
    sys.stdout = stream(1, "w", os.isatty(1), "strict")
    sys.stderr = stream(2, "w", True, "backslashreplace")


if __name__ == "__main__":
    serve(sys.argv[1], float(os.environ.get(IDLE_ENV, DEFAULT_IDLE_S)))
