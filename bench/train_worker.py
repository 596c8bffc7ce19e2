"""One tree's training throughput: real StreamTrainer epochs on a synthetic clip set.

Run by bench/train_ab.py with the measured tree's raystack first on the path, so the same
step code (``StreamTrainer.run_epoch``: batch assembly, forward, loss, backward, clipping,
AdamW, schedule) of THAT tree is timed. The clips are seeded random frames and flows, the
same in every tree. The tree's process settings, where it has them, are applied as its
``raystack train`` does: ``raystack.threads.short_omp_spin`` before torch loads,
``raystack.allocator.keep_freed_memory`` before training. Epoch 1
warms up (kernel builds, allocator), epoch 2 is measured (its ``train_s``, validation
excluded).

    PYTHONPATH=TREE python bench/train_worker.py --preset vqmau_fp.small --steps 6 --out r.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

try:  # the measured tree's process settings, applied as its CLI does: before torch loads
    from raystack.threads import short_omp_spin
except ImportError:  # a tree from before the setting
    pass
else:
    short_omp_spin()

import numpy as np  # noqa: E402
import torch  # noqa: E402


def synthetic_videos(task: str, size: tuple[int, int], frames: int, seed: int) -> list:
    from raystack.train.data import DecodedVideo

    rng = np.random.default_rng(seed)
    h, w = size
    videos = []
    for k in range(2):
        base = rng.integers(0, 256, (1, h, w, 3), dtype=np.uint8)
        noise = rng.integers(-12, 13, (frames, h, w, 3))
        video = np.clip(base.astype(np.int16) + noise, 0, 255).astype(np.uint8)
        flows = None
        if task == "fr":
            flows = rng.uniform(-0.5, 0.5, (frames - 1, 2, h, w)).astype(np.float16)
        videos.append(DecodedVideo(f"synthetic/{k}.mp4", video, flows))
    return videos


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", required=True, help="registry name, e.g. vqmau_fr.paper")
    ap.add_argument("--steps", type=int, default=6, help="optimiser steps per epoch")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--out", required=True)
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="a TrainConfig field, e.g. amp=off (a string; the tree must have it)")
    args = ap.parse_args()

    from raystack.models import create_model
    from raystack.train.config import FAMILY, TrainConfig
    from raystack.train.data import TrainingData, build_clip_sets
    from raystack.train.loop import StreamTrainer

    family, preset = args.preset.split(".", 1)
    task = {v: k for k, v in FAMILY.items()}[family]
    mcfg = create_model(args.preset).config
    size, t = tuple(mcfg.img_size), int(mcfg.context)
    cfg = TrainConfig(model=task, preset=preset, epochs=2, batch_size=args.batch,
                      clips_per_epoch=args.steps * args.batch, val_clips=args.batch,
                      val_fraction=0.1, seed=0, progress=False,
                      **dict(kv.split("=", 1) for kv in args.set))
    videos = synthetic_videos(task, size, frames=t + 4 * args.batch, seed=0)
    train, val = build_clip_sets(videos, task=task, t=t, stride=1, val_fraction=0.1,
                                 val_clips=args.batch,
                                 flow_scale=getattr(mcfg, "flow_scale", 10.0), seed=0)
    data = TrainingData(task=task, t=t, img_size=size, fingerprint="synthetic", train=train,
                        val=val)
    try:  # as the measured tree's in-process `raystack train` sets up its process
        from raystack.allocator import keep_freed_memory
    except ImportError:  # a tree from before the setting
        pass
    else:
        keep_freed_memory()
    t0 = time.perf_counter()
    trainer = StreamTrainer(cfg, task, data)
    epochs = [trainer.run_epoch() for _ in range(2)]
    total_s = time.perf_counter() - t0
    m = epochs[-1]
    doc = {"preset": args.preset, "batch": args.batch, "steps": args.steps,
           "threads": torch.get_num_threads(), "clips_per_s": m["clips_per_s"],
           "train_s": m["train_s"], "warmup_clips_per_s": epochs[0]["clips_per_s"],
           "total_s": round(total_s, 3), "loss": m["loss"], "settings": args.set,
           "precision": getattr(trainer, "precision", "float32")}
    Path(args.out).write_text(json.dumps(doc) + "\n")
    print(json.dumps(doc), flush=True)


if __name__ == "__main__":
    main()
