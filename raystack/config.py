"""Typed configuration loaded from TOML, shared by the CLI, the Ray jobs and the tests.

Every config is a frozen dataclass; :func:`load_config` reads one table of a TOML file
(``[scan]``, ``[train]``, ...) and applies overrides on top, refusing unknown keys so a
typo in a job file fails loudly instead of silently using a default.

    cfg = load_config(ScanConfig, "jobs/scan.example.toml", section="scan", workers=2)
"""

from __future__ import annotations

import dataclasses
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
    if origin is typing.Union or (origin is not None and str(origin) == "<class 'types.UnionType'>"):
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
    return cls(**kwargs)


def load_config(
    cls: type[T], path: str | Path | None = None, *, section: str | None = None, **overrides: Any
) -> T:
    """Load ``cls`` from a TOML file (optionally one ``[section]``), then apply overrides.

    Overrides whose value is ``None`` are ignored, so CLI options left unset keep the
    file's (or the dataclass's) value.
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
