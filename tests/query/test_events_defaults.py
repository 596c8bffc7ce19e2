"""One set of event defaults (the SQL macro's) for SQL, `raystack events` and the report;
typos in a fusion, a run or a threshold fail loudly; the runs of a store are listed."""

from __future__ import annotations

import numpy as np
import pytest
from typer.testing import CliRunner

from raystack.cli import app
from raystack.query import FusionError, QueryError, connect, find_events, run_sql
from raystack.query.defaults import EVENTS, macro_defaults
from raystack.report.build import ReportOptions, collect
from raystack.store.schema import QUERY_SQL, sql_text

KEY = ("run_id", "video_id", "fusion", "start_frame", "end_frame")


def keys(rows):
    return sorted(tuple(r[k] for k in KEY) for r in rows)


@pytest.fixture
def anomalous_store(tmp_path, write_scores):
    """Run 'test': four cameras, fp + fr, each with a long, deep PSNR drop and a short one."""
    from raystack.store import Store

    rng = np.random.default_rng(3)
    st = Store(tmp_path / "store").ensure()
    for cam in range(4):
        f = np.arange(16, 300)
        drop = ((f > 60 + 20 * cam) & (f < 110 + 20 * cam)) | ((f > 200) & (f < 204))
        for m in ("fp", "fr"):
            psnr = 32 + rng.normal(0, 1, f.size) - 12 * drop
            write_scores(st, "test", {(f"cam{cam}", m): (f, psnr)})
    return st


def test_sql_events_command_and_report_find_the_same_events_by_default(anomalous_store):
    st = anomalous_store
    con = connect(st)
    sql = keys(run_sql(con, "SELECT * FROM events(run := 'test')").to_pylist())
    cli = keys(find_events(st, run_id="test").to_pylist())
    report = keys(collect(st, "test", ReportOptions())["events"])
    assert sql and sql == cli == report
    assert {k[2] for k in sql} == {"weighted:0.5:fp,fr"}  # 'auto' in SQL as in Python


def test_defaults_are_read_from_the_macro():
    d = macro_defaults(sql_text(QUERY_SQL), "events")
    assert (EVENTS.threshold, EVENTS.min_frames, EVENTS.merge_gap, EVENTS.sigma, EVENTS.fusion) \
        == (d["threshold"], d["min_frames"], d["merge_gap"], d["sigma"], d["fusion"])
    flags = macro_defaults(sql_text(QUERY_SQL), "flags")
    assert flags["threshold"] == d["threshold"] and flags["fusion"] == d["fusion"]
    assert ReportOptions().threshold == EVENTS.threshold
    assert ReportOptions().min_frames == EVENTS.min_frames


def test_sql_auto_fusion_picks_per_run_like_python(random_store):
    st, _ = random_store
    con = connect(st)
    got = run_sql(con, "SELECT DISTINCT run_id, fusion FROM fused(sigma := 0) ORDER BY ALL")
    assert got.to_pylist() == [{"run_id": "r1", "fusion": "weighted:0.5:fp,fr"},
                               {"run_id": "r2", "fusion": "fp"}]
    ours = run_sql(con, "SELECT * FROM fused(sigma := 2, run := 'r1') ORDER BY video_id, frame")
    named = run_sql(con, "SELECT * FROM fused(fusion := 'weighted', sigma := 2, run := 'r1') "
                         "ORDER BY video_id, frame")
    assert ours.equals(named)


@pytest.mark.parametrize(("query", "needles"), [
    ("SELECT * FROM fused(fusion := 'xyz')", ["unknown fusion 'xyz'", "fp, fr"]),
    ("SELECT * FROM events(fusion := 'xyz', run := 'r2')", ["unknown fusion 'xyz'", "fp"]),
    ("SELECT * FROM events(run := 'nope')", ["unknown run 'nope'", "r1, r2"]),
    ("SELECT * FROM normalised(run := 'nope')", ["unknown run 'nope'"]),
    ("SELECT * FROM fused(fusion := 'max', streams := ['fp', 'fx'])", ["needs streams", "fx"]),
    ("SELECT * FROM events(threshold := 1.5)", ["outside [0, 1]"]),
])
def test_sql_typos_raise_naming_the_value_and_the_choices(random_store, query, needles):
    st, _ = random_store
    with pytest.raises(QueryError) as err:
        run_sql(connect(st), query)
    assert all(n in str(err.value) for n in needles), str(err.value)


def test_python_and_cli_typos_fail_loudly(random_store):
    st, _ = random_store
    with pytest.raises(FusionError, match="names 2 streams"):
        find_events(st, run_id="r1", fusion="fr,fp")
    with pytest.raises(QueryError, match=r"outside \[0, 1\]"):
        find_events(st, run_id="r1", threshold=1.5)
    runner = CliRunner()
    res = runner.invoke(app, ["events", st.uri, "--threshold", "1.5"])
    assert res.exit_code == 2 and "less than or equal to 1" in res.output
    res = runner.invoke(app, ["events", st.uri, "--fusion", "fr,fp", "--run-id", "r1"])
    # exit 2 (invalid input) in the exit-code table of every command (docs/cli.md)
    assert res.exit_code == 2 and "weighted:ALPHA:fr,fp" in res.output
    res = runner.invoke(app, ["events", st.uri, "--run-id", "nope"])
    assert res.exit_code == 2 and "unknown run 'nope'" in res.output


def test_runs_view_and_command_list_the_runs(random_store):
    st, data = random_store
    rows = run_sql(connect(st), "SELECT * FROM runs").to_pylist()
    assert [(r["run_id"], r["score_files"], r["streams"]) for r in rows] == [
        ("r1", len(data["r1"]), "fp,fr"), ("r2", len(data["r2"]), "fp")]
    res = CliRunner().invoke(app, ["runs", st.uri, "--format", "csv"])
    assert res.exit_code == 0 and res.output.splitlines()[0].startswith('"run_id","videos"')
    assert '"r2"' in res.output


def test_a_calibrated_threshold_with_fusion_auto_says_which_fusion_to_pass(random_store):
    st, _ = random_store
    from raystack.query import calibrate

    calibrate(st, "r1", 0.05, name="c1", fusion="weighted:0.5", sigma=0)
    con = connect(st)
    with pytest.raises(QueryError, match="calibrated on fusion weighted:0.5:fp,fr with sigma 0"):
        run_sql(con, "SELECT * FROM events(threshold_name := 'c1', sigma := 0, run := 'r1')")
    ok = run_sql(con, "SELECT * FROM events(threshold_name := 'c1', fusion := 'weighted', "
                      "sigma := 0, run := 'r1')")
    assert ok.num_rows == find_events(st, run_id="r1", calibrated="c1").num_rows
