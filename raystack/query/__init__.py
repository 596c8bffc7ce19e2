"""The query layer: DuckDB views and macros over a store, thresholds, events (docs/store-schema.md).

    con = connect("/data/store")                          # sealed, read-only by default
    con = connect("/data/store", timeout_s=60, memory_limit="2GB")
    run_sql(con, "SELECT * FROM events(threshold := 0.7, min_frames := 10)")
    find_events("/data/store", run_id="r1", adaptive_k=3.0, fusion="weighted:0.5")
    calibrate("/data/store", "normal-r1", 0.01, name="cams-1pct")

Macros (``schemas/sql/v3_query.sql``): normalised(), smoothed(), fused(), flags(), events().
"""

from raystack.query.connection import (
    QueryCancelled,
    QueryError,
    QueryTimeout,
    ReadOnlyError,
    connect,
    run_sql,
)
from raystack.query.events import find_events
from raystack.query.fusion import Fusion, FusionError, parse_fusion
from raystack.query.limits import QueryLimits
from raystack.query.thresholds import calibrate
from raystack.query.vetting import StoreFileWarning

__all__ = [
    "Fusion",
    "FusionError",
    "QueryCancelled",
    "QueryError",
    "QueryLimits",
    "QueryTimeout",
    "ReadOnlyError",
    "StoreFileWarning",
    "calibrate",
    "connect",
    "find_events",
    "parse_fusion",
    "run_sql",
]
