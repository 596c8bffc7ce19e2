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


def images_shown(page, profile) -> tuple[int, int]:
    """(decoded, total) images once the page loaded, as its own script counts them."""
    dom = subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={profile}", "--dump-dom",
                          page.as_uri()], capture_output=True, text=True, timeout=120).stdout
    shown = re.search(r'data-images-shown="(\d+)/(\d+)"', dom)
    assert shown, f"the page's script did not run: {page}"
    return int(shown.group(1)), int(shown.group(2))


@pytest.mark.skipif(CHROMIUM is None, reason="Debian chromium is not installed")
def test_report_renders_with_all_images(scanned_store, tmp_path):
    store, videos, _ = scanned_store
    page = write_report(store, "r1", tmp_path / "rep", ReportOptions(sigma=0, threshold=0.5))
    profile = tmp_path / "profile"
    assert images_shown(page, profile) == (len(videos), len(videos))
    # Each video page shows its own event's thumbnail from the shared thumbs/ folder, and
    # under it the strip of the event's 8 frames (25-32), all decoded.
    for video_page in sorted((tmp_path / "rep" / "videos").glob("*.html")):
        assert images_shown(video_page, profile) == (9, 9)
    png = tmp_path / "shot.png"
    subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={profile}", f"--screenshot={png}",
                    "--window-size=1100,1400", page.as_uri()], capture_output=True, timeout=120)
    import cv2

    img = cv2.imread(str(png))
    assert img is not None and img.shape[:2] == (1400, 1100)
    # Not a blank page: curves, tables and thumbnails put many non-white pixels on it.
    assert (img < 200).any(axis=2).mean() > 0.01


PROBE = """<script>addEventListener('load', () => {
 const t = document.getElementById('video-table'), th = t.tHead.rows[0].cells;
 const first = () => t.tBodies[0].rows[0].cells[0].textContent;
 th[0].click(); const up = first(); th[0].click(); const down = first();
 const f = document.querySelector("input[data-table='video-table']");
 f.value = 'cam007'; f.dispatchEvent(new Event('input'));
 const shown = [...t.tBodies[0].rows].filter(r => !r.hidden).length;
 document.body.dataset.probe = [up, down, shown,
   document.getElementById('video-table-count').textContent].join('|');
});</script>"""


@pytest.mark.skipif(CHROMIUM is None, reason="Debian chromium is not installed")
def test_index_tables_sort_and_filter(scanned_store, tmp_path, write_run):
    import pyarrow as pa

    from raystack.store import Store

    _, videos, _ = scanned_store
    row = videos.to_pylist()[0]
    many = pa.Table.from_pylist([{**row, "video_id": f"cam{i:03d}-id", "relpath": f"cam{i:03d}.mp4"}
                                 for i in (3, 12, 7, 1)], schema=videos.schema)
    store = Store(tmp_path / "store")
    write_run(store, many)
    index = write_report(store, "r1", tmp_path / "rep", ReportOptions(sigma=0, threshold=0.5))
    probe = index.with_name("probe.html")
    probe.write_text(index.read_text().replace("</body>", PROBE + "</body>"))
    dom = subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={tmp_path / 'profile'}",
                          "--dump-dom", probe.as_uri()], capture_output=True, text=True,
                         timeout=120).stdout
    found = re.search(r'data-probe="([^"]*)"', dom)
    assert found, "the probe script did not run"
    assert found.group(1) == "cam001.mp4|cam012.mp4|1|1"


THUMB_PROBE = """<script>addEventListener('load', () => {
 const i = document.querySelector('img.thumb'), r = i.getBoundingClientRect();
 document.body.dataset.thumb = [r.left + i.clientLeft, r.top + i.clientTop, i.clientWidth,
                                i.clientHeight, i.naturalWidth].join(',');
});</script>"""


