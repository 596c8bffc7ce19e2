"""Threshold files planted or broken in a store (issue 12 A.5): a threshold's name is its
file name, and a bad file is reported and skipped instead of breaking every query."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

from raystack.query import connect, find_events, run_sql
from raystack.store import Store

GOOD = '{"name": "good", "run_id": "r1", "fusion": "fp", "sigma": 0.0, "value": 0.5, "frames": 9}'


@pytest.fixture
def store(tmp_path, write_scores):
    st = Store(tmp_path / "store").ensure()
    f = np.arange(16, 116)
    write_scores(st, "r1", {("cam-a", "fp"): (f, 30 + 3 * np.sin(f / 7))})
    (tmp_path / "store" / "thresholds").mkdir()
    (tmp_path / "store" / "thresholds" / "good.json").write_text(GOOD)
    return st


def plant(st, name: str, text: str) -> None:
    (Path(st.uri) / "thresholds" / name).write_text(text)


def opened(st):
    """The connection, the thresholds it shows, and the warnings it gave."""
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        con = connect(st)
    rows = run_sql(con, "SELECT name, value FROM thresholds ORDER BY name").to_pylist()
    return con, {r["name"]: r["value"] for r in rows}, " | ".join(str(w.message) for w in seen)


def test_a_duplicate_name_cannot_take_over_a_threshold(store):
    plant(store, "evil.json", GOOD.replace('"value": 0.5', '"value": 0.0001'))
    _, shown, said = opened(store)
    assert shown == {"evil": 0.0001, "good": 0.5}
    assert "evil.json names itself 'good'" in said
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ev = find_events(store, run_id="r1", calibrated="good", sigma=0, fusion="fp")
    assert set(ev["threshold"].to_pylist()) <= {0.5}


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("[1, 2]", "not a JSON object"),
        ('"0.5"', "not a JSON object"),
        (GOOD.replace("0.5", '"high"'), "value must be a finite number"),
        (GOOD.replace("0.5", "1e400"), "value must be a finite number"),
        (GOOD.replace("0.5", "NaN"), "value must be a finite number"),
        (GOOD.replace("0.5", "true"), "value must be a finite number"),
        (GOOD.replace('"fp"', "7"), "fusion must be a string"),
        (GOOD.replace('"sigma": 0.0', '"sigma": -1'), "sigma must be >= 0"),
        (GOOD.replace('"frames": 9', '"frames": 1.5'), "frames must be a count"),
        ('{"name": "x"}', "missing fusion, sigma, value"),
        ("{not json", "not valid JSON"),
        ("[" * 100000 + "]" * 100000, "not valid JSON"),
        ("", "not valid JSON"),
    ],
)
def test_a_malformed_file_is_reported_and_skipped(store, text, reason):
    plant(store, "broken.json", text)
    con, shown, said = opened(store)
    assert shown == {"good": 0.5}
    assert "thresholds/broken.json skipped" in said and reason in said
    assert run_sql(con, "SELECT count(*) AS n FROM events(threshold_name := 'good', "
                        "fusion := 'fp', sigma := 0)")


def test_a_file_name_outside_the_naming_rule_is_skipped(store):
    plant(store, "two words.json", GOOD)
    _, shown, said = opened(store)
    assert shown == {"good": 0.5} and "two words.json skipped" in said
