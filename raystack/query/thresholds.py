"""Thresholds on fused anomaly scores: fixed, per-video adaptive, calibrated on normal footage.

Pure math first, then calibration against a store:

    calibrate_threshold(np.array([0.1, 0.2, 0.3, 0.4]), 0.25)    # 0.3: one frame of four above
    adaptive_threshold(np.array([0.0, 1.0]), k=2.0)               # 0.5 + 2 * 0.5 = 1.5
    calibrate("/data/store", "normal-r1", 0.01, name="cams-1pct")
    # -> {"name": "cams-1pct", "value": ..., "achieved_rate": ..., ...}
    #    written to STORE/thresholds/cams-1pct.json, applied with
    #    events(threshold_name := 'cams-1pct') or `raystack events --calibrated cams-1pct`

A frame is flagged when its score is strictly above the threshold, everywhere.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

import numpy as np

from raystack.query.connection import QueryError, run_sql
from raystack.query.fusion import Fusion, resolve_fusion
from raystack.query.threshold_files import THRESHOLDS_DIR


def calibrate_threshold(scores: np.ndarray, false_alarm_rate: float) -> float:
    """The threshold that flags at most ``false_alarm_rate`` of ``scores`` (normal frames).

    With ``n`` scores and ``k = floor(rate * n)``, it is the ``(k+1)``-th largest score: at
    most ``k`` scores lie strictly above it, exactly ``k`` when there are no ties at it. So
    the achieved false-alarm rate is never above the target, and is within ``1/n`` of it
    when scores are distinct.

    Raises:
        ValueError: no finite scores, or a rate outside [0, 1).
    """
    if not 0.0 <= float(false_alarm_rate) < 1.0:
        msg = f"false-alarm rate must be in [0, 1), got {false_alarm_rate}"
        raise ValueError(msg)
    s = np.asarray(scores, dtype=np.float64).ravel()
    s = np.sort(s[np.isfinite(s)])
    n = s.size
    if n == 0:
        msg = "cannot calibrate a threshold on zero scores"
        raise ValueError(msg)
    # The tiny slack keeps rate * n = 3.0000000000000004 from rounding k down to 2.
    k = min(int(math.floor(float(false_alarm_rate) * n + 1e-9)), n - 1)
    return float(s[n - 1 - k])


def false_alarm_rate(scores: np.ndarray, threshold: float) -> float:
    """Fraction of ``scores`` strictly above ``threshold``."""
    s = np.asarray(scores, dtype=np.float64)
    return float(np.mean(s > threshold)) if s.size else 0.0


def adaptive_threshold(scores: np.ndarray, k: float) -> float:
    """Per-video adaptive threshold: mean + k * population standard deviation of ``scores``."""
    s = np.asarray(scores, dtype=np.float64)
    if s.size == 0:
        msg = "adaptive threshold of an empty video"
        raise ValueError(msg)
    return float(s.mean() + k * s.std())


def run_streams(con: Any, run_id: str | None) -> list[str]:
    """The score streams (models) of ``run_id`` (all runs when None)."""
    table = run_sql(
        con, "SELECT DISTINCT model FROM scores WHERE ? IS NULL OR run_id = ? ORDER BY model",
        [run_id, run_id],
    )
    return [str(m) for m in table.column("model").to_pylist()]


def fused_scores(con: Any, run_id: str, fusion: Fusion, sigma: float) -> np.ndarray:
    """All fused scores of ``run_id`` (every video, every fused frame) as float64."""
    args = fusion.macro_args()
    table = run_sql(
        con,
        "SELECT score FROM fused(fusion := ?, alpha := ?, streams := ?, sigma := ?, run := ?)",
        [args["fusion"], args["alpha"], args["streams"], float(sigma), run_id],
    )
    return table.column("score").to_numpy().astype(np.float64)


def calibrate(
    store: Any,
    normal_run: str,
    false_alarm_rate_target: float,
    *,
    name: str,
    fusion: str | None = None,
    sigma: float = 10.0,
) -> dict:
    """Calibrate a threshold on a run over normal footage and store it under ``name``.

    The scores are the run's fused scores with the given fusion (``None``/``"auto"``: see
    :func:`raystack.query.fusion.resolve_fusion`) and smoothing ``sigma``; the threshold
    is :func:`calibrate_threshold` of them. The document is written atomically to
    ``STORE/thresholds/<name>.json`` (replacing one of the same name) and read back by
    :func:`raystack.query.connect` as the ``thresholds`` view.

    Returns:
        The stored document: name, run_id, fusion, alpha, streams, sigma,
        false_alarm_rate, value, frames, achieved_rate, created_at.

    Raises:
        QueryError: the run has no scores; FusionError: the fusion does not fit the run.
    """
    from raystack.query.connection import connect
    from raystack.store import Store
    from raystack.store.layout import check_name

    check_name(name, "threshold name")
    st = store if isinstance(store, Store) else Store(store)
    con = connect(st, read_only=True)
    try:
        fz = resolve_fusion(fusion, run_streams(con, normal_run))
        scores = fused_scores(con, normal_run, fz, sigma)
    finally:
        con.close()
    if scores.size == 0:
        msg = (f"run {normal_run!r} of {st.uri} has no fused scores for {fz.name}; "
               "nothing to calibrate on")
        raise QueryError(msg)
    value = calibrate_threshold(scores, false_alarm_rate_target)
    doc = {
        "name": name,
        "run_id": normal_run,
        "fusion": fz.name,
        "alpha": fz.alpha,
        "streams": list(fz.streams),
        "sigma": float(sigma) if sigma and sigma > 0 else 0.0,
        "false_alarm_rate": float(false_alarm_rate_target),
        "value": value,
        "frames": int(scores.size),
        "achieved_rate": false_alarm_rate(scores, value),
        "created_at": dt.datetime.now(dt.UTC).isoformat(),
    }
    st.write_json(f"{THRESHOLDS_DIR}/{name}.json", doc)
    return doc


def load_threshold(con: Any, name: str) -> dict:
    """The calibrated threshold ``name`` from the connection's ``thresholds`` view.

    Raises:
        QueryError: no threshold of that name (the message lists the known ones).
    """
    rows = run_sql(con, "SELECT * FROM thresholds WHERE name = ?", [name]).to_pylist()
    if not rows:
        known = run_sql(con, "SELECT name FROM thresholds ORDER BY name").column("name").to_pylist()
        msg = (f"no calibrated threshold named {name!r} in this store; known: "
               f"{known or 'none'} (run raystack calibrate)")
        raise QueryError(msg)
    return rows[0]
