from dataclasses import dataclass

import pytest

from raystack.config import load_config, to_dict
from raystack.errors import ConfigError


@dataclass(frozen=True)
class _Cfg:
    name: str = "x"
    rate: float = 1.0
    sizes: tuple[int, ...] = (1, 2)


def test_load_section_and_overrides(tmp_path):
    p = tmp_path / "c.toml"
    p.write_text('[scan]\nname = "a"\nrate = 3\nsizes = [4, 5]\n')
    cfg = load_config(_Cfg, p, section="scan", name=None, rate=2.5)
    assert cfg == _Cfg(name="a", rate=2.5, sizes=(4, 5))
    assert to_dict(cfg)["sizes"] == [4, 5]


def test_unknown_key_and_missing_file(tmp_path):
    p = tmp_path / "c.toml"
    p.write_text("nmae = 1\n")
    with pytest.raises(ConfigError, match="unknown key"):
        load_config(_Cfg, p)
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(_Cfg, tmp_path / "missing.toml")


def test_parse_set_reads_toml_values_or_plain_strings():
    from raystack.config import parse_set
    from raystack.errors import ConfigError

    assert parse_set(["workers=2", "store=s3://b/s", 'checkpoints=["a.pt"]',
                      "model_overrides={img_size=[64, 64]}"]) == {
        "workers": 2, "store": "s3://b/s", "checkpoints": ["a.pt"],
        "model_overrides": {"img_size": [64, 64]}}
    with pytest.raises(ConfigError, match="key=value"):
        parse_set(["workers"])
