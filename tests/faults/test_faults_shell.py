"""Profile text never runs as a command (issue 20, "Broken" 4 and the profile-text faults): every value
that reaches a shell is quoted, paths are checked, and a broken profile is refused in one line naming
the file, line or key."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys

import pytest
import yaml
from _cluster import CONFIG, make_repo

from mfcbench.pipeline.profile_checks import ProfileError, check_profile, load_profile


@pytest.mark.parametrize("change, expected", [
    ({"data_root": "data\ntouch PWNED"}, "data_root: 'data\\ntouch PWNED' holds a control character, newline or quote"),
    ({"results_dir": "it's"}, "results_dir: \"it's\" holds a control character"),
    ({"logs_dir": ""}, "logs_dir: must be a non-empty path"),
    ({"datasets": {"skimage": {"image_size": 16, "prepare_options": {"limit-train": "32; touch PWNED"}}}},
     "datasets.skimage.prepare_options.limit-train: '32; touch PWNED' is not a plain number or word"),
    ({"defaults": {"lr": float("nan")}}, "defaults.lr: nan is not a finite number"),
    ({"datasets": {"skimage": {"image_size": 16}}, "defaults": {"batch_size": 10**9},
      "tables": {"table4": {"task": "denoise", "dataset": "skimage", "archs": ["resnet"], "strategies": ["sgd"]}}},
     "table4 (every cell): batch_size: 1000000000 images of 1 x 16 x 16 need about"),
])
def test_profile_values_that_would_misbehave_are_named(change, expected):
    config = {"profile": "p", "data_root": "data", "results_dir": "my results", **change}
    problems = check_profile(config)
    assert any(expected in p for p in problems), problems
    assert check_profile({"profile": "p", "data_root": "data", "results_dir": "my results"}) == []


def test_yaml_errors_and_duplicated_keys_name_the_file_and_line(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text("profile: p\ntables:\n  table4: {task: denoise}\n  table4: {task: deblur}\n")
    with pytest.raises(ProfileError, match=rf"{path}:4: key 'table4' is given twice \(first on line 3\)"):
        load_profile(path)
    path.write_text("profile: p\ndefaults:\n  lr: [1e-3\n")
    with pytest.raises(ProfileError, match=rf"{path}:\d+:\d+: YAML syntax error"):
        load_profile(path)
    path.write_text("profile: p\ndefaults: {lr: .nan}\n")
    assert "defaults.lr: nan is not a finite number" in check_profile(load_profile(path))[0]


@pytest.mark.slow
def test_profile_paths_reach_shells_quoted_and_run_nothing(tmp_path):
    """results_dir with a space and data_root holding `;touch PWNED;`: every planned command quotes them;
    the planned prepare command, run by a shell, prepares under the literal path and touches nothing."""
    if shutil.which("snakemake") is None:
        pytest.skip("snakemake is not installed")
    repo = make_repo(tmp_path / "repo")
    profile = yaml.safe_load((repo / CONFIG).read_text())
    profile.update(results_dir="my results", logs_dir="my logs", data_root="data;touch PWNED;x")
    (repo / CONFIG).write_text(yaml.safe_dump(profile))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DVC_", "MFCBENCH_CELLS", "MFCBENCH_SUMMARY"))}
    env.update(OMP_NUM_THREADS="1", MFCBENCH_OFFLINE="1", PYTHONPATH=".")
    proc = subprocess.run([sys.executable, "-m", "snakemake", "-n", "-p", "--configfile", CONFIG], cwd=repo, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    commands = [line.split("Shell command: ", 1)[1] for line in (proc.stdout + proc.stderr).splitlines()
                if line.startswith("Shell command: ")]
    assert len(commands) > 5
    for command in commands:
        unquoted = re.sub(r"'[^']*'", "", command)
        assert "my results" not in unquoted and "my logs" not in unquoted and "PWNED" not in unquoted, command
    prepare = next(c for c in commands if " prepare " in c)
    subprocess.run(["bash", "-c", "set -euo pipefail; mkdir -p 'my logs/minimal/prepare'; " + prepare], cwd=repo,
                   env=env, check=True, timeout=120)
    assert not (repo / "PWNED").exists() and not list(repo.rglob("PWNED"))
    assert (repo / "data;touch PWNED;x/prepared/skimage/16/checksum.txt").is_file()


def test_output_folders_that_cannot_hold_files_are_named(tmp_path):
    (tmp_path / "logs").write_text("a file where the logs folder goes\n")
    readonly = tmp_path / "ro"
    readonly.mkdir()
    readonly.chmod(0o555)
    try:
        problems = check_profile({"logs_dir": str(tmp_path / "logs"), "results_dir": str(readonly / "results")})
    finally:
        readonly.chmod(0o755)
    assert f"logs_dir: {tmp_path / 'logs'} is a file, not a folder; move it away or choose another logs_dir" in problems
    if os.geteuid() != 0:  # root writes anywhere
        assert f"results_dir: {readonly} is not writable; make it writable (chmod u+w) or choose another results_dir" in problems


def test_file_problems_name_a_duplicated_key(tmp_path):
    from mfcbench.pipeline.profile_checks import file_problems

    path = tmp_path / "p.yaml"
    path.write_text("profile: p\nprofile: q\n")
    assert file_problems([path, tmp_path / "absent.yaml"]) == [
        f"{path}:2: key 'profile' is given twice (first on line 1); YAML would keep only the last: merge them into one"]


@pytest.mark.slow
def test_snakemake_refuses_a_duplicated_key_and_nan_before_any_job(tmp_path):
    if shutil.which("snakemake") is None:
        pytest.skip("snakemake is not installed")
    repo = make_repo(tmp_path / "repo")
    text = (repo / CONFIG).read_text().replace("lr: 1.0e-3", "lr: .nan")
    (repo / "bad.yaml").write_text(text + "profile: again\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DVC_", "MFCBENCH_CELLS", "MFCBENCH_SUMMARY"))}
    env.update(OMP_NUM_THREADS="1", MFCBENCH_OFFLINE="1", PYTHONPATH=".")
    proc = subprocess.run([sys.executable, "-m", "snakemake", "-n", "--configfile", "bad.yaml"], cwd=repo, env=env,
                          capture_output=True, text=True, timeout=120)
    lines, out = len(text.splitlines()) + 1, proc.stdout + proc.stderr
    assert proc.returncode != 0 and "2 problem(s) in the profile, no job started" in out, out[-2000:]
    assert f"bad.yaml:{lines}: key 'profile' is given twice (first on line 1)" in out
    assert "defaults.lr: nan is not a finite number" in out
    assert not (repo / "results").exists()
