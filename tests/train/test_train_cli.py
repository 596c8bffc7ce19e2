"""``raystack train``, ``jobs/train.py`` and the TrainConfig loader."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from typer.testing import CliRunner

from raystack.errors import ConfigError
from raystack.train import load_train_config
from raystack.train.config import TrainConfig, check_config

ROOT = Path(__file__).resolve().parents[2]


def _job_module():
    spec = importlib.util.spec_from_file_location("train_job", ROOT / "jobs" / "train.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_example_toml_loads_with_overrides():
    cfg = load_train_config(ROOT / "jobs" / "train.example.toml", epochs=3, workers=0)
    assert cfg.model == "fp+fr" and cfg.epochs == 3 and cfg.workers == 0
    assert cfg.tasks == ("fp", "fr") and cfg.model_name("fr") == "vqmau_fr.small"
    check_config(cfg)


@pytest.mark.parametrize(("key", "value", "match"), [
    ("model", "fp+m2s2l", "model"),
    ("batch_size", 5, "multiple of workers"),
    ("val_fraction", 0.7, "val_fraction"),
    ("flow", "ptlflow", "flow"),
    ("name", "a/b", "name"),
    ("amp", "bf61", "amp = 'bf61': choose one of auto, off, bf16, fp16"),
])
def test_bad_settings_are_refused(key, value, match):
    cfg = TrainConfig(archive="x", workers=2, **{key: value})
    with pytest.raises(ConfigError, match=match):
        check_config(cfg)


def test_unknown_key_in_toml_is_refused(tmp_path):
    path = tmp_path / "t.toml"
    path.write_text('[train]\narchive = "x"\nepoch = 3\n')
    with pytest.raises(ConfigError, match="epoch"):
        load_train_config(path)


def test_job_trains_from_toml_with_set_overrides(synth_archive, tmp_path):
    job = _job_module()
    parsed = job.parse_set(["epochs=1", "storage=s3://b/runs", "model_overrides={img_size=[32]}"])
    assert parsed == {"epochs": 1, "storage": "s3://b/runs", "model_overrides": {"img_size": [32]}}
    path = tmp_path / "job.toml"
    path.write_text(
        "[train]\n"
        f'archive = "{synth_archive / "train"}"\n'
        'model = "fp"\npreset = "tiny"\nepochs = 1\nbatch_size = 4\nclips_per_epoch = 4\n'
        f'val_fraction = 0.2\nstorage = "{tmp_path / "runs"}"\nname = "job"\nprogress = false\n'
        "[train.model_overrides]\nimg_size = [32, 32]\n"
    )
    assert job.main(["--config", str(path), "--set", f'export_dir="{tmp_path / "models"}"']) == 0
    assert (tmp_path / "models" / "fp.pt").is_file()
    assert (tmp_path / "runs" / "job" / "fp.pt").is_file()
    assert job.main(["--config", str(path), "--set", "batch_size=0"]) == 2


def test_cli_reports_bad_input_with_exit_code_2(synth_archive, tmp_path):
    from raystack.cli import app

    runner = CliRunner()
    res = runner.invoke(app, ["train", str(synth_archive), "--storage", str(tmp_path)])
    assert res.exit_code == 2 and "test videos" in res.output
    res = runner.invoke(app, ["train", str(synth_archive / "train"), "--model", "xx"])
    assert res.exit_code == 2 and "model" in res.output
