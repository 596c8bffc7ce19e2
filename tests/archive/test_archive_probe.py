from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
from typer.testing import CliRunner

from raystack.archive import list_archive
from raystack.cli import app
from raystack.scan.probe import probe_archive, probe_source
from raystack.store.schema import table_schema


def _rows(table: pa.Table) -> dict[str, dict]:
    return {r["relpath"]: r for r in table.to_pylist()}


def test_probe_synthetic_archive(tiny_archive):
    table = probe_archive(tiny_archive)
    assert table.schema.equals(table_schema("videos"))
    assert table.num_rows == 4
    for r in table.to_pylist():
        assert r["probe_error"] is None, r
        assert (r["frames"], r["fps"], r["width"], r["height"]) == (24, 25.0, 64, 48)
        assert r["duration_s"] == 24 / 25
        assert r["codec"] == "mpeg4"
        assert r["kind"] == "video" and r["size_bytes"] > 0 and r["mtime"] is not None


def test_bad_inputs_get_a_clear_error_and_the_rest_is_probed(bad_archive):
    rows = _rows(probe_archive(bad_archive))
    assert set(rows) == {
        "good.mp4",
        "zero.mp4",
        "text.mp4",
        "truncated.mp4",
        "truncated_faststart.mp4",
        "three.mp4",
        "gray.mkv",
        "odd.mp4",
        "frames",
    }
    for name, reason in [
        ("zero.mp4", "empty (0 bytes)"),
        ("text.mp4", "not a readable video container"),
        ("truncated.mp4", "not a readable video container"),
        ("truncated_faststart.mp4", "truncated or corrupt"),
    ]:
        err = rows[name]["probe_error"]
        assert err is not None and str(bad_archive / name) in err and reason in err, err
        assert rows[name]["frames"] is None
    ok = {k: v for k, v in rows.items() if v["probe_error"] is None}
    assert set(ok) == {"good.mp4", "three.mp4", "gray.mkv", "odd.mp4", "frames"}
    assert rows["good.mp4"]["frames"] == 20
    assert rows["three.mp4"]["frames"] == 3
    assert (rows["gray.mkv"]["frames"], rows["gray.mkv"]["codec"]) == (12, "ffv1")
    assert (rows["odd.mp4"]["width"], rows["odd.mp4"]["height"]) == (317, 211)
    # The stray notes.txt and .DS_Store are skipped; the 12 frames remain.
    fr = rows["frames"]
    assert (fr["kind"], fr["frames"], fr["fps"], fr["codec"], fr["width"]) == (
        "frames",
        12,
        25.0,
        "jpg",
        64,
    )


def test_probe_source_never_raises_for_a_vanished_file(tmp_path):
    (tmp_path / "a.mp4").write_bytes(b"x")
    [src] = list_archive(tmp_path)
    (tmp_path / "a.mp4").unlink()
    row = probe_source(src)
    assert "does not exist" in row["probe_error"]


def test_probe_frames_fps_is_configurable(bad_archive):
    [src] = [s for s in list_archive(bad_archive) if s.kind == "frames"]
    row = probe_source(src, frames_fps=10.0)
    assert (row["fps"], row["duration_s"]) == (10.0, 1.2)


def test_cli_probe_prints_table_and_errors(bad_archive):
    res = CliRunner().invoke(app, ["probe", str(bad_archive)], env={"COLUMNS": "160"})
    # Unreadable files are findings: exit 1 (docs/cli.md), after the whole table.
    assert res.exit_code == 1, res.output
    assert "good.mp4" in res.output and "317x211" in res.output
    assert "4 of 9 videos cannot be read" in res.output
    assert "empty (0 bytes)" in res.output


def test_cli_probe_formats(tiny_archive, tmp_path):
    runner = CliRunner()
    res = runner.invoke(app, ["probe", str(tiny_archive), "--format", "json"])
    assert res.exit_code == 0, res.output
    records = json.loads(res.output)
    assert [r["relpath"] for r in records][0] == "test/test_001.mp4"
    assert records[0]["frames"] == 24 and records[0]["mtime"].endswith("+00:00")
    res = runner.invoke(app, ["probe", str(tiny_archive), "-f", "csv"])
    assert res.exit_code == 0 and res.output.splitlines()[0].startswith('"video_id","uri"')
    assert len(res.output.splitlines()) == 5
    out = tmp_path / "videos.parquet"
    res = runner.invoke(app, ["probe", str(tiny_archive), "-f", "parquet", "-o", str(out)])
    assert res.exit_code == 0, res.output
    assert pq.read_table(out).num_rows == 4
    res = runner.invoke(app, ["probe", str(tiny_archive), "-f", "parquet"])
    assert res.exit_code == 2 and "--out" in res.output  # usage: exit 2
    res = runner.invoke(app, ["probe", str(tmp_path / "missing")])
    assert res.exit_code == 2 and "does not exist" in res.output
