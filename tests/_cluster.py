"""Test helpers for tests/pipeline/test_slurm.py and tests/pipeline/test_dvc_remote.py: throw-away repo copies on a
minimal profile, a bounded command runner, and a one-node SLURM cluster on loopback.

Debian's `slurmctld slurmd slurm-client munge` (installed on demand when we are root and have
apt), run without systemd, cgroups or accounting: our own `munged` (own key and socket, as the
munge user), `slurmctld -D` and `slurmd -D -N localhost`, all started here and stopped by PID.
State, spool, logs and the munge socket live in one temp dir; the daemons listen on free ports.

Traps this module handles (each is commented where it is handled):
- slurm.conf must be at the default location /etc/slurm/slurm.conf: the Snakemake SLURM plugin
  strips SLURM_* variables inside jobs, so SLURM_CONF alone fails there. An existing file is
  backed up and restored; a file or folder we create is removed.
- no slurmdbd: `sacct` never sees jobs finish, so callers poll with `squeue`; MinJobAge keeps
  finished jobs visible to `squeue` for an hour so that a job is never lost between two polls.
- a cancelled Snakemake job step ignores SIGTERM: KillWait=2 has SLURM SIGKILL it 2 s later, and
  stop() ends, by PID, any process still carrying our SLURM_CLUSTER_NAME (and our slurmstepds).
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
COPY = ("Snakefile", "dvc.yaml", ".dvcignore", ".dvc", "workflow", "mfcbench", "pyproject.toml", ".gitignore")
GIT = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-c", "commit.gpgsign=false"]
PROFILE = "minimal"
# One denoise table on the embedded skimage data (tiny.yaml's table4), nothing else: two training
# cells whose results do not depend on the rest of the tiny profile.
MINIMAL = f"""\
profile: {PROFILE}
data_root: data
device: cpu
threads_per_cell: 1
measure: {{quick: true}}
extras: []
datasets:
  skimage:
    image_size: 16
    prepare_options: {{limit-train: 32, limit-val: 8}}
defaults:
  levels: 2
  batch_size: 2
  iterations: [3, 3]
  lr: 1.0e-3
  val_size: 8
  val_every: 3
  checkpoint_every: 3
  model: {{width: 0.25}}
tables:
  table4:
    task: denoise
    dataset: skimage
    archs: [resnet]
    strategies: [sgd, msgd]
    seeds: [0]
"""
CONFIG = f"workflow/config/{PROFILE}.yaml"


def copy_pipeline(dest: Path) -> Path:
    """The repo's pipeline files (COPY) copied into `dest` (no git)."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in COPY:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=shutil.ignore_patterns("__pycache__", "tmp", "cache"))
        elif src.exists():
            shutil.copy(src, dest / name)
    return dest


def commit_all(dest: Path, message: str = "copy") -> Path:
    """git init (when needed), add everything, commit."""
    if not (dest / ".git").exists():
        subprocess.run(["git", "init", "-q"], cwd=dest, check=True)
    subprocess.run(GIT + ["add", "-A"], cwd=dest, check=True)
    subprocess.run(GIT + ["commit", "-q", "-m", message], cwd=dest, check=True)
    return dest


def make_repo(dest: Path, *, dvc_profile: bool = False) -> Path:
    """The repo's pipeline files copied into a fresh git repo with the minimal profile, one commit.

    dvc_profile: point dvc.yaml's `vars` line at the minimal profile (as a user tracks a profile).
    """
    copy_pipeline(dest)
    (dest / CONFIG).write_text(MINIMAL)
    if dvc_profile:
        dvc_yaml = dest / "dvc.yaml"
        text = dvc_yaml.read_text()
        new = re.sub(r"workflow/config/[\w-]+\.yaml:", f"{CONFIG}:", text, count=1)
        assert new != text, "dvc.yaml has no `vars: - workflow/config/<profile>.yaml:...` line"
        dvc_yaml.write_text(new)
    return commit_all(dest)


