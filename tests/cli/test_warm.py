"""The warm start (mfcbench/cli/warm.py): a command forked from a warm server behaves as a cold one."""

from __future__ import annotations

import csv
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from mfcbench.cli import warm

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="abstract Unix sockets are Linux's")

CONFIG = "image_size: 16\niterations: [4, 4, 4]\nlevels: 3\nbatch_size: 2\nval_size: 8\nval_every: 2\n" \
         "checkpoint_every: 2\nmodel: {width: 0.25}\n"


def _env(flag: str, **extra: str) -> dict[str, str]:
    return {**os.environ, warm.ENV_FLAG: flag, warm.IDLE_ENV: "20", "OMP_NUM_THREADS": "1", **extra}


def _train(tmp_path: Path, name: str, flag: str, *args: str, **extra: str) -> subprocess.CompletedProcess:
    config = tmp_path / "cfg.yaml"
    config.write_text(CONFIG)
    cmd = [sys.executable, "-m", "mfcbench", "train", "--task", "denoise", "--dataset", "skimage",
           "--arch", "resnet", "--strategy", "msgd", "--seed", "1", "--config", str(config),
           "--device", "cpu", "--out", str(tmp_path / name), *args]
    return subprocess.run(cmd, env=_env(flag, **extra), capture_output=True, text=True, timeout=300)


def _results(cell: Path) -> tuple[dict, list[dict], dict]:
    metrics = json.loads((cell / "metrics.json").read_text())
    kept = {k: v for k, v in metrics.items() if "seconds" not in k and k not in ("manifest", "peak_memory_mb")}
    with open(cell / "curve.csv", newline="") as f:
        curve = [{k: v for k, v in row.items() if "seconds" not in k} for row in csv.DictReader(f)]
    weights = torch.load(cell / "checkpoint.pt", weights_only=True)["model"]
    return kept, curve, weights


def test_a_warm_cell_equals_a_cold_one_bit_for_bit(tmp_path):
    cold = _train(tmp_path, "cold", "0")
    hot = _train(tmp_path, "warm", "1")
    assert cold.returncode == 0 and hot.returncode == 0, cold.stderr + hot.stderr
    (m_cold, c_cold, w_cold), (m_hot, c_hot, w_hot) = _results(tmp_path / "cold"), _results(tmp_path / "warm")
    assert m_cold.keys() == m_hot.keys() and m_cold == m_hot
    assert c_cold == c_hot
    assert w_cold.keys() == w_hot.keys() and all(torch.equal(w_cold[k], w_hot[k]) for k in w_cold)
    assert "ok: val_mse" in hot.stderr + hot.stdout  # the job's streams are the caller's


def test_a_refused_start_exits_as_a_cold_one(tmp_path):
    cold = _train(tmp_path, "c", "0", "--set", "levels=0")
    hot = _train(tmp_path, "w", "1", "--set", "levels=0")
    assert cold.returncode != 0 and hot.returncode == cold.returncode
    assert hot.stderr.strip().splitlines()[-1] == cold.stderr.strip().splitlines()[-1].replace("/c", "/w")


def test_a_killed_caller_stops_its_job(tmp_path):
    config = tmp_path / "cfg.yaml"
    config.write_text(CONFIG.replace("[4, 4, 4]", "[100000, 4, 4]"))
    cmd = [sys.executable, "-m", "mfcbench", "train", "--task", "denoise", "--dataset", "skimage", "--arch",
           "resnet", "--strategy", "sgd", "--config", str(config), "--device", "cpu", "--out", str(tmp_path / "k")]
    caller = subprocess.Popen(cmd, env=_env("1"), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    for line in caller.stdout:  # the job's own output, through the caller's stream
        if "phase 1/" in line:
            break
    time.sleep(3)
    caller.send_signal(signal.SIGTERM)
    assert caller.wait(timeout=60) == 130  # the job stopped on SIGTERM as a cold one does
    assert (tmp_path / "k" / "checkpoint.pt").exists() and not (tmp_path / "k" / "metrics.json").exists()


def test_the_server_leaves_when_idle(tmp_path):
    assert _train(tmp_path, "a", "1", **{warm.IDLE_ENV: "1"}).returncode == 0
    name = warm.server_name(_env("1", **{warm.IDLE_ENV: "1"}))
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and warm.listening(name):
        time.sleep(0.5)
    assert not warm.listening(name)


def test_the_server_is_chosen_by_what_torch_reads_at_start():
    base = {"PATH": "/bin", "OMP_NUM_THREADS": "1"}
    assert warm.server_name(base) == warm.server_name({**base, "HOME": "/elsewhere"})
    assert warm.server_name(base) != warm.server_name({**base, "OMP_NUM_THREADS": "2"})
    assert warm.server_name(base) != warm.server_name({**base, "MALLOC_MMAP_THRESHOLD_": "1"})


def test_no_server_means_the_command_runs_here(monkeypatch):
    def fail(*args, **kwargs):
        raise OSError("no fork here")

    monkeypatch.setattr(warm.subprocess, "Popen", fail)
    monkeypatch.setattr(warm, "server_name", lambda environ=os.environ: "mfcbench-warm-test-none")
    assert warm.run_warm(["train", "--help"]) is None


def test_another_users_request_is_refused(monkeypatch):
    """The abstract namespace is shared by every user: the server checks the caller's uid."""
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind("\0mfcbench-warm-test-peer")
    server.listen(1)
    client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    client.connect("\0mfcbench-warm-test-peer")
    conn, _ = server.accept()
    uid = warm._peer_uid(conn)
    assert uid == os.getuid()
    for s in (conn, client, server):
        s.close()


def test_a_server_that_cannot_start_falls_back_at_once(monkeypatch):
    """A server that exits without holding the name (e.g. abstract sockets refused) does not keep the caller waiting."""
    monkeypatch.setattr(warm, "server_name", lambda environ=os.environ: "mfcbench-warm-test-gone")
    monkeypatch.setattr(warm, "_start_server", lambda name: subprocess.Popen([sys.executable, "-c", "pass"]))
    started = time.monotonic()
    assert warm.run_warm(["train", "--help"]) is None
    assert time.monotonic() - started < warm.START_TIMEOUT_S / 4
