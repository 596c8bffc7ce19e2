"""DuckDB query layer over a raystack store: views, table macros, a read-only analyst connection.

    con = connect("store/")
    con.sql("SELECT * FROM events(threshold := 0.7, min_frames := 10)").show()
"""

from raystack.query.connection import QueryError, ReadOnlyError, connect, run_sql

__all__ = ["QueryError", "ReadOnlyError", "connect", "run_sql"]
