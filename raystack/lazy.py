"""Package attributes imported on first use (PEP 562), so ``import raystack`` and the CLI's
``--help`` stay fast and do not import torch.

    __getattr__ = lazy_attributes(__name__, {"scan": "raystack.scan.run"})
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any


def lazy_attributes(package: str, where: dict[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` that imports ``where[name]`` and returns its ``name``."""

    def __getattr__(name: str) -> Any:  # noqa: N807 - the module hook's own name
        if name in where:
            return getattr(importlib.import_module(where[name]), name)
        msg = f"module {package!r} has no attribute {name!r}"
        raise AttributeError(msg)

    return __getattr__
