"""Seal an analyst connection: from here on DuckDB can read the store's files and nothing else.

    seal(con, ["raystack://store/scores/run=r1/u.parquet", ...])

The guarantee lives inside DuckDB and the filesystem it reads through, not in a filter of
statement types, so it holds for ``raw con.sql``, ``EXPLAIN ANALYZE``, prepared statements
and macros alike:

* external access is off, so every path is refused except ``allowed_paths``;
* the allowed paths are the vetted store files under ``raystack://store/``, served by
  :class:`~raystack.query.storefs.StoreFileSystem`, which opens files for reading only;
  DuckDB grants an allowed path for writing too, so it must never be a real path;
* DuckDB's local filesystem is switched off as well, and there is no spill folder (DuckDB
  lets SQL read and write the folder it spills to);
* no extensions can be installed or loaded, no persistent secrets written, no Python
  variable read by name;
* the configuration is locked, so none of this, nor the limits, can be set back.
"""

from __future__ import annotations

from typing import Any


def seal(con: Any, allowed: list[str]) -> None:
    """Lock ``con`` down to reading ``allowed``."""
    con.execute("SET parquet_metadata_cache = true")
    con.execute("SET python_enable_replacements = false")
    con.execute("SET allow_community_extensions = false")
    con.execute("SET allow_extension_repositories = 'forbidden'")
    con.execute("SET allow_persistent_secrets = false")
    con.execute("SET allowed_directories = []")
    con.execute("SET allowed_paths = ?", [allowed])
    con.execute("SET temp_directory = ''")
    con.execute("SET disabled_filesystems = 'LocalFileSystem'")
    con.execute("SET enable_external_access = false")
    con.execute("SET lock_configuration = true")
