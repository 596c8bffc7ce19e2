"""Self-describing model checkpoints: weights plus everything needed to rebuild the model.

A checkpoint is one ``torch.save`` file holding

    {"format": 1, "model": state_dict, "family": "vqmau", "config": asdict(config),
     "preset": "vqmau_fp.ped2", "task": "fp", "code_version": "0.1.0+git.1a2b3c4",
     "git_commit": "1a2b3c4...", "data_fingerprint": "...", "n_params": 14_1xx_xxx,
     "created": "2026-11-23T04:00:00+00:00", "extra": {...}}

written atomically (temp file + rename), read with ``weights_only=True`` (no pickled code
runs on load), so ``load_checkpoint(path)`` needs nothing but the file.

    save_checkpoint("fp.pt", model, preset="vqmau_fp.tiny", data_fingerprint="abc")
    model, info = load_checkpoint("fp.pt")        # info["preset"] == "vqmau_fp.tiny"
"""

from __future__ import annotations

import datetime as _dt
import functools
import hashlib
import os
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from raystack.errors import RaystackError
from raystack.models.registry import build_model, config_from_dict, config_to_dict

FORMAT_VERSION = 1
_REQUIRED = ("format", "model", "family", "config")


class CheckpointError(RaystackError):
    """A checkpoint file is missing, unreadable, or not a raystack checkpoint."""


@functools.lru_cache(maxsize=1)
def git_commit() -> str | None:
    """The commit of the source tree raystack runs from, or None outside a git checkout."""
    root = Path(__file__).resolve().parents[2]
    try:
        out = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"],
            capture_output=True, text=True, timeout=5, check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def code_version() -> str:
    """``raystack.__version__``, plus ``+git.<short sha>`` when running from a checkout."""
    from raystack import __version__

    commit = git_commit()
    return f"{__version__}+git.{commit[:7]}" if commit else __version__


def _unwrap(model: nn.Module) -> nn.Module:
    # DDP and torch.compile wrap the model; the config and clean key names live inside.
    while True:
        inner = getattr(model, "module", None) or getattr(model, "_orig_mod", None)
        if not isinstance(inner, nn.Module):
            return model
        model = inner


def save_checkpoint(
    path: str | os.PathLike,
    model: nn.Module,
    *,
    preset: str | None,
    data_fingerprint: str | None,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write ``model`` (with its ``.config``) to ``path`` atomically.

    Args:
        path: destination file; parent folders are created.
        model: a registry-built model (``model.config`` set); DDP/compile wrappers are unwrapped.
        preset: the preset name it was created from (None for a hand-made config).
        data_fingerprint: identifies the training data (e.g. a hash of the video list).
        extra: JSON-like values to keep alongside (epoch, losses, ...).

    Returns:
        The path written.
    """
    model = _unwrap(model)
    config = getattr(model, "config", None)
    if config is None:
        msg = f"save_checkpoint({path}): model {type(model).__name__} has no .config"
        raise CheckpointError(msg)
    payload = {
        "format": FORMAT_VERSION,
        "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        **config_to_dict(config),
        "preset": preset,
        "task": getattr(config, "task", None),
        "code_version": code_version(),
        "git_commit": git_commit(),
        "data_fingerprint": data_fingerprint,
        "n_params": sum(p.numel() for p in model.parameters()),
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "extra": dict(extra or {}),
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _write_payload(path, payload)
    return path


def _write_payload(path: Path, payload: dict[str, Any]) -> None:
    """``torch.save`` to a same-folder temp file, then rename: a crash mid-write never leaves
    a truncated checkpoint."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(payload, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _check_is_file(path: Path) -> None:
    if path.is_dir():
        msg = (f"checkpoint {path}: is a folder, expected a checkpoint file (the fp.pt / fr.pt "
               "/ m2s2l.pt that `raystack train` exports)")
        raise CheckpointError(msg)
    if not path.is_file():
        msg = f"checkpoint {path}: no such file"
        raise CheckpointError(msg)


def _check_magic(path: Path) -> None:
    """Refuse files torch.save cannot have written before the unpickler's page of advice."""
    with path.open("rb") as f:
        head = f.read(8)
    if head.startswith(b"\x93NUMPY"):
        msg = f"checkpoint {path}: is a NumPy .npy array, not a model checkpoint"
        raise CheckpointError(msg)
    if not head.startswith(b"PK\x03\x04"):
        msg = (f"checkpoint {path}: cannot be read as a model checkpoint (torch.save writes a "
               f"zip archive; this file starts with {head[:4]!r})")
        raise CheckpointError(msg)


def _first_sentence(err: Exception) -> str:
    """torch's unpickling errors run to a page of advice; the first sentence says what failed."""
    text = " ".join(str(err).split())
    return f"{type(err).__name__}: {text.split('. ')[0][:200]}" if text else type(err).__name__


def read_checkpoint(path: str | os.PathLike, map_location: Any = "cpu") -> dict[str, Any]:
    """The raw checkpoint dict, validated; raises :class:`CheckpointError` with the reason."""
    path = Path(path)
    _check_is_file(path)
    _check_magic(path)
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    # A damaged file can fail anywhere inside the unpickler (IndexError, KeyError, ...);
    # whatever it raises, the answer is the same: this file is not a usable checkpoint.
    except Exception as err:
        msg = (f"checkpoint {path}: not a raystack checkpoint, it cannot be read as a torch "
               f"checkpoint ({_first_sentence(err)})")
        raise CheckpointError(msg) from None
    if not isinstance(payload, dict) or any(k not in payload for k in _REQUIRED):
        have = sorted(payload) if isinstance(payload, dict) else type(payload).__name__
        msg = f"checkpoint {path}: not a raystack checkpoint (needs keys {_REQUIRED}, has {have})"
        raise CheckpointError(msg)
    if payload["format"] != FORMAT_VERSION:
        msg = (f"checkpoint {path}: format {payload['format']} is not supported "
               f"(this raystack reads format {FORMAT_VERSION})")
        raise CheckpointError(msg)
    return payload


def load_checkpoint(
    path: str | os.PathLike, map_location: Any = "cpu"
) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the model a checkpoint describes and load its weights.

    Returns:
        ``(model, info)``: the model in eval mode on ``map_location``; ``info`` is the
        checkpoint without the weights (config, preset, task, code_version, ...).
    """
    payload = read_checkpoint(path, map_location)
    try:
        config = config_from_dict(payload["family"], payload["config"])
    except (RaystackError, TypeError) as err:
        msg = f"checkpoint {path}: its config cannot be rebuilt ({err})"
        raise CheckpointError(msg) from err
    model = build_model(config)
    try:
        model.load_state_dict(payload["model"])
    except RuntimeError as err:
        msg = f"checkpoint {path}: weights do not match its own config ({err})"
        raise CheckpointError(msg) from err
    model.to(map_location).eval()
    info = {k: v for k, v in payload.items() if k != "model"}
    return model, info


def checkpoint_hash(path: str | os.PathLike) -> str:
    """sha256 hex digest of the checkpoint file (what run.json records)."""
    path = Path(path)
    _check_is_file(path)
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_checkpoint_extra(path: str | os.PathLike, key: str, record: dict[str, Any]) -> None:
    """Rewrite the checkpoint at ``path`` with ``record`` as ``extra[key]``, atomically (the
    calibrations ``raystack train`` records after export: gate floor, normal errors)."""
    path = Path(path)
    payload = read_checkpoint(path)
    payload["extra"] = {**(payload.get("extra") or {}), key: record}
    _write_payload(path, payload)
