"""The registry: presets as data, aliases, overrides, and a second family plugging in."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from raystack.errors import ConfigError
from raystack.models import create_model, get_config, list_models, registry
from raystack.models.presets import PRESETS


def test_presets_and_aliases():
    assert list_models("vqmau_*.tiny") == ["vqmau_fp.tiny", "vqmau_fr.tiny"]
    assert set(PRESETS) <= set(list_models())
    assert "vqmau_fp.paper" not in list_models() and "vqmau_fp.paper" in list_models(aliases=True)
    assert get_config("vqmau_fp.paper") == PRESETS["vqmau_fp.ped2"]
    assert get_config("vqmau_fr.paper-avenue").depths == (2, 2, 2, 2)
    assert get_config("vqmau_fr.tiny", use_vq=False).use_vq is False
    assert PRESETS["vqmau_fr.tiny"].use_vq is True  # presets are never mutated


def test_unknown_name_lists_valid_names():
    with pytest.raises(ConfigError, match=r"unknown model 'vqmau_fp\.ped3'.*vqmau_fp\.ped2"):
        create_model("vqmau_fp.ped3")
    with pytest.raises(ConfigError, match="unknown override.*valid fields"):
        create_model("vqmau_fp.tiny", widths=(1, 2))


def test_another_family_registers_itself(monkeypatch):
    monkeypatch.setattr(registry, "_FAMILIES", dict(registry._FAMILIES))
    monkeypatch.setattr(registry, "_PRESETS", dict(registry._PRESETS))

    @dataclasses.dataclass(frozen=True)
    class ToyConfig:
        width: int = 4  # hidden width

    class Toy(torch.nn.Module):
        def __init__(self, config, device=None, dtype=None):
            super().__init__()
            self.config = config
            self.lin = torch.nn.Linear(config.width, 1, device=device, dtype=dtype)

    registry.register_family("toy", ToyConfig, Toy)
    registry.register_preset("toy.small", ToyConfig(width=3))
    model = create_model("toy.small", width=5)
    assert isinstance(model, Toy) and model.lin.in_features == 5
    assert list_models("toy.*") == ["toy.small"]
    stored = registry.config_to_dict(model.config)
    assert stored == {"family": "toy", "config": {"width": 5}}
    assert registry.config_from_dict("toy", stored["config"]) == model.config
    with pytest.raises(ConfigError, match="unknown model family"):
        registry.config_from_dict("nope", {})
