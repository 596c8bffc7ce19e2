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

from raystack.scan.config import ScanConfig, load_scan_config
from raystack.scan.run import ScanResult, scan, status

__all__ = ["ScanConfig", "ScanResult", "load_scan_config", "scan", "status"]