@pytest.mark.skipif(CHROMIUM is None, reason="Debian chromium is not installed")
def test_the_box_shows_around_the_labelled_place_in_the_rendered_thumbnail(
        tmp_path, scanned_store, write_region_run, pixels):
    import cv2

    from raystack.store import Store

    _, videos, _ = scanned_store
    patch, tile = (16, 16, 40, 40), (8, 8, 48, 48)  # source pixels of the 64x64 clip
    store = Store(tmp_path / "store")
    vid = videos.column("video_id")[0].as_py()
    write_region_run(store, videos.slice(0, 1), {(vid, m): (tile, patch) for m in ("fp", "fr")})
    write_report(store, "r1", tmp_path / "rep", ReportOptions(sigma=0, threshold=0.5))
    page = tmp_path / "rep" / "videos" / "v00001.html"
    probe = page.with_name("probe.html")
    probe.write_text(page.read_text().replace("</body>", THUMB_PROBE + "</body>"))
    flags = [*FLAGS, f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1100,1400",
             "--force-device-scale-factor=1"]
    dom = subprocess.run([CHROMIUM, *flags, "--dump-dom", probe.as_uri()], capture_output=True,
                         text=True, timeout=120).stdout
    found = re.search(r'data-thumb="([^"]*)"', dom)
    assert found, "the probe script did not run"
    x, y, w, h, natural = (round(float(v)) for v in found.group(1).split(","))
    assert (w, h, natural) == (192, 192, 192)
    png = tmp_path / "shot.png"
    subprocess.run([CHROMIUM, *flags, f"--screenshot={png}", probe.as_uri()],
                   capture_output=True, timeout=120)
    shot = cv2.imread(str(png))
    assert shot is not None and shot.shape[:2] == (1400, 1100)
    thumb = shot[y:y + h, x:x + w]
    scale = w / 64
    # The labelled place, on screen: outlined all round in the patch colour, its inside and
    # the thumbnail's top rows clear of it; the tile's outline in its own colour.
    m = pixels.magenta(thumb)
    assert pixels.edge_share(m, tuple(round(v * scale) for v in patch)) > 0.95
    assert not m[56:112, 56:112].any() and not m[:40].any()
    assert pixels.edge_share(pixels.cyan(thumb), tuple(round(v * scale) for v in tile)) > 0.9
    assert "magenta box: the worst patch of the frame" in page.read_text()


@pytest.mark.skipif(CHROMIUM is None, reason="Debian chromium is not installed")
def test_detail_rows_stay_under_their_row_when_sorted_and_filtered(tmp_path):
    from raystack.report.html_kit import num, page, table_html, text

    rows = [[text(name), num(v, "{:d}")] for name, v in (("b", 2), ("a", 3), ("c", 1))]
    html = page("t", [table_html("t1", ["name", "n"], rows, filter_label="filter",
                                 details=[f"detail-{r[0].html}" for r in rows])])
    script = """<script>addEventListener('load', () => {
     const t = document.getElementById('t1'), th = t.tHead.rows[0].cells;
     const order = () => [...t.tBodies[0].rows].map(r => r.textContent.trim()).join(',');
     th[1].click(); const up = order();
     const f = document.querySelector("input[data-table='t1']");
     f.value = 'a'; f.dispatchEvent(new Event('input'));
     const shown = [...t.tBodies[0].rows].filter(r => !r.hidden).map(r => r.textContent.trim());
     document.body.dataset.probe = [up, shown.join(','),
       document.getElementById('t1-count').textContent].join('|');
    });</script>"""
    probe = tmp_path / "probe.html"
    probe.write_text(html.replace("</body>", script + "</body>"))
    dom = subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={tmp_path / 'profile'}",
                          "--dump-dom", probe.as_uri()], capture_output=True, text=True,
                         timeout=120).stdout
    found = re.search(r'data-probe="([^"]*)"', dom)
    assert found, "the probe script did not run"
    assert found.group(1) == "c1,detail-c,b2,detail-b,a3,detail-a|a3,detail-a|1"
