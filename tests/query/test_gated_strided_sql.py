"""The query layer over gated and strided runs: normalisation and gated rows, events of
every-N-th frames."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from raystack.query import connect
from raystack.store import Store, table_schema


def _table(frames, psnr, gated=None, video="v", model="fp", run="r") -> pa.Table:
    n = len(frames)
    cols = {"run_id": [run] * n, "video_id": [video] * n,
            "frame": np.asarray(frames, np.int64), "timestamp_s": np.asarray(frames) / 25.0,
            "model": [model] * n, "psnr": np.asarray(psnr, np.float32),
            "aux": pa.nulls(n, pa.float32())}
    if gated is not None:
        cols["gated"] = pa.array(np.asarray(gated, bool))
    return pa.table(cols)


def _store(tmp_path, tables) -> Store:
    st = Store(tmp_path / "store").ensure()
    for i, t in enumerate(tables):
        st.write_table("scores", "r", f"u{i}", t)
    return st


def test_gated_rows_top_the_scale_never_set_its_bottom_and_score_zero(tmp_path):
    psnr = np.array([30.0, 25.0, 35.0, 45.0, 20.0, 28.0])
    gated = np.array([False, False, False, True, True, False])
    st = _store(tmp_path, [_table(np.arange(6), psnr, gated)])
    con = connect(st)
    got = con.sql("SELECT frame, anomaly FROM normalised() ORDER BY frame").fetchall()
    anomaly = np.array([a for _, a in got])
    # Max over every row (45, a gated still frame, as an ungated scan would have it), min
    # over the ungated ones (25: the gated 20 cannot make every other frame look normal).
    np.testing.assert_allclose(anomaly[~gated], 1 - (psnr[~gated] - 25.0) / 20.0)
    assert np.all(anomaly[gated] == 0.0)
    # Global normalisation treats them the same way.
    g = con.sql("SELECT anomaly FROM normalised(normalise := 'global') ORDER BY frame").fetchall()
    np.testing.assert_allclose([a for (a,) in g], anomaly)
    # The same rows without the flag: the gated 20 would have been the most anomalous.
    plain = connect(_store(tmp_path / "plain", [_table(np.arange(6), psnr)]))
    assert plain.sql("SELECT arg_max(frame, anomaly) FROM normalised()").fetchall() == [(4,)]


def test_a_video_with_every_row_gated_is_all_normal(tmp_path):
    st = _store(tmp_path, [_table(np.arange(4), [50.0, 20.0, 60.0, 40.0], [True] * 4)])
    got = connect(st).sql("SELECT max(anomaly) FROM normalised()").fetchall()[0][0]
    assert got == 0.0


def test_v2_files_read_with_gated_null_and_count_as_scored(tmp_path):
    st = Store(tmp_path / "store").ensure()
    path = tmp_path / "store" / "scores" / "run=r" / "old.parquet"
    path.parent.mkdir(parents=True)
    import pyarrow.parquet as pq

    old = _table(np.arange(3), [30.0, 20.0, 40.0])
    v2 = table_schema("scores", 2)
    old = pa.table({f.name: old[f.name] if f.name in old.column_names
                    else pa.nulls(3, f.type) for f in v2}, schema=v2)
    pq.write_table(old, path)
    st.write_table("scores", "r", "new", _table(np.arange(3, 5), [25.0, 10.0], [False, True]))
    con = connect(st)
    assert con.sql("SELECT count(*), count(gated) FROM scores").fetchall() == [(5, 2)]
    got = dict(con.sql("SELECT frame, anomaly FROM normalised()").fetchall())
    assert got[2] == 0.0 and got[1] == 1.0 and got[4] == 0.0
    assert st.read_table("scores")["gated"].null_count == 3


@pytest.mark.parametrize("merge_gap", [1, 3])
def test_events_of_a_strided_run_join_every_second_frame(tmp_path, merge_gap):
    """With stride 2 each flagged frame is an island of its own; merge_gap >= 1 joins them,
    and the event's start, end and times are source frames and seconds."""
    frames = np.arange(10, 110, 2)
    psnr = np.full(len(frames), 35.0)
    psnr[(frames >= 40) & (frames < 60)] = 20.0  # scored frames 40, 42, ..., 58 anomalous
    st = _store(tmp_path, [_table(frames, psnr)])
    ev = connect(st).sql(f"SELECT start_frame, end_frame, start_s, end_s, flagged_frames "
                         f"FROM events(threshold := 0.5, sigma := 0, fusion := 'fp', "
                         f"min_frames := 5, merge_gap := {merge_gap})").fetchall()
    assert ev == [(40, 58, 40 / 25.0, 58 / 25.0, 10)]
