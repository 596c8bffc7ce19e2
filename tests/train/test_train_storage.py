"""Run storage on a local disk and on S3 (moto's real S3 server), and training into S3."""

from __future__ import annotations

import pytest

from raystack.train import train
from raystack.train.storage import RunStorage, checkpoint_dir_name


def _fill(rs: RunStorage, tmp_path) -> None:
    local = tmp_path / "ck"
    local.mkdir()
    (local / "model.pt").write_bytes(b"m")
    (local / "state.pt").write_bytes(b"s")
    rs.upload_dir(local, f"fp/{checkpoint_dir_name(2)}")
    rs.upload_dir(local, f"fp/{checkpoint_dir_name(10)}")
    (local / "state.pt").unlink()
    rs.upload_dir(local, f"fp/{checkpoint_dir_name(11)}")  # incomplete: no state.pt
    rs.write_json("train.json", {"a": 1})


@pytest.mark.parametrize("where", ["local", "s3"])
def test_run_storage_round_trip(where, tmp_path, request):
    if where == "s3":
        bucket = request.getfixturevalue("s3_bucket")
        rs = RunStorage(f"s3://{bucket}/runs", "r1")
        assert rs.uri() == f"s3://{bucket}/runs/r1" and rs.ray_storage()[1] is rs.fs
    else:
        rs = RunStorage(str(tmp_path / "runs"), "r1")
        assert rs.ray_storage() == (str(tmp_path / "runs" / "r1"), None)
    assert rs.checkpoints("fp") == [] and rs.read_json("train.json") is None
    _fill(rs, tmp_path)
    assert rs.checkpoints("fp") == [(2, "fp/checkpoint_epoch_0002"),
                                    (10, "fp/checkpoint_epoch_0010")]
    assert rs.read_json("train.json") == {"a": 1}
    back = rs.get_dir("fp/checkpoint_epoch_0010", tmp_path / "back")
    assert (back / "state.pt").read_bytes() == b"s"
    rs.delete_dir("fp/checkpoint_epoch_0002")
    assert [e for e, _ in rs.checkpoints("fp")] == [10]


def test_training_into_s3_storage_resumes_and_exports(tiny_cfg, s3_bucket, tmp_path):
    from raystack.inference import FrameScorer

    cfg = tiny_cfg(storage=f"s3://{s3_bucket}/runs", epochs=1, export_dir=str(tmp_path / "out"))
    result = train(cfg)
    assert result.stored["fp"] == f"s3://{s3_bucket}/runs/t/fp.pt"
    assert result.checkpoints["fp"] == str(tmp_path / "out" / "fp.pt")
    rs = RunStorage(cfg.storage, cfg.name)
    assert [e for e, _ in rs.checkpoints("fp")] == [1]
    assert rs.exists("fp.pt") and rs.read_json("train.json")["streams"]["fp"]["selected_epoch"] == 1
    FrameScorer.from_checkpoints([result.checkpoints["fp"]])
    again = train(cfg)  # the finished run is found in S3: nothing is retrained
    assert again.resumed_from["fp"] == 1 and len(again.history["fp"]) == 1
