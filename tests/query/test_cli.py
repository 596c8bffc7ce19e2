"""The CLI commands sql, events, calibrate and eval on a store the test writes."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
from typer.testing import CliRunner

from raystack.cli import app

runner = CliRunner()


def invoke(*args, input=None):
    result = runner.invoke(app, [str(a) for a in args], input=input)
    return result.exit_code, result.output


def test_sql_formats_and_files(labelled_store, tmp_path):
    st, _ = labelled_store
    q = "SELECT video_id, count(*) AS n FROM scores WHERE run_id = 'test' GROUP BY 1 ORDER BY 1"
    code, out = invoke("sql", st.uri, q)
    assert code == 0 and "cam1-id" in out and "3 rows" in out
    code, out = invoke("sql", st.uri, q, "--format", "csv")
    assert code == 0 and out.splitlines()[0] == '"video_id","n"' and '"cam1-id",208' in out
    code, out = invoke("sql", st.uri, q, "--format", "json")
    assert json.loads(out)[0] == {"video_id": "cam1-id", "n": 208}
    code, out = invoke("sql", st.uri, q, "--format", "parquet", "--out", tmp_path / "r.parquet")
    assert code == 0 and pq.read_table(tmp_path / "r.parquet").num_rows == 3
    code, out = invoke("sql", st.uri, q, "--format", "parquet")
    assert code == 2 and "needs --out" in out


def test_sql_refuses_file_statements_clearly(labelled_store, tmp_path):
    st, _ = labelled_store
    code, out = invoke("sql", st.uri, f"COPY (SELECT * FROM scores) TO '{tmp_path}/x.csv'")
    assert code == 2 and "read-only" in out and not (tmp_path / "x.csv").exists()


def test_interactive_prompt_until_quit(labelled_store):
    st, _ = labelled_store
    script = ("SELECT count(*) AS n\n  FROM videos;\nSELEC oops;\n.tables\n"
              "INSTALL httpfs;\n.quit\nSELECT 'not run';\n")
    code, out = invoke("sql", st.uri, input=script)
    assert code == 0
    assert "│     3 │" in out and "1 rows" in out
    assert out.count("> Error: ") == 2 and "syntax error" in out and "read-only" in out
    assert "events" in out and "macro" in out and "not run" not in out


def test_sql_limits_and_skipped_files(labelled_store, tmp_path):
    st, _ = labelled_store
    forever = "WITH RECURSIVE t(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM t) SELECT max(n) FROM t"
    code, out = invoke("sql", st.uri, forever, "--timeout", "1")
    assert code == 1 and "timeout" in out
    q = "SELECT current_setting('memory_limit') AS m"
    code, out = invoke("sql", st.uri, q, "--memory-limit", "1GB", "--format", "csv")
    assert code == 0 and "953.6 MiB" in out
    code, out = invoke("sql", st.uri, q, "--memory-limit", "lots")
    assert code == 2 and "memory limit must look like" in out
    link = tmp_path / "store" / "scores" / "run=test" / "zz.parquet"
    link.symlink_to("/etc/passwd")
    code, out = invoke("sql", st.uri, "SELECT count(*) AS n FROM scores", "--format", "csv")
    assert code == 0 and "warning: store file scores/run=test/zz.parquet skipped" in out


def test_events_calibrate_and_eval(labelled_store, tmp_path):
    st, labels = labelled_store
    code, out = invoke("events", st.uri, "--run-id", "test", "--threshold", "0.6",
                       "--min-frames", "3", "--merge-gap", "2", "--fusion", "weighted:0.5",
                       "--sigma", "2", "--format", "json")
    assert code == 0, out
    events = json.loads(out)
    assert {e["fusion"] for e in events} == {"weighted:0.5:fp,fr"}
    assert {e["video_id"] for e in events} == {"cam1-id", "cam2-id", "cam3-id"}
    for e in events:  # the labelled anomaly sits in the middle of each video
        n = {"cam1-id": 120, "cam2-id": 90, "cam3-id": 60}[e["video_id"]]
        assert e["start_frame"] <= n // 2 + 11 and e["end_frame"] >= n // 2

    code, out = invoke("calibrate", st.uri, "--normal-run", "normal", "--false-alarm-rate", "0.02",
                       "--name", "cams-2pct", "--sigma", "2")
    assert code == 0 and "threshold cams-2pct" in out and "weighted:0.5:fp,fr" in out
    code, out = invoke("events", st.uri, "--run-id", "test", "--calibrated", "cams-2pct",
                       "--min-frames", "3")
    assert code == 0 and "cam1-id" in out
    code, out = invoke("events", st.uri, "--calibrated", "missing")
    assert code == 2 and "no calibrated threshold named 'missing'" in out

    code, out = invoke("eval", st.uri, "--labels", labels, "--run-id", "test", "--sigma", "2",
                       "--out", tmp_path / "ev", "--threshold", "0.6")
    assert code == 0, out
    doc = json.loads((tmp_path / "ev" / "eval.json").read_text())
    assert doc["uses_test_labels"] is False and doc["micro_auc"] > 0.9
    assert (tmp_path / "ev" / "roc.png").stat().st_size > 1000
    code, out = invoke("eval", st.uri, "--labels", labels, "--run-id", "test",
                       "--fusion", "oracle", "--out", tmp_path / "or")
    assert code == 0 and "WARNING" in out and "test labels" in out
    assert json.loads((tmp_path / "or" / "eval.json").read_text())["uses_test_labels"] is True