def env() -> dict:
    """No DVC_* (we are not inside a DVC stage) nor SLURM_* (we are not inside a job)."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("DVC_", "SLURM_"))}
    return {**base, "OMP_NUM_THREADS": "1", "MFCBENCH_OFFLINE": "1", "PYTHONPATH": "."}


class Timeout(Exception):
    """A command did not finish in time (it was stopped, with its whole process group)."""


def run_bounded(args: list[str], cwd: Path, timeout: float) -> subprocess.CompletedProcess:
    """Run `args` (stdout+stderr together) and stop it and its children if it runs past `timeout`.

    The command gets its own process group, so on timeout the signals reach exactly what it
    started. SIGINT first: Snakemake then scancels its SLURM jobs and exits within seconds (on
    SIGTERM it would wait for the running jobs: "Will exit after finishing currently running
    jobs"); SIGKILL after 30 s.
    """
    proc = subprocess.Popen(args, cwd=cwd, env=env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, text=True, start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            out, _ = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, _ = proc.communicate()
        raise Timeout(f"{' '.join(map(str, args))} did not finish in {timeout:.0f} s:\n{out[-4000:]}") from None
    return subprocess.CompletedProcess(args, proc.returncode, out, "")


def require_ok(proc: subprocess.CompletedProcess, cwd: Path) -> subprocess.CompletedProcess:
    """Raise AssertionError with the command's output and any failing job log."""
    if proc.returncode != 0:
        logs = "\n".join(f"--- {p}\n{p.read_text(errors='replace')[-1500:]}" for p in Path(cwd, "logs").rglob("*.log")
                         if "rror" in p.read_text(errors="replace"))
        raise AssertionError(f"{' '.join(map(str, proc.args))} failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{logs}")
    return proc


def job_counts(snakemake_output: str) -> dict[str, int]:
    """Snakemake's "Job stats" table (rule -> count) from its output; {} when it ran nothing."""
    counts, inside = {}, False
    for line in snakemake_output.splitlines():
        if line.startswith("Job stats:"):
            counts, inside = {}, True
        elif inside:
            parts = line.split()
            if len(parts) == 2 and parts[1].isdigit():
                if parts[0] == "total":
                    inside = False
                else:
                    counts[parts[0]] = int(parts[1])
    return counts


PACKAGES = ("slurmctld", "slurmd", "slurm-client", "munge")
BINARIES = ("/usr/sbin/slurmctld", "/usr/sbin/slurmd", "/usr/sbin/munged", "/usr/bin/sbatch", "/usr/bin/squeue",
            "/usr/bin/sinfo", "/usr/bin/scancel")
CONF = Path("/etc/slurm/slurm.conf")
PARTITION = "debug"
# The node advertises more than this 2-core machine has (SlurmdParameters=config_overrides), so
# the shipped profile's requests (cpus_per_task=4, mem_mb up to 32000) fit without site edits.
NODE_CPUS, NODE_MEM_MB = 8, 64000
ACTIVE = ("PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "SUSPENDED", "RESIZING", "REQUEUED", "STOPPED")


class Unavailable(Exception):
    """The cluster cannot be brought up here; the message says why (tests skip with it)."""


def ensure_installed() -> None:
    """Install the Debian packages when a binary is missing (root + apt only), else say why not."""
    missing = [b for b in BINARIES if not os.access(b, os.X_OK)]
    if not missing:
        return
    if os.geteuid() != 0:
        raise Unavailable(f"{', '.join(missing)} missing and not root (cannot apt-get install {' '.join(PACKAGES)})")
    if shutil.which("apt-get") is None:
        raise Unavailable(f"{', '.join(missing)} missing and no apt-get")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["apt-get", "update", "-q"], ["apt-get", "install", "-y", "-q", "--no-install-recommends", *PACKAGES]):
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
        except subprocess.TimeoutExpired:
            raise Unavailable(f"{' '.join(cmd)} timed out") from None
        if proc.returncode != 0:
            raise Unavailable(f"{' '.join(cmd)} failed: {(proc.stderr or proc.stdout).strip()[-400:]}")
    missing = [b for b in BINARIES if not os.access(b, os.X_OK)]
    if missing:
        raise Unavailable(f"{', '.join(missing)} still missing after apt-get install")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pids_named(name: str) -> set[int]:
    pids = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == name:
                    pids.add(int(entry.name))
            except OSError:
                pass
    return pids


def _pids_with_env(marker: bytes) -> set[int]:
    """Processes whose (initial) environment holds `marker`, e.g. b"SLURM_CLUSTER_NAME=<ours>"."""
    pids = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                if marker in (entry / "environ").read_bytes().split(b"\0"):
                    pids.add(int(entry.name))
            except OSError:
                pass
    return pids


class LoopbackSlurm:
    """start() brings the cluster up (about 3 s); stop() tears everything down and restores /etc."""

    def __init__(self) -> None:
        self.dir: Path | None = None
        self.procs: dict[str, subprocess.Popen] = {}
        self._backup: Path | None = None
        self._created_etc_dir = False
        self._wrote_conf = False
        self._stepd_before: set[int] = set()
        # a name of our own: every process of our jobs carries SLURM_CLUSTER_NAME=<it> (the
        # plugin deletes SLURM_* from os.environ, but /proc/<pid>/environ keeps the initial one)
        self.name = f"mfcbench{os.getpid()}"

    # -- up ------------------------------------------------------------------------------------
    def start(self) -> "LoopbackSlurm":
        if os.geteuid() != 0:
            raise Unavailable("needs root (slurmd runs jobs as root, the config goes to /etc/slurm)")
        ensure_installed()
        try:
            munge = pwd.getpwnam("munge")
        except KeyError:
            raise Unavailable("no munge user (the munge package did not create it)") from None
        self._stepd_before = _pids_named("slurmstepd")
        self.dir = Path(tempfile.mkdtemp(prefix="mfcbench-slurm-"))
        self.dir.chmod(0o755)  # munged (as the munge user) must reach its own subfolder
        try:
            self._start_munge(munge)
            self._write_conf()
            for name in ("state", "spool"):
                (self.dir / name).mkdir()
            # -D: stay in the foreground, so the PID we hold is the daemon's (torn down by PID)
            self._spawn("slurmctld", ["/usr/sbin/slurmctld", "-D", "-i"])
            self._spawn("slurmd", ["/usr/sbin/slurmd", "-D", "-N", "localhost"])
            self._wait_idle(timeout=30)
        except BaseException:
            self.stop()
            raise
        return self

    def _start_munge(self, munge: pwd.struct_passwd) -> None:
        # An own key and socket: a munged already running on the machine is left alone.
        mdir = self.dir / "munge"
        mdir.mkdir()
        mdir.chmod(0o755)  # munged: "execute permissions for all required" on the socket folder
        key = mdir / "munge.key"
        key.write_bytes(os.urandom(1024))
        key.chmod(0o400)
        for path in (mdir, key):
            os.chown(path, munge.pw_uid, munge.pw_gid)
        self.munge_socket = mdir / "munge.socket"
        self._spawn("munged", ["/usr/sbin/munged", "--foreground", f"--socket={self.munge_socket}",
                               f"--key-file={key}", f"--pid-file={mdir / 'munged.pid'}",
                               f"--log-file={mdir / 'munged.log'}", f"--seed-file={mdir / 'munged.seed'}"],
                    user=munge.pw_name)  # munged refuses to run as root
        deadline = time.monotonic() + 10
        while not self.munge_socket.exists():
            if self.procs["munged"].poll() is not None or time.monotonic() > deadline:
                raise Unavailable(f"munged did not start: {self._log('munge/munged.log')}")
            time.sleep(0.05)

    def _write_conf(self) -> None:
        d = self.dir
        text = f"""\
# written by tests/_cluster.py (a throw-away loopback cluster); the previous file is restored
ClusterName={self.name}
SlurmctldHost=localhost
SlurmctldPort={_free_port()}
SlurmdPort={_free_port()}
SlurmUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={self.munge_socket}
# no cgroups, no accounting daemon
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SlurmdParameters=config_overrides
# finished jobs stay visible to squeue (the status command without slurmdbd)
MinJobAge=3600
# a cancelled job gets SIGKILL 2 s after SIGTERM (a Snakemake job step ignores SIGTERM until
# its own job ends: "Will exit after finishing currently running jobs")
KillWait=2
ReturnToService=2
StateSaveLocation={d}/state
SlurmdSpoolDir={d}/spool
SlurmctldPidFile={d}/slurmctld.pid
SlurmdPidFile={d}/slurmd.pid
SlurmctldLogFile={d}/slurmctld.log
SlurmdLogFile={d}/slurmd.log
NodeName=localhost NodeAddr=127.0.0.1 CPUs={NODE_CPUS} RealMemory={NODE_MEM_MB} State=UNKNOWN
PartitionName={PARTITION} Nodes=localhost Default=YES MaxTime=INFINITE State=UP
"""
        # Trap: the plugin strips SLURM_* inside jobs, so SLURM_CONF cannot point elsewhere; the
        # file must be at the default path. Back up what is there; restore it in stop().
        if not CONF.parent.exists():
            CONF.parent.mkdir(parents=True)
            self._created_etc_dir = True
        if CONF.exists() or CONF.is_symlink():
            self._backup = CONF.with_name(f"slurm.conf.mfcbench-backup-{os.getpid()}")
            os.replace(CONF, self._backup)
        self._wrote_conf = True
        CONF.write_text(text)
        (d / "slurm.conf").write_text(text)  # a copy beside the logs, for debugging

    def _spawn(self, name: str, cmd: list[str], **kw) -> None:
        out = open(self.dir / f"{name}.out", "wb")
        env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
        self.procs[name] = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                            env=env, start_new_session=True, **kw)
        out.close()

    def _wait_idle(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        state = ""
        while time.monotonic() < deadline:
            for name, proc in self.procs.items():
                if proc.poll() is not None:
                    raise Unavailable(f"{name} exited ({proc.returncode}): {self._log(name + '.out')} "
                                      f"{self._log(name + '.log')}")
            proc = subprocess.run(["sinfo", "-h", "-N", "-o", "%T"], capture_output=True, text=True, timeout=10)
            state = (proc.stdout + proc.stderr).strip()
            if proc.returncode == 0 and state in ("idle", "mixed", "allocated"):
                return
            time.sleep(0.3)
        raise Unavailable(f"the node never became idle in {timeout:.0f} s (sinfo: {state!r}); "
                          f"{self._log('slurmctld.log')} {self._log('slurmd.log')}")

    def _log(self, name: str) -> str:
        path = self.dir / name if self.dir else None
        return path.read_text(errors="replace")[-600:] if path and path.is_file() else ""

    # -- queries -------------------------------------------------------------------------------
    def jobs(self) -> dict[str, tuple[str, str]]:
        """Every job the controller knows (finished ones too, MinJobAge): id -> (name, state)."""
        proc = subprocess.run(["squeue", "-h", "--states=all", "-o", "%i|%j|%T"], capture_output=True, text=True,
                              timeout=30, check=True)
        rows = (line.split("|") for line in proc.stdout.splitlines() if line.strip())
        return {jobid: (name, state) for jobid, name, state in rows}

    def active(self) -> dict[str, tuple[str, str]]:
        return {jobid: job for jobid, job in self.jobs().items() if job[1] in ACTIVE}

    def cancel_all(self, timeout: float = 20) -> dict[str, tuple[str, str]]:
        """scancel every job of our partition; wait until none is active; return those still active."""
        subprocess.run(["scancel", "--full", f"--partition={PARTITION}"], capture_output=True, timeout=30)
        deadline = time.monotonic() + timeout
        while (left := self.active()) and time.monotonic() < deadline:
            time.sleep(0.5)
        return left

    # -- down ----------------------------------------------------------------------------------
    def stop(self) -> None:
        """Cancel jobs, stop the daemons by PID, restore /etc/slurm, remove the temp dir."""
        try:
            if "slurmctld" in self.procs and self.procs["slurmctld"].poll() is None:
                self.cancel_all()
        except (subprocess.SubprocessError, OSError):
            pass
        finally:
            for name in ("slurmd", "slurmctld", "munged"):  # reverse start order
                proc = self.procs.get(name)
                if proc is None or proc.poll() is not None:
                    continue
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=15)
            # step daemons of our jobs outlive slurmd (they are re-parented): give them time to
            # finish killing their jobs, then end those left, and any process of our jobs, by PID
            deadline = time.monotonic() + 15
            while self._stepds() and time.monotonic() < deadline:
                time.sleep(0.3)
            for pid in self._stepds() | self.leftovers():
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            self._restore_etc()
            if self.dir is not None:
                shutil.rmtree(self.dir, ignore_errors=True)

    def _restore_etc(self) -> None:
        if self._wrote_conf:
            CONF.unlink(missing_ok=True)
            self._wrote_conf = False
        if self._backup is not None:
            os.replace(self._backup, CONF)
            self._backup = None
        if self._created_etc_dir:
            shutil.rmtree(CONF.parent, ignore_errors=True)
            self._created_etc_dir = False

    def _stepds(self) -> set[int]:
        return _pids_named("slurmstepd") - self._stepd_before

    def leftovers(self) -> set[int]:
        """PIDs of processes our jobs started that still run (empty after stop())."""
        return _pids_with_env(f"SLURM_CLUSTER_NAME={self.name}".encode())

    def alive(self) -> list[int]:
        """PIDs of our daemons still running (empty after stop())."""
        return [p.pid for p in self.procs.values() if p.poll() is None]
