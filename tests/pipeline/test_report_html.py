"""`snakemake --report report.html` on the tiny profile, opened in a real headless browser.

Runs the tiny pipeline (plus Figure 5) in a throw-away copy of the repo, builds Snakemake's HTML
report and checks with Debian's chromium that the landing page renders the verdict table and that
the embedded figures decode and render as images. Installs chromium with apt-get when missing and
running as root; skips, saying why, when it cannot. About a minute on 2 cores.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from test_pipeline import TINY, _require_tools, _run, repo  # noqa: F401  (repo is a fixture)

pytestmark = pytest.mark.slow
VERDICTS = ("REPRODUCED", "DEVIATES", "INCONCLUSIVE", "NOT_RUN")
EXTRAS = 'extras=["table1","table13","fig5"]'


def _browser() -> str:
    """Path of chromium; apt-get installs it when missing and we are root, else the test skips."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found
    if shutil.which("apt-get") is None or os.geteuid() != 0:
        pytest.skip("chromium is not installed and cannot be (needs apt-get as root)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    try:
        subprocess.run(["apt-get", "install", "-y", "--no-install-recommends", "chromium"], env=env,
                       capture_output=True, timeout=300, check=True)
    except (subprocess.SubprocessError, OSError) as error:
        pytest.skip(f"chromium could not be installed with apt-get: {error}")
    found = shutil.which("chromium")
    if not found:
        pytest.skip("apt-get ran but no chromium binary appeared")
    return found


def _headless(browser: str, url: str, *args: str) -> str:
    cmd = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=5000", *args, url]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


def _results(html: str) -> dict:
    """The report's embedded results (`var results = {...}`): name, caption, data_uri per file."""
    start = html.index("var results = {") + len("var results = ")
    return json.JSONDecoder().raw_decode(html[start:])[0]


def _image_renders(browser: str, data_uri: str, folder: Path) -> tuple[int, int]:
    """Load the figure's data URI in an <img> and read back the size chromium decoded it to."""
    page = folder / "img.html"
    page.write_text(f'<html><body><img id="f" src="{data_uri}"><script>'
                    'const i=document.getElementById("f");'
                    'i.onload=()=>{document.title="size "+i.naturalWidth+"x"+i.naturalHeight;};'
                    'i.onerror=()=>{document.title="broken";};</script></body></html>')
    dom = _headless(browser, page.as_uri(), "--dump-dom")
    title = dom.split("<title>")[1].split("</title>")[0] if "<title>" in dom else "no title"
    assert title.startswith("size "), f"figure did not render: {title}"
    width, height = title[5:].split("x")
    return int(width), int(height)


def test_snakemake_html_report_renders_verdicts_and_figures(repo, tmp_path_factory):  # noqa: F811
    _require_tools()
    browser = _browser()
    snake = [sys.executable, "-m", "snakemake", "--cores", "2", "--configfile", TINY, "--config", EXTRAS]
    _run(snake[:3] + ["reports/REPORT.md", "reports/fig5.png"] + snake[3:], repo, timeout=400)
    _run(snake + ["--report", "report.html"], repo)
    html = (repo / "report.html").read_text()

    dom = _headless(browser, (repo / "report.html").as_uri(), "--dump-dom")
    landing = dom[dom.index('class="verdicts'):]  # the landing page's verdict table (workflow/report/workflow.rst)
    landing = landing[: landing.index("</table>")]
    claims = pd.read_csv(repo / "reports/claims.csv")
    assert landing.count("<tr") == len(claims) + 1  # header + one row per claim
    assert any(v in landing for v in VERDICTS) and "reproduced" in landing and "reason" in landing

    results = _results(html)
    assert {"reports/fig5.png", "reports/claims.csv", "reports/REPORT.md"} <= set(results)
    fig5 = results["reports/fig5.png"]
    assert fig5["mime_type"] == "image/png" and "Figure 5" in fig5["caption"]
    png = base64.b64decode(fig5["data_uri"].split("base64,", 1)[1])
    assert png[:4] == b"\x89PNG"
    width, height = _image_renders(browser, fig5["data_uri"], tmp_path_factory.mktemp("img"))
    assert width > 600 and height > 400

    shot = repo / "landing.png"  # for a human: `pytest --basetemp=...` keeps it
    _headless(browser, (repo / "report.html").as_uri(), "--window-size=1400,1600", f"--screenshot={shot}")
    assert shot.read_bytes()[:4] == b"\x89PNG"
