"""raystack: scan video archives for anomalies with state-space (Mamba) models.

The public API is a handful of names; everything heavy (torch models, Ray, DuckDB)
is imported on first use so ``import raystack`` stays cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "create_model": "raystack.models",
    "list_models": "raystack.models",
    "load_checkpoint": "raystack.models",
    "scan": "raystack.scan",
    "connect": "raystack.query",
    "train": "raystack.train",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    msg = f"module 'raystack' has no attribute {name!r}"
    raise AttributeError(msg)
