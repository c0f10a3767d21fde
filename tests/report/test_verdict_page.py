"""The verdict page (reports/published/VERDICTS.md, verdicts.csv): equal to what the committed snapshots give,
and its rows on a synthetic pair of snapshots: a claim decided in two profiles, one NOT_RUN everywhere, a
snapshot trained by other code, a time-to-quality claim that never reaches its target, a claim beyond the paper."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from mfcbench.cli import main
from mfcbench.report import deciders, verdicts
from mfcbench.report.markdown import summary_section
from mfcbench.train.manifest import training_code

ROOT = Path(__file__).resolve().parents[2]
QUALITY = {"id": "q", "claim": "similar MSE", "source": "Table 4", "check": "similar_quality", "input": "table4",
           "tolerance": {"margin": 0.2}}
TIME = {"id": "t", "claim": "fewer #WU", "source": "Table 4", "check": "time_to_quality", "input": "table4",
        "metric": "val_mse", "tolerance": {"margin": 0.2}}
READING = {**QUALITY, "id": "q_wu16", "claim": "similar MSE, Table 4's budget"}
TREND = {"id": "n", "claim": "grows", "source": "Table 1", "check": "trend", "input": "table1"}
BEYOND = {"id": "b", "claim": "beats SGD at equal #WU", "source": "beyond the paper", "check": "similar_quality",
          "input": "table4", "origin": "beyond", "tolerance": {"margin": 0.2}}
PROFILES = {"a": {"tables": {"table4": {"overrides": {"iterations": [320] * 4}}}, "extras": []},
            "b": {"tables": {"table4": {"overrides": {"iterations": [6] * 4}}}, "extras": ["table1"]}}


def test_the_committed_page_equals_the_committed_snapshots():
    bad = verdicts.differences(ROOT / "reports" / "published", training_code())
    assert not bad, "\n".join(bad) + "\nrebuild it: python -m mfcbench report verdicts"


def _pair(claim, strategy, ratio, verdict, unit="", margin=1.2):
    return {"claim": claim, "table": "table4", "arch": "unet", "strategy": strategy, "versus": "table4:sgd",
            "metric": "val_mse", "unit": unit, "n": 3, "seeds": "0 1 2", "ratio": ratio, "low": ratio * 0.9,
            "high": ratio * 1.1, "margin": margin, "verdict": verdict,
            "reason": f"unet/{strategy} {ratio}x SGD (n=3): fmsgd not converged (fmsgd seed 1); needs 9 seeds"}


def _snapshot(root: Path, profile: str, verdicts_of: dict[str, str], code: str, fmsgd_ratio: float) -> None:
    folder = root / profile
    folder.mkdir(parents=True)
    claims = [{"id": i, "claim": i, "source": "", "published": "", "reproduced": "", "profile": profile,
               "dataset": "skimage", "verdict": v, "reason": f"{i} in {profile}", "tolerance": ""}
              for i, v in verdicts_of.items()]
    pd.DataFrame(claims).to_csv(folder / "claims.csv", index=False)
    pairs = [_pair(i, "fmsgd", fmsgd_ratio, v) for i, v in verdicts_of.items() if i in ("q", "q_wu16", "b") and v != "NOT_RUN"]
    pairs += [_pair("t", "fmsgd", 0.05, verdicts_of["t"], "wu", 1.0), _pair("t", "fmsgd", 0.04, "DEVIATES", "seconds", 1.0)]
    pd.DataFrame(pairs).to_csv(folder / "pairs.csv", index=False)
    cells = [{"table": "table4", "arch": "unet", "strategy": s, "variant": "base", "seed": k, "training_code": code,
              "reached": s == "sgd"} for s in ("sgd", "fmsgd") for k in range(3)]
    pd.DataFrame(cells).to_csv(folder / "cells.csv", index=False)
    (folder / "REPORT.md").write_text(
        f"# report\n\n**Scale of these results:** 4 levels, N0 2, val_size 64; iterations per level table4: sgd [320, "
        f"320, 320, 320], fmsgd [320, 160, 80, 40]; data: skimage at 32px; report commit `abc`. Verdicts ...\n\n"
        f"| config: arch_overrides.unet.model.width |  | 0.25 |\n- manifest git_commit: `{profile * 40}`\n"
        f"- manifest git_dirty: `False`\n- manifest training_code: `{code}`\n")


@pytest.fixture
def root(tmp_path):
    _snapshot(tmp_path, "a", {"q": "DEVIATES", "q_wu16": "REPRODUCED", "t": "DEVIATES", "n": "NOT_RUN"}, "new", 1.5)
    _snapshot(tmp_path, "b", {"q": "INCONCLUSIVE", "t": "INCONCLUSIVE", "n": "NOT_RUN", "b": "INCONCLUSIVE"}, "old", 1.1)
    (tmp_path / "measurements").mkdir()  # no claims.csv: not a snapshot
    return tmp_path


def _rows(root):
    return verdicts.verdict_rows(root, "new", [QUALITY, READING, TIME, TREND, BEYOND], PROFILES)


def test_a_claim_decided_in_two_profiles_has_a_row_for_each_the_deciding_profile_first(root):
    rows = _rows(root)
    q = rows[rows["id"] == "q"]
    assert q["profile"].tolist() == ["a", "b"]  # a runs Table 4 at 320 iterations a level, b at 6
    deviates = q.iloc[0]
    assert deviates["verdict"] == "DEVIATES" and deviates["effect"].startswith("unet/fmsgd 1.5x SGD [95% CI 1.35, 1.65]")
    assert "ends at 1.5x SGD's MSE [1.35, 1.65], outside the 20% margin" in deviates["reason"]
    assert deviates["seeds"] == "n=3 (seeds 0 1 2)" and deviates["commit"] == "a" * 12
    assert "table4: skimage at 32px, width 0.25, 4 levels, N0 2" in deviates["scale"]
    assert "undecided: fmsgd not converged; needs 9 seeds" in q.iloc[1]["reason"]  # seed lists left out


def test_a_snapshot_trained_by_other_code_is_marked(root):
    rows = _rows(root).set_index(["id", "profile"])
    assert rows.loc[("q", "a"), "current_code"] == "yes"
    assert rows.loc[("q", "b"), "current_code"] == "no: 6 of 6 cells by other code (digest old)"
    page = verdicts.verdict_page(_rows(root), root, "new")
    assert "1 of 2 snapshots were trained by the current training code; b by other code" in page


def test_a_claim_not_run_everywhere_is_one_row_naming_the_profile_that_decides_it(root):
    rows = _rows(root)
    n = rows[rows["id"] == "n"]
    assert len(n) == 1 and n.iloc[0]["verdict"] == "NOT_RUN" and n.iloc[0]["profile"] == "b"
    assert n.iloc[0]["decided_by"] == "decided by profile `b`" and n.iloc[0]["reason"] == "n in b"


def test_time_to_quality_reads_as_no_win_when_the_target_is_never_reached(root):
    t = _rows(root).set_index(["id", "profile"]).loc[("t", "a")]
    assert t["effect"].startswith("unet/fmsgd #WU 0.05x SGD")  # the #WU pair, not the seconds one
    assert ("Full-Multiscale-SGD reaches SGD's final MSE (within 20%) on 0 of 3 seeds within its budget "
            "(UNet; censored at its budget, 0.05x SGD's #WU") in t["reason"]


def test_a_reading_whose_verdict_differs_from_its_base_claim_says_so(root):
    reading = _rows(root).set_index(["id", "profile"]).loc[("q_wu16", "a")]
    assert reading["reason"].endswith("the verdict differs from `q`'s (DEVIATES) in this profile")


def test_the_page_lists_claims_beyond_the_paper_apart_and_says_what_holds(root):
    rows = _rows(root)
    assert rows.set_index("id").loc["b", "origin"] == "beyond"
    page = verdicts.verdict_page(rows, root, "new")
    meaning, beyond = page.split("## Snapshots")[0], page.split("## Claims beyond the paper")[1]
    assert "Of the paper's claims (4), in the profile that decides each: **1 REPRODUCED**, **2 DEVIATES**" in meaning
    assert "Does not hold: `q` (a; table4: skimage at 32px, width 0.25" in meaning
    assert "`b`" in beyond and "`q`" not in beyond


def test_write_then_check_and_a_changed_snapshot_is_named(root, monkeypatch):
    monkeypatch.setattr(deciders, "PROFILES_DIR", root / "none")  # no shipped profiles: nothing to rank by
    assert main(["report", "verdicts", "--published-root", str(root)]) == 0
    assert (root / "VERDICTS.md").is_file() and (root / "verdicts.csv").is_file()
    assert main(["report", "verdicts", "--published-root", str(root), "--check"]) == 0
    claims = root / "b" / "claims.csv"
    claims.write_text(claims.read_text().replace("INCONCLUSIVE", "REPRODUCED"))
    assert verdicts.differences(root, training_code()) == [
        f"{root / name} (differs from the snapshots under {root}: rebuild it with `python -m mfcbench report verdicts`)"
        for name in ("VERDICTS.md", "verdicts.csv")]


def test_report_md_names_the_profile_that_decides_a_not_run_claim():
    spec = {"id": "table4_absolute_mse", "check": "absolute", "input": "table4", "table": "table4",
            "requires_dataset": "stl10"}
    shipped = deciders.shipped_profiles()
    assert deciders.decided_by(spec, shipped, "converged") == "decided by profile `paper`"
    claims = pd.DataFrame([{"id": "x", "claim": "c", "published": "", "reproduced": "", "verdict": "NOT_RUN",
                            "reason": "no results: table1.csv missing or empty"}])
    text = summary_section(claims, {"x": "decided by profile `default`"})
    assert "| no results: table1.csv missing or empty; decided by profile `default` |" in text
    missing = deciders.decided_by({"id": "s", "check": "sam_quality", "input": "table9"}, PROFILES)
    assert missing == "no shipped profile decides it: one must build table9 with sam.checkpoint set"


def test_publish_rebuilds_the_page_and_check_fails_when_it_disagrees(tmp_path, capsys):
    _snapshot(tmp_path / "reports_root", "reports", {"q": "DEVIATES", "t": "DEVIATES"}, "new", 1.5)
    reports, published = tmp_path / "reports_root" / "reports", tmp_path / "published"
    args = ["--profile", "a", "--reports-dir", str(reports), "--published-root", str(published)]
    assert main(["publish", *args, "claims.csv", "pairs.csv", "cells.csv", "REPORT.md"]) == 0
    assert "`q`" in (published / "VERDICTS.md").read_text()
    assert main(["publish", *args, "--check"]) == 0
    (published / "VERDICTS.md").write_text("edited by hand\n")
    capsys.readouterr()
    assert main(["publish", *args, "--check"]) == 1
    assert f"{published / 'VERDICTS.md'} (differs from the snapshots" in capsys.readouterr().err
