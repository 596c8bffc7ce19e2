"""Versioned data contracts of raystack (installed as ``raystack.schemas``).

``v<N>/<table>.json`` are Arrow schemas, ``sql/`` holds the DuckDB views and macros.
Code loads them through :mod:`raystack.store.schema`; nothing here is Python logic.
"""
