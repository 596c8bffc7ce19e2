"""Ray Train adapter: 2 DDP workers, a checkpoint per epoch, and resume after a killed worker.

One local Ray for the module (starting Ray costs 6-8 s); ``train`` uses it as it is.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from raystack.train import train
from raystack.train.ray_train import FAULT_EXIT_AFTER_EPOCH, TrainingFailed

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def local_ray():
    import ray

    ray.init(address="local", num_cpus=2, object_store_memory=256 * 1024**2,
             include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def test_two_workers_resume_after_a_killed_worker(local_ray, tiny_cfg, monkeypatch):
    from raystack.inference import FrameScorer
    from raystack.models import load_checkpoint

    cfg = tiny_cfg(workers=2, epochs=2, max_failures=0)
    run = Path(cfg.storage) / cfg.name
    # The rank-0 worker dies right after its epoch-1 checkpoint: the run fails.
    monkeypatch.setenv(FAULT_EXIT_AFTER_EPOCH, "1")
    with pytest.raises(TrainingFailed, match="fp"):
        train(cfg)
    assert sorted(p.name for p in (run / "fp").glob("checkpoint_epoch_*")) == [
        "checkpoint_epoch_0001"]
    _, info = load_checkpoint(run / "fp" / "checkpoint_epoch_0001" / "model.pt")
    assert info["extra"]["epoch"] == 1

    # Rerunning the same storage + name rebuilds the trainer and continues at epoch 2.
    monkeypatch.delenv(FAULT_EXIT_AFTER_EPOCH)
    result = train(cfg)
    assert result.resumed_from["fp"] == 1
    assert [h["epoch"] for h in result.history["fp"]] == [1, 2]
    assert sorted(p.name for p in (run / "fp").glob("checkpoint_epoch_*")) == [
        "checkpoint_epoch_0001", "checkpoint_epoch_0002"]
    assert result.history["fp"][1]["clips"] == 8  # both workers' shards counted
    scorer = FrameScorer.from_checkpoints([result.checkpoints["fp"]], baselines=False)
    out = scorer.score(np.zeros((6, 32, 32, 3), np.float32))
    assert out["fp"].psnr.shape == (2,)
    again = train(cfg)  # a finished run: the workers find epoch 2 and train nothing more
    assert again.resumed_from["fp"] == 2 and len(again.history["fp"]) == 2


def test_ray_train_stores_checkpoints_in_s3(local_ray, tiny_cfg, s3_bucket, tmp_path):
    from raystack.inference import FrameScorer
    from raystack.train.storage import RunStorage

    cfg = tiny_cfg(workers=2, epochs=1, storage=f"s3://{s3_bucket}/runs",
                   export_dir=str(tmp_path / "models"))
    result = train(cfg)  # Ray Train gets a pyarrow S3FileSystem for the custom endpoint
    rs = RunStorage(cfg.storage, cfg.name)
    assert [e for e, _ in rs.checkpoints("fp")] == [1]
    assert rs.exists("fp.pt") and result.stored["fp"] == f"s3://{s3_bucket}/runs/t/fp.pt"
    FrameScorer.from_checkpoints([result.checkpoints["fp"]])
