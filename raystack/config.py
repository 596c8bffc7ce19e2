"""Typed configuration loaded from TOML, shared by the CLI, the Ray jobs and the tests.

Every config is a frozen dataclass; :func:`load_config` reads one table of a TOML file
(``[scan]``, ``[train]``, ...) and applies overrides on top, refusing unknown keys so a
typo in a job file fails loudly instead of silently using a default.

    cfg = load_config(ScanConfig, "jobs/scan.example.toml", section="scan", workers=2)
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
import typing
from pathlib import Path
from typing import Any, TypeVar

from raystack.errors import ConfigError

T = TypeVar("T")


def _coerce(value: Any, annotation: Any, key: str) -> Any:
    """Convert TOML values to the field's declared type (tuples from arrays, ints to floats)."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if value is None:
        return None
    union = origin is not None and str(origin) == "<class 'types.UnionType'>"
    if origin is typing.Union or union:
        non_none = [a for a in args if a is not type(None)]
        return _coerce(value, non_none[0], key) if len(non_none) == 1 else value
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            msg = f"config key {key!r}: expected an array, got {value!r}"
            raise ConfigError(msg)
        item = args[0] if args else Any
        return tuple(_coerce(v, item, key) for v in value)
    if annotation is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if annotation is Path and isinstance(value, str):
        return Path(value)
    return value


def absolute_path(value: Any) -> Any:
    """A local path made absolute against the current folder; URIs and empty values as they are.

    Ray workers (scan actors, Ray Train) run in another folder, and run.json must say where
    the data was, so every path is resolved once, in the process the user started.

        absolute_path("runs")            # "/home/me/runs"
        absolute_path("s3://b/store")    # unchanged
    """
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, (tuple, list)):
        return type(value)(absolute_path(v) for v in value)
    text = os.fspath(value)
    if not text or "://" in text:
        return value
    absolute = os.path.abspath(os.path.expanduser(text))
    return Path(absolute) if isinstance(value, Path) else absolute


def resolve_paths(cfg: T) -> T:
    """``cfg`` with every field named in its ``PATH_FIELDS`` made absolute (see above)."""
    fields = getattr(cfg, "PATH_FIELDS", ())
    changes = {k: absolute_path(getattr(cfg, k)) for k in fields}
    return dataclasses.replace(cfg, **changes) if changes else cfg


def from_dict(cls: type[T], data: dict[str, Any], *, source: str = "config") -> T:
    """Build ``cls`` from a mapping, rejecting keys the dataclass does not declare."""
    if not dataclasses.is_dataclass(cls):
        msg = f"{cls!r} is not a dataclass"
        raise TypeError(msg)
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        msg = f"{source}: unknown key(s) {unknown} for {cls.__name__}; valid keys: {sorted(names)}"
        raise ConfigError(msg)
    kwargs = {k: _coerce(v, hints[k], k) for k, v in data.items()}
    return resolve_paths(cls(**kwargs))


def load_config(
    cls: type[T], path: str | Path | None = None, *, section: str | None = None, **overrides: Any
) -> T:
    """Load ``cls`` from a TOML file (optionally one ``[section]``), then apply overrides.

    Overrides whose value is ``None`` are ignored, so CLI options left unset keep the
    file's (or the dataclass's) value. The fields of ``cls.PATH_FIELDS`` come back absolute
    (:func:`resolve_paths`).
    """
    data: dict[str, Any] = {}
    source = "overrides"
    if path is not None:
        path = Path(path)
        source = str(path)
        try:
            with path.open("rb") as f:
                doc = tomllib.load(f)
        except FileNotFoundError:
            msg = f"config file {path} does not exist"
            raise ConfigError(msg) from None
        except tomllib.TOMLDecodeError as e:
            msg = f"config file {path} is not valid TOML: {e}"
            raise ConfigError(msg) from None
        if section is not None:
            if section not in doc:
                msg = f"config file {path} has no [{section}] table; tables: {sorted(doc)}"
                raise ConfigError(msg)
            doc = doc[section]
        data.update(doc)
    data.update({k: v for k, v in overrides.items() if v is not None})
    return from_dict(cls, data, source=source)


def to_dict(cfg: Any) -> dict[str, Any]:
    """A JSON/TOML-friendly dict of a config (tuples become lists, paths strings)."""

    def plain(v: Any) -> Any:
        if isinstance(v, Path):
            return str(v)
        if isinstance(v, tuple):
            return [plain(x) for x in v]
        return v

    return {k: plain(v) for k, v in dataclasses.asdict(cfg).items()}


def parse_set(items: list[str]) -> dict[str, Any]:
    """Overrides given as ``key=value`` (the jobs' ``--set``): ``["workers=2",
    "store=s3://b/s"]`` -> ``{"workers": 2, "store": "s3://b/s"}``.

    A value is read as TOML (``workers=2``, ``checkpoints=["a.pt"]``,
    ``model_overrides={img_size=[64, 64]}``) or, when it is not valid TOML, kept as a
    plain string (``store=s3://bucket/store``).

    Raises:
        ConfigError: an item without ``=`` or without a key.
    """
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            msg = f"--set expects key=value, got {item!r}"
            raise ConfigError(msg)
        try:
            value = tomllib.loads(f"v = {raw}")["v"]
        except tomllib.TOMLDecodeError:
            value = raw
        out[key.strip()] = value
    return out
