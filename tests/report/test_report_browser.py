"""Open the report in headless Chromium: every thumbnail must decode, the page must render.

Needs Debian's chromium (`make test` installs it when apt is available); without a browser
binary the test is skipped and says so.
"""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from raystack.report import ReportOptions, write_report

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--virtual-time-budget=5000"]


@pytest.mark.skipif(CHROMIUM is None, reason="Debian chromium is not installed")
def test_report_renders_with_all_images(scanned_store, tmp_path):
    store, videos, _ = scanned_store
    page = write_report(store, "r1", tmp_path / "rep", ReportOptions(sigma=0, threshold=0.5))
    profile = tmp_path / "profile"
    dom = subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={profile}", "--dump-dom",
                          page.as_uri()], capture_output=True, text=True, timeout=120).stdout
    shown = re.search(r'data-images-shown="(\d+)/(\d+)"', dom)
    assert shown, "the page's load script did not run"
    assert int(shown.group(2)) == len(videos) and shown.group(1) == shown.group(2)
    png = tmp_path / "shot.png"
    subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={profile}", f"--screenshot={png}",
                    "--window-size=1100,1400", page.as_uri()], capture_output=True, timeout=120)
    import cv2

    img = cv2.imread(str(png))
    assert img is not None and img.shape[:2] == (1400, 1100)
    # Not a blank page: curves, tables and thumbnails put many non-white pixels on it.
    assert (img < 200).any(axis=2).mean() > 0.01
