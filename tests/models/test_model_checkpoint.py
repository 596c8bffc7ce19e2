"""Checkpoints rebuild the exact model from the file alone and fail clearly when broken."""

from __future__ import annotations

import pytest
import torch

from raystack.models import checkpoint_hash, create_model, load_checkpoint, save_checkpoint
from raystack.models.checkpoint import CheckpointError


def test_round_trip_reproduces_outputs_exactly(tmp_path):
    torch.manual_seed(0)
    model = create_model("vqmau_fr.tiny", use_ne=False, codebook_size=7)
    x = torch.rand(1, 2, 64, 64) * 2 - 1
    model.train()
    model(x)  # move BN running statistics off their init, so they must be saved too
    model.eval()
    expected = model(x).pred
    path = save_checkpoint(
        tmp_path / "sub" / "fr.pt", model, preset="vqmau_fr.tiny", data_fingerprint="abc123",
        extra={"epoch": 3},
    )
    loaded, info = load_checkpoint(path)
    assert not loaded.training
    assert loaded.config == model.config  # the overrides travel with the file
    assert torch.equal(loaded(x).pred, expected)
    assert info["preset"] == "vqmau_fr.tiny" and info["task"] == "fr"
    assert info["family"] == "vqmau" and info["data_fingerprint"] == "abc123"
    assert info["extra"] == {"epoch": 3} and info["code_version"].startswith("0.")
    assert info["n_params"] == sum(p.numel() for p in model.parameters())
    assert "model" not in info
    assert [p.name for p in path.parent.iterdir()] == ["fr.pt"]  # no temp file left behind


def test_hash_is_stable_and_content_sensitive(tmp_path):
    model = create_model("vqmau_fp.tiny")
    a = save_checkpoint(tmp_path / "a.pt", model, preset=None, data_fingerprint=None)
    h = checkpoint_hash(a)
    assert h == checkpoint_hash(a) and len(h) == 64
    with torch.no_grad():
        model.final.head.bias.add_(1.0)
    b = save_checkpoint(tmp_path / "b.pt", model, preset=None, data_fingerprint=None)
    assert checkpoint_hash(b) != h


def test_missing_corrupt_and_foreign_files_raise_checkpoint_error(tmp_path):
    with pytest.raises(CheckpointError, match="no such file"):
        load_checkpoint(tmp_path / "nope.pt")
    with pytest.raises(CheckpointError, match="no such file"):
        checkpoint_hash(tmp_path / "nope.pt")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"this is not a checkpoint")
    with pytest.raises(CheckpointError, match="cannot be read"):
        load_checkpoint(bad)
    foreign = tmp_path / "foreign.pt"
    torch.save({"state_dict": {}}, foreign)
    with pytest.raises(CheckpointError, match="not a raystack checkpoint"):
        load_checkpoint(foreign)
