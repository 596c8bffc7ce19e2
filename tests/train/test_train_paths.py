"""Ray Train workers run in another folder: train() hands them absolute paths."""

from __future__ import annotations

import pytest


class Reached(Exception):
    pass


def test_train_resolves_relative_paths_before_ray(synth_archive, tiny_cfg, monkeypatch):
    seen = {}

    def fake_fit_with_ray(cfg, storage, emit):
        seen["cfg"] = cfg
        raise Reached

    monkeypatch.setattr("raystack.train.ray_train.fit_with_ray", fake_fit_with_ray)
    monkeypatch.chdir(synth_archive)
    from raystack.train import train

    with pytest.raises(Reached):
        train(tiny_cfg(archive="train", workers=2, storage="runs", cache_dir="cache"))
    cfg = seen["cfg"]
    assert cfg.archive == str(synth_archive / "train")
    assert cfg.storage == str(synth_archive / "runs")
    assert cfg.cache_dir == str(synth_archive / "cache")
