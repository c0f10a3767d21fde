"""The shipped SLURM profile on a real (one-node, loopback) SLURM cluster.

Needs root (slurmd, /etc/slurm) and Debian's slurmctld/slurmd/slurm-client/munge, which the
fixture installs with apt-get when they are missing; otherwise it skips, saying why. About three
minutes on 2 cores: pytest -m slow tests/pipeline/test_slurm.py

Traps (handled in tests/_cluster.py and here):
- the plugin strips SLURM_* inside jobs: slurm.conf goes to /etc/slurm/slurm.conf (backed up,
  restored), since SLURM_CONF would not reach the jobs;
- no slurmdbd: sacct never sees a job end, so the plugin polls with `--slurm-status-command squeue`
  and submits with `--slurm-no-account`;
- a job that is never seen to finish: every Snakemake call is bounded (run_bounded): on timeout
  SIGINT makes Snakemake scancel its jobs (SIGTERM would wait for them), then SIGKILL; the test
  cancels what is left and fails instead of hanging.
"""

from __future__ import annotations

import json
import re
import shutil
import sys
import time
from pathlib import Path

import pytest
from _cluster import (
    CONF,
    CONFIG,
    PROFILE,
    LoopbackSlurm,
    Timeout,
    Unavailable,
    job_counts,
    make_repo,
    require_ok,
    run_bounded,
)

pytestmark = pytest.mark.slow

SNAKEMAKE = [sys.executable, "-m", "snakemake"]
# Only site values change on the command line (the profile is the file users copy):
SITE = [
    # this cluster has no accounts (plugin 2.8.0 ignores the flag: it tries to guess one with sacct,
    # which fails without slurmdbd, logs "Unable to guess SLURM account" and submits without -A)
    "--slurm-no-account",
    "--slurm-status-command", "squeue",  # no slurmdbd: sacct would never see a job finish
    # no partition: the cluster's only partition is its default; no GPU: the config says gpu: false
]
FAST = [  # test speed only: first status check after 2 s (default 40), keep logs to read job ids
    "--slurm-init-seconds-before-status-checks", "2",
    "--slurm-keep-successful-logs",
]
SUBMITTED = re.compile(r"Job \d+ has been submitted with SLURM jobid (\d+) \(log: (\S+)\)")
# The profile's cells and their gathered table: prepare, train per cell (cell.yaml is written at parse time), gather.
# (The report rules run the same way; each DAG level costs 15-35 s of job start-up and status
# polling here, so they are left out to keep the test near a minute and a half.)
TARGET = f"results/{PROFILE}/table4.csv"
TIMEOUT_S = 420


@pytest.fixture(scope="module")
def cluster():
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    conf_before = CONF.read_bytes() if CONF.is_file() else None
    cluster = LoopbackSlurm()
    try:
        cluster.start()
    except Unavailable as exc:
        pytest.skip(f"no loopback SLURM cluster: {exc}")
    try:
        yield cluster
    finally:
        workdir = cluster.dir
        cluster.stop()
        # nothing left behind: daemons, /etc/slurm, the cluster's temp dir
        assert cluster.alive() == [], f"daemons still running: {cluster.alive()}"
        assert not cluster.leftovers(), f"processes of our SLURM jobs still running: {cluster.leftovers()}"
        assert (CONF.read_bytes() if CONF.is_file() else None) == conf_before, "/etc/slurm/slurm.conf not restored"
        assert workdir is not None and not workdir.exists(), f"{workdir} left behind"


def _snakemake_slurm(repo: Path, timeout: float = TIMEOUT_S):
    args = [*SNAKEMAKE, TARGET, "--profile", "workflow/profiles/slurm", "--configfile", CONFIG, *SITE, *FAST]
    return run_bounded(args, repo, timeout)


def _cell_metrics(repo: Path) -> dict[str, dict]:
    """Cell folder -> what its training computed (not its timings or manifest)."""
    keep = ("metrics", "status", "iterations", "wu_executed", "params", "schedule")
    out = {}
    for path in sorted(Path(repo, "results", PROFILE).rglob("metrics.json")):
        record = json.loads(path.read_text())
        out[str(path.parent.relative_to(repo))] = {k: record.get(k) for k in keep}
    return out


def test_slurm_profile_trains_every_cell_as_a_slurm_job(cluster, tmp_path):
    # the reference: the same profile's cells trained locally
    local = make_repo(tmp_path / "local")
    require_ok(run_bounded([*SNAKEMAKE, TARGET, "--cores", "2", "--configfile", CONFIG], local, timeout=300), local)
    expected = _cell_metrics(local)
    assert len(expected) == 2, expected

    repo = make_repo(tmp_path / "slurm")
    started = time.perf_counter()
    try:
        proc = require_ok(_snakemake_slurm(repo), repo)
    except Timeout as exc:
        left = cluster.cancel_all()
        pytest.fail(f"the SLURM run never finished (jobs still active after cancel: {left}): {exc}")
    elapsed = time.perf_counter() - started

    # every job was a SLURM job, training included; SLURM ran them all to completion
    submitted = SUBMITTED.findall(proc.stdout)
    jobs = cluster.jobs()
    assert submitted, f"no SLURM submission in the log:\n{proc.stdout[-3000:]}"
    for jobid, log in submitted:
        assert jobs.get(jobid, ("", ""))[1] == "COMPLETED", f"SLURM job {jobid} ({log}): {jobs.get(jobid)}"
        assert Path(log).is_file(), f"no SLURM log {log}"
    train_logs = [log for _, log in submitted if "/rule_train/" in log]
    assert len(train_logs) == len(expected), f"{len(train_logs)} training jobs went to SLURM for {len(expected)} cells"
    assert "localrule" not in proc.stdout, "a job ran outside SLURM"
    counts = job_counts(proc.stdout)
    assert counts == {"prepare": 1, "train": 2, "gather": 1}, counts
    assert sum(counts.values()) == len(submitted), f"job stats {counts} vs {len(submitted)} SLURM jobs"
    assert (repo / TARGET).is_file()

    # the same numbers as the local run, bit for bit
    assert _cell_metrics(repo) == expected

    # a rerun submits nothing
    again = require_ok(_snakemake_slurm(repo, timeout=120), repo)
    assert "Nothing to be done" in again.stdout, again.stdout[-2000:]
    assert not SUBMITTED.findall(again.stdout)
    assert set(cluster.jobs()) == set(jobs), "the rerun submitted SLURM jobs"
    print(f"SLURM run: {len(submitted)} jobs in {elapsed:.0f} s")


def test_a_job_never_seen_to_finish_fails_the_run_in_time(cluster, tmp_path):
    """The guard every SLURM call above runs under: a hung job stops the test, and is cancelled."""
    (tmp_path / "Snakefile").write_text('rule hang:\n    output: "never.txt"\n    shell: "sleep 600"\n')
    before = set(cluster.jobs())
    started = time.perf_counter()
    with pytest.raises(Timeout) as stopped:
        run_bounded([*SNAKEMAKE, "--executor", "slurm", "--jobs", "1", *SITE, *FAST], tmp_path, timeout=15)
    assert time.perf_counter() - started < 15 + 60
    assert SUBMITTED.search(str(stopped.value)) and set(cluster.jobs()) - before, "the job was never submitted"
    assert cluster.cancel_all() == {}, "the hung job could not be cancelled"
    deadline = time.monotonic() + 20  # KillWait=2: its processes get SIGKILL soon after the cancel
    while cluster.leftovers() and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not cluster.leftovers(), "the cancelled job's processes still run"
