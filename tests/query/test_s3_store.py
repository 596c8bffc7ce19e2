"""The same views over an s3:// store (moto's S3 server on loopback): Arrow datasets."""

from __future__ import annotations

import numpy as np

from raystack.query import connect, find_events, run_sql
from raystack.store import Store


def test_s3_store_answers_like_a_local_copy(s3_bucket, tmp_path, write_scores):
    rng = np.random.default_rng(3)
    data = {(f"v{i}", m): (np.arange(16, 76), rng.normal(30, 3, 60)) for i in range(3)
            for m in ("fp", "fr")}
    remote = Store(f"s3://{s3_bucket}/store").ensure()
    local = Store(tmp_path / "store").ensure()
    for st in (remote, local):
        write_scores(st, "r1", data)
    rcon, lcon = connect(remote), connect(local)
    q = ("SELECT * FROM events(threshold := 0.6, merge_gap := 2, fusion := 'weighted', "
         "sigma := 3) ORDER BY video_id, start_frame")
    r, loc = run_sql(rcon, q), run_sql(lcon, q)
    assert r.num_rows > 0 and r.to_pylist() == loc.to_pylist()
    assert run_sql(rcon, "SELECT count(*) AS n FROM manifest")["n"][0].as_py() == 0
    assert find_events(remote, run_id="r1", threshold=0.6, sigma=3).num_rows > 0
