"""Model registry: named presets (config instances) and one builder per config class.

A model family registers its config dataclass and a builder once, then any number of named
presets; ``create_model(name, **overrides)`` looks the preset up, applies the overrides with
``dataclasses.replace`` and calls the family's builder. Checkpoints store the family name and
``asdict(config)``, so :func:`config_from_dict` rebuilds the config with nothing else.

    register_family("vqmau", VQMaUConfig, build_vqmau)
    register_preset("vqmau_fp.ped2", VQMaUConfig(...))
    model = create_model("vqmau_fp.ped2", use_ne=False)   # the ablation without NE
"""

from __future__ import annotations

import dataclasses
import fnmatch
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch.nn as nn

from raystack.errors import ConfigError


@dataclass(frozen=True)
class ModelFamily:
    name: str  # e.g. "vqmau", "m2s2l"; stored in checkpoints
    config_cls: type  # the family's frozen config dataclass
    builder: Callable[..., nn.Module]  # builder(config, device=None, dtype=None) -> model


_FAMILIES: dict[str, ModelFamily] = {}
_PRESETS: dict[str, Any] = {}
_ALIASES: dict[str, str] = {}


def register_family(name: str, config_cls: type, builder: Callable[..., nn.Module]) -> None:
    """Register a model family: its config dataclass and the builder that turns one into a model.

    The built model must keep its config as ``model.config`` (checkpoints save it).
    """
    if not dataclasses.is_dataclass(config_cls):
        msg = f"register_family({name!r}): {config_cls!r} is not a dataclass"
        raise TypeError(msg)
    known = _FAMILIES.get(name)
    if known is not None and known.config_cls is not config_cls:
        msg = f"model family {name!r} is already registered for {known.config_cls.__name__}"
        raise ValueError(msg)
    _FAMILIES[name] = ModelFamily(name, config_cls, builder)


def family_of(config: Any) -> ModelFamily:
    """The registered family whose config class ``config`` is an instance of."""
    for family in _FAMILIES.values():
        if type(config) is family.config_cls:
            return family
    msg = f"no model family registered for {type(config).__name__}; call register_family first"
    raise ConfigError(msg)


def register_preset(name: str, config: Any, *, aliases: tuple[str, ...] = ()) -> None:
    """Register a named preset (a config instance of a registered family), plus aliases."""
    family_of(config)  # refuse configs nobody can build
    _PRESETS[name] = config
    for alias in aliases:
        _ALIASES[alias] = name


def resolve_name(name: str) -> str:
    """The canonical preset name of ``name`` (itself or the preset an alias points to)."""
    name = _ALIASES.get(name, name)
    if name not in _PRESETS:
        valid = ", ".join(sorted([*_PRESETS, *_ALIASES]))
        msg = f"unknown model {name!r}; valid names: {valid}"
        raise ConfigError(msg)
    return name


def get_config(name: str, **overrides: Any) -> Any:
    """The preset's config with ``overrides`` applied (unknown fields raise ConfigError)."""
    config = _PRESETS[resolve_name(name)]
    fields = {f.name for f in dataclasses.fields(config)}
    unknown = sorted(set(overrides) - fields)
    if unknown:
        msg = (
            f"unknown override(s) {unknown} for {name!r} ({type(config).__name__}); "
            f"valid fields: {sorted(fields)}"
        )
        raise ConfigError(msg)
    return dataclasses.replace(config, **overrides) if overrides else config


def build_model(config: Any, **factory_kwargs: Any) -> nn.Module:
    """Build the model a config describes with its family's builder."""
    return family_of(config).builder(config, **factory_kwargs)


def create_model(
    name: str, *, device: Any = None, dtype: Any = None, **overrides: Any
) -> nn.Module:
    """Build the preset ``name`` (or an alias) with config ``overrides``.

    Args:
        name: a preset name such as ``"vqmau_fp.ped2"`` or an alias such as ``"vqmau_fp.paper"``.
        device: where to allocate parameters (``"meta"`` counts parameters without memory).
        dtype: parameter dtype; default float32.
        **overrides: config fields to replace, e.g. ``use_ne=False`` or ``in_frames=8``.

    Raises:
        ConfigError: unknown name (the message lists the valid ones) or unknown field.
    """
    return build_model(get_config(name, **overrides), device=device, dtype=dtype)


def list_models(pattern: str = "*", *, aliases: bool = False) -> list[str]:
    """Sorted preset names matching the fnmatch ``pattern`` (aliases only when asked)."""
    names = [*_PRESETS, *(_ALIASES if aliases else ())]
    return sorted(n for n in names if fnmatch.fnmatchcase(n, pattern))


def config_to_dict(config: Any) -> dict[str, Any]:
    """``{"family": ..., "config": asdict(config)}``: what a checkpoint stores."""
    return {"family": family_of(config).name, "config": dataclasses.asdict(config)}


def config_from_dict(family: str, data: dict[str, Any]) -> Any:
    """Rebuild a config from a checkpoint's ``family`` and ``asdict`` payload."""
    if family not in _FAMILIES:
        msg = f"unknown model family {family!r}; registered: {sorted(_FAMILIES)}"
        raise ConfigError(msg)
    cls = _FAMILIES[family].config_cls
    fields = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - fields)
    if unknown:
        msg = f"{family} config has unknown field(s) {unknown}; this code knows {sorted(fields)}"
        raise ConfigError(msg)
    # Sequences come back as lists from JSON-like stores; config fields hold tuples.
    return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})
