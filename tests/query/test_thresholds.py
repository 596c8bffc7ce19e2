"""Threshold math, calibration on a normal run, and applying the stored threshold by name."""

from __future__ import annotations

import json

import numpy as np
import pytest

from raystack.query import QueryError, calibrate, connect, find_events, run_sql
from raystack.query.thresholds import adaptive_threshold, calibrate_threshold, false_alarm_rate


@pytest.mark.parametrize("rate", [0.0, 0.01, 0.05, 0.25, 0.5, 0.999])
def test_calibrated_threshold_hits_the_rate_on_distinct_scores(rate):
    s = np.random.default_rng(0).random(1000)
    thr = calibrate_threshold(s, rate)
    assert false_alarm_rate(s, thr) == int(np.floor(rate * 1000 + 1e-9)) / 1000
    assert np.sum(s > thr) == int(np.floor(rate * 1000 + 1e-9))


def test_calibrated_threshold_never_exceeds_the_rate_with_ties():
    s = np.array([0.1] * 50 + [0.9] * 50)
    thr = calibrate_threshold(s, 0.3)
    assert false_alarm_rate(s, thr) <= 0.3 and thr == 0.9
    with pytest.raises(ValueError, match=r"in \[0, 1\)"):
        calibrate_threshold(s, 1.0)
    with pytest.raises(ValueError, match="zero scores"):
        calibrate_threshold(np.array([np.nan]), 0.1)


def test_adaptive_threshold_is_mean_plus_k_population_std():
    x = np.array([0.0, 1.0, 2.0, 3.0])
    assert adaptive_threshold(x, 2.0) == pytest.approx(1.5 + 2 * np.sqrt(1.25))


def test_calibrate_on_normal_run_then_apply_to_another(random_store):
    st, _ = random_store
    doc = calibrate(st, "r1", 0.05, name="n5", fusion="weighted:0.5", sigma=4)
    with open(f"{st.uri}/thresholds/n5.json") as f:
        stored = json.load(f)
    assert stored["value"] == doc["value"] and stored["fusion"] == "weighted:0.5:fp,fr"
    assert 0.05 - 1 / doc["frames"] < doc["achieved_rate"] <= 0.05
    con = connect(st)
    s = run_sql(con, "SELECT score FROM fused(fusion := 'weighted', sigma := 4, run := 'r1')")
    assert doc["value"] == calibrate_threshold(s["score"].to_numpy(), 0.05)
    assert doc["frames"] == s.num_rows
    assert run_sql(con, "SELECT name, value FROM thresholds").to_pylist() == [
        {"name": "n5", "value": doc["value"]}]
    # The stored threshold, by name, in SQL and through find_events (fusion and sigma come
    # from the calibration unless given).
    flags = run_sql(con, "SELECT DISTINCT threshold FROM flags(threshold_name := 'n5', "
                         "fusion := 'weighted', sigma := 4)")
    assert flags["threshold"].to_pylist() == [doc["value"]]
    a = find_events(con, run_id="r1", calibrated="n5")
    b = find_events(con, run_id="r1", threshold=doc["value"], fusion="weighted:0.5", sigma=4)
    assert a.to_pylist() == b.to_pylist() and a.num_rows > 0
    with pytest.raises(QueryError,
                       match="was calibrated on fusion weighted:0.5:fp,fr with sigma 4"):
        run_sql(con, "SELECT * FROM events(threshold_name := 'n5', fusion := 'fp')")
    with pytest.raises(QueryError, match="no calibrated threshold named 'nope'"):
        run_sql(con, "SELECT * FROM events(threshold_name := 'nope')")
    with pytest.raises(QueryError, match="known: \\['n5'\\]"):
        find_events(con, calibrated="nope")


def test_calibrate_refuses_a_run_without_the_streams(random_store):
    from raystack.query import FusionError

    st, _ = random_store
    with pytest.raises(FusionError, match="but the run has only"):
        calibrate(st, "r2", 0.01, name="x", fusion="weighted:0.5")
    with pytest.raises(FusionError, match="no score rows"):
        calibrate(st, "no-such-run", 0.01, name="x")
