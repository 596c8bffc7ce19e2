"""The gate floors a scan runs with: the configured ones, else what the checkpoints recorded.

``raystack train`` records both floors in each checkpoint it exports (``extra["gate"]``,
see :mod:`raystack.train.gate_calibration`), calibrated on the held-out normal frames. A
scan with ``gate`` on takes, for a floor not configured, the lowest of its checkpoints'
(the most conservative: it gates the fewest frames). A checkpoint without a motion floor
(trained before gating existed, or made by hand) is refused by name rather than guessed
for; one without a change floor (trained before the change stage) only leaves every frame
to the motion stage, which computes its flow.

    floor = resolve_gate_floor(cfg, scorer.checkpoints)        # None: no gating
    diff = resolve_diff_floor(cfg, scorer.checkpoints, floor)  # None: flow for every frame
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from raystack.errors import ConfigError
from raystack.gate import GATE_KEY
from raystack.scan.config import ScanConfig


def recorded_floor(info: Mapping[str, Any]) -> float | None:
    """The floor in px a checkpoint's info records, or None."""
    gate = (info.get("extra") or {}).get(GATE_KEY) or {}
    floor = gate.get("floor_px")
    return None if floor is None else float(floor)


def resolve_gate_floor(cfg: ScanConfig, checkpoints: Mapping[str, Mapping[str, Any]]
                       ) -> float | None:
    """The floor in px for ``cfg`` (None when gating is off).

    Raises:
        ConfigError: ``gate`` is on without ``gate_floor`` and a checkpoint records none.
    """
    if cfg.gate_floor > 0:
        return float(cfg.gate_floor)
    if not cfg.gate:
        return None
    floors = {stream: recorded_floor(info) for stream, info in checkpoints.items()}
    missing = [str(checkpoints[s].get("path", s)) for s, f in floors.items() if f is None]
    if missing:
        msg = (f"--gate: checkpoint {', '.join(missing)} records no gate floor (it was trained "
               "before motion gating, or not by `raystack train`); retrain it, or give the "
               "floor with --gate-floor PX (worst-patch flow in px at the model's input, e.g. "
               "0.3)")
        raise ConfigError(msg)
    return min(f for f in floors.values() if f is not None)


def recorded_diff_floor(info: Mapping[str, Any]) -> float | None:
    """The change floor in 8-bit levels a checkpoint's info records, or None."""
    gate = (info.get("extra") or {}).get(GATE_KEY) or {}
    floor = gate.get("diff_floor")
    return None if floor is None else float(floor)


def resolve_diff_floor(cfg: ScanConfig, checkpoints: Mapping[str, Mapping[str, Any]],
                       gate_floor: float | None) -> float | None:
    """The change floor in levels for ``cfg`` whose motion floor resolved to ``gate_floor``:
    None when gating is off, the change stage is off (``gate_diff_floor = -1``), or a
    checkpoint records no change floor and none is configured."""
    if gate_floor is None or cfg.gate_diff_floor < 0:
        return None
    if cfg.gate_diff_floor > 0:
        return float(cfg.gate_diff_floor)
    floors = [recorded_diff_floor(info) for info in checkpoints.values()]
    if not floors or any(f is None for f in floors):
        return None
    return min(f for f in floors if f is not None)
