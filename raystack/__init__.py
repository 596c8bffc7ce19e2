"""raystack: scan video archives for anomalies with state-space (Mamba) models.

The public API is a handful of names; everything heavy (torch models, Ray, DuckDB)
is imported on first use so ``import raystack`` stays cheap.

Scanning and training live in their packages (``from raystack.scan import scan``,
``from raystack.train import train``): a top-level function named like a subpackage would
be replaced by the module as soon as anything imports that subpackage.
"""

from __future__ import annotations

from raystack.lazy import lazy_attributes

__version__ = "0.1.0"

_LAZY = {
    "create_model": "raystack.models",
    "list_models": "raystack.models",
    "load_checkpoint": "raystack.models",
    "connect": "raystack.query",
    "run_sql": "raystack.query",
}

__all__ = ["__version__", *_LAZY]


__getattr__ = lazy_attributes(__name__, _LAZY)
