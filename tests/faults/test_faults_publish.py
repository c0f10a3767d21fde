"""Publishing is an explicit, verified act (issue 20, "Broken" 3): an ordinary run writes only untracked
outputs; `publish` writes exactly what the last run built into reports/published/<profile>/, and a
hand-edited snapshot is named by `publish --check`."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from _cluster import CONFIG, make_repo

from mfcbench.cli import main


def _reports(tmp_path: Path) -> Path:
    reports = tmp_path / "reports"
    reports.mkdir()
    (reports / "claims.csv").write_text("claim,verdict\nx,REPRODUCED\n")
    (reports / "REPORT.md").write_text("# report\n")
    return reports


def test_publish_copies_verifies_and_check_names_a_hand_edited_file(tmp_path, capsys):
    reports = _reports(tmp_path)
    root = ["--reports-dir", str(reports), "--published-root", str(tmp_path / "published")]
    assert main(["publish", "--profile", "p", *root, "claims.csv", "REPORT.md"]) == 0
    snapshot = tmp_path / "published" / "p"
    assert (snapshot / "claims.csv").read_bytes() == (reports / "claims.csv").read_bytes()
    assert oct((snapshot / "claims.csv").stat().st_mode & 0o777) == oct(0o666 & ~_umask())
    assert main(["publish", "--profile", "p", "--check", *root]) == 0

    (snapshot / "claims.csv").write_text("claim,verdict\nx,DEVIATES\n")  # edited by hand, ready to be committed
    capsys.readouterr()
    assert main(["publish", "--profile", "p", "--check", *root]) == 1
    err = capsys.readouterr().err
    assert f"{snapshot / 'claims.csv'} (differs from {reports / 'claims.csv'})" in err and "REPORT.md" not in err
    assert "snakemake publish --cores all --configfile workflow/config/p.yaml" in err  # the target before --configfile
    (snapshot / "fig9.png").write_bytes(b"a figure this profile no longer builds")
    assert main(["publish", "--profile", "p", *root, "claims.csv", "REPORT.md"]) == 0  # restores what the run built
    assert sorted(p.name for p in snapshot.iterdir()) == ["REPORT.md", "SHA256SUMS", "claims.csv"]
    assert main(["publish", "--profile", "p", "--check", *root]) == 0

    (reports / "REPORT.md").unlink()
    assert main(["publish", "--profile", "p", *root, "claims.csv", "REPORT.md"]) == 1
    assert "REPORT.md missing; build them first" in capsys.readouterr().err


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@pytest.mark.slow
def test_an_ordinary_run_plans_no_publish_and_the_publish_target_does(tmp_path):
    if shutil.which("snakemake") is None:
        pytest.skip("snakemake is not installed")
    repo = make_repo(tmp_path / "repo")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DVC_", "MFCBENCH_CELLS", "MFCBENCH_SUMMARY"))}
    env.update(OMP_NUM_THREADS="1", MFCBENCH_OFFLINE="1", PYTHONPATH=".")

    def plan(*targets):
        proc = subprocess.run([sys.executable, "-m", "snakemake", "-n", "-p", *targets, "--configfile", CONFIG],
                              cwd=repo, env=env, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr[-3000:]
        return proc.stdout + proc.stderr

    assert not re.search(r"^publish\s+1$", plan(), re.M)
    planned = plan("publish")
    assert re.search(r"^publish\s+1$", planned, re.M)
    assert "python -m mfcbench publish --profile minimal --reports-dir reports" in planned and "claims.csv" in planned
