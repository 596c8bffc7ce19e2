"""The calibrated thresholds of a store (``thresholds/<name>.json``) as one Arrow table.

    load_thresholds(st)          # pa.Table: name, run_id, fusion, sigma, false_alarm_rate, ...

A threshold's name is its file name, so two thresholds cannot share one; a ``name`` field
that says otherwise is ignored with a warning. A file that is not a threshold (not a JSON
object, a value that is not a finite number, a name outside the naming rule, too large) is
skipped with a :class:`~raystack.query.vetting.StoreFileWarning` naming the file and the
reason, so one bad file never breaks the queries of everyone else.
"""

from __future__ import annotations

import json
import math
import os
import warnings
from typing import Any

import pyarrow as pa

from raystack.query.vetting import StoreFileWarning, VettedFile, open_vetted

THRESHOLDS_DIR = "thresholds"
_MAX_BYTES = 1 << 20

THRESHOLDS_SCHEMA = pa.schema(
    [
        ("name", pa.string()),
        ("run_id", pa.string()),
        ("fusion", pa.string()),
        ("sigma", pa.float64()),
        ("false_alarm_rate", pa.float64()),
        ("value", pa.float64()),
        ("frames", pa.int64()),
        ("achieved_rate", pa.float64()),
        ("created_at", pa.string()),
    ]
)
_REQUIRED = ("fusion", "sigma", "value")


class _Bad(ValueError):
    pass


def _number(doc: dict, key: str) -> float | None:
    v = doc.get(key)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
        msg = f"{key} must be a finite number, got {v!r:.40}"
        raise _Bad(msg)
    return float(v)


def _text(doc: dict, key: str) -> str | None:
    v = doc.get(key)
    if v is not None and not isinstance(v, str):
        msg = f"{key} must be a string, got {type(v).__name__}"
        raise _Bad(msg)
    return v


def threshold_row(name: str, raw: bytes) -> dict[str, Any]:
    """The row of the threshold file ``<name>.json`` holding ``raw``.

    Raises:
        ValueError: why the file is not a threshold.
    """
    from raystack.store.layout import check_name

    try:
        check_name(name, "threshold name")
    except ValueError as e:
        raise _Bad(str(e)) from None
    if len(raw) > _MAX_BYTES:
        msg = f"larger than {_MAX_BYTES} bytes"
        raise _Bad(msg)
    try:
        doc = json.loads(raw)
    except (ValueError, RecursionError) as e:
        msg = f"not valid JSON ({e})"
        raise _Bad(msg) from None
    if not isinstance(doc, dict):
        msg = f"not a JSON object but a {type(doc).__name__}"
        raise _Bad(msg)
    missing = [k for k in _REQUIRED if doc.get(k) is None]
    if missing:
        msg = f"missing {', '.join(missing)}"
        raise _Bad(msg)
    frames = doc.get("frames")
    if frames is not None and (
        isinstance(frames, bool) or not isinstance(frames, int) or not 0 <= frames < 2**63
    ):
        msg = f"frames must be a count, got {frames!r:.40}"
        raise _Bad(msg)
    row = {
        "name": name,
        "run_id": _text(doc, "run_id"),
        "fusion": _text(doc, "fusion"),
        "sigma": _number(doc, "sigma"),
        "false_alarm_rate": _number(doc, "false_alarm_rate"),
        "value": _number(doc, "value"),
        "frames": frames,
        "achieved_rate": _number(doc, "achieved_rate"),
        "created_at": _text(doc, "created_at"),
    }
    if row["sigma"] < 0:
        msg = f"sigma must be >= 0, got {row['sigma']}"
        raise _Bad(msg)
    if doc.get("name") not in (None, name):
        warnings.warn(
            f"threshold file {THRESHOLDS_DIR}/{name}.json names itself "
            f"{str(doc.get('name'))[:80]!r}; its file name {name!r} counts",
            StoreFileWarning,
            stacklevel=4,
        )
    return row


def _candidates(st: Any) -> list[str]:
    """Paths of the ``*.json`` entries of the thresholds folder, hidden temp files left out."""
    from pyarrow import fs as pafs

    fs, root = st.filesystem
    sel = pafs.FileSelector(f"{root}/{THRESHOLDS_DIR}", allow_not_found=True)
    return sorted(
        i.path
        for i in fs.get_file_info(sel)
        if i.base_name.endswith(".json") and not i.base_name.startswith(".")
    )


def load_thresholds(st: Any, vetted: dict[str, VettedFile] | None = None) -> pa.Table:
    """Every valid threshold of the store, sorted by name.

    ``vetted`` (local stores) holds the files :func:`~raystack.query.vetting.vet_files`
    kept, read through descriptors checked to lie inside the store; S3 stores are read
    through their filesystem.
    """
    rows = []
    if vetted is not None:
        sources = [(v.relpath, v) for v in vetted.values()]
    else:
        sources = [(p.rsplit("/", 1)[-1], p) for p in _candidates(st)]
    for rel, src in sorted(sources, key=lambda s: s[0]):
        name = rel.rsplit("/", 1)[-1].removesuffix(".json")
        try:
            row = threshold_row(name, _read(st, src))
        except (_Bad, OSError) as e:
            warnings.warn(
                f"threshold file {THRESHOLDS_DIR}/{name}.json skipped: {e}",
                StoreFileWarning,
                stacklevel=3,
            )
            continue
        rows.append(row)
    return pa.Table.from_pylist(rows, schema=THRESHOLDS_SCHEMA)


def threshold_paths(st: Any) -> list[str]:
    """Local paths of the candidate threshold files, for vetting."""
    return _candidates(st)


def _read(st: Any, src: VettedFile | str) -> bytes:
    if isinstance(src, VettedFile):
        fd = open_vetted(src, os.path.realpath(st.uri))
        try:
            return os.pread(fd, _MAX_BYTES + 1, 0)
        finally:
            os.close(fd)
    fs, _ = st.filesystem
    with fs.open_input_stream(src) as f:
        return f.read(_MAX_BYTES + 1)
