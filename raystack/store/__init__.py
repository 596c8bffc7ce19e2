"""The Parquet store: versioned schemas, atomic one-file-per-unit writes, hive layout.

    from raystack.store import Store
    Store("s3://bucket/store").write_table("scores", "r1", "cam01-0-512", table)
"""

from raystack.store.layout import StoreError, manifest_name
from raystack.store.schema import SCHEMA_VERSION, TABLES, check_version, table_schema
from raystack.store.store import Store, conform_table

__all__ = [
    "SCHEMA_VERSION",
    "TABLES",
    "Store",
    "StoreError",
    "check_version",
    "conform_table",
    "manifest_name",
    "table_schema",
]
