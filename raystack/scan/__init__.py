"""The distributed scan: archive -> work units -> Ray actors -> Parquet store, resumable.

    from raystack.scan import ScanConfig, scan, status
    result = scan(ScanConfig(archive="./videos", checkpoints=("fp.pt",), store="./store"))
    print(result.summary.rows, result.ok)

Modules, in data-flow order: ``config`` (ScanConfig), ``plan`` (work units), ``chunks``
(decode + flow with context, prefetched), ``worker`` (UnitScorer, no Ray), ``manifest``
(attempt rows, resume), ``pipeline`` (the Ray adapter), ``progress`` (bar and summary),
``run`` (``scan`` and ``status``).
"""

from __future__ import annotations

from raystack.lazy import lazy_attributes

# Imported on first use: the CLI reads the config's defaults for --help without torch.
_LAZY = {
    "ScanConfig": "raystack.scan.config",
    "load_scan_config": "raystack.scan.config",
    "ScanResult": "raystack.scan.run",
    "scan": "raystack.scan.run",
    "status": "raystack.scan.run",
}

__all__ = sorted(_LAZY)


__getattr__ = lazy_attributes(__name__, _LAZY)
