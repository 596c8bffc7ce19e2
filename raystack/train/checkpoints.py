"""Epoch checkpoints of a stream's training, and the rule that picks the one to export.

Checkpoint selection rule (:data:`SELECTION_RULE`): the exported checkpoint is the epoch
with the lowest validation loss on held-out NORMAL clips (the last ``val_fraction`` of every
training video), ties going to the later epoch; without a validation split, the last
epoch. Test labels are never used.

    write_checkpoint(trainer, folder, run_name="demo")   # model.pt + state.pt
    model_state, state = read_checkpoint_dir(folder)     # what resume loads
"""

from __future__ import annotations

import math
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from raystack.train.storage import MODEL_FILE, STATE_FILE

if TYPE_CHECKING:
    from raystack.train.loop import StreamTrainer

SELECTION_RULE = (
    "lowest validation loss on held-out normal clips (the last val_fraction of every "
    "training video), ties to the later epoch; the last epoch without a validation split; "
    "test labels are never used"
)


def select_epoch(
    history: list[dict[str, Any]], available: set[int] | None = None
) -> dict[str, Any] | None:
    """The history entry :data:`SELECTION_RULE` picks among the ``available`` epochs."""
    cands = [h for h in history if available is None or h["epoch"] in available]
    if not cands:
        return None
    with_val = [h for h in cands if h.get("val_loss") is not None and math.isfinite(h["val_loss"])]
    if with_val:
        return min(with_val, key=lambda h: (h["val_loss"], -h["epoch"]))
    return max(cands, key=lambda h: h["epoch"])


def write_checkpoint(trainer: StreamTrainer, folder: str | Path, *, run_name: str | None) -> Path:
    """Write ``model.pt`` (a raystack checkpoint) and ``state.pt`` (resume) into ``folder``."""
    from raystack.models.checkpoint import save_checkpoint
    from raystack.models.tiling import TILING_KEY, tiling_record

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    last = trainer.history[-1] if trainer.history else {}
    extra = {"run": run_name, "epoch": trainer.epoch, "selection_rule": SELECTION_RULE,
             "metrics": {k: v for k, v in last.items() if isinstance(v, (int, float, str))},
             "model_overrides": dict(trainer.cfg.model_overrides),
             TILING_KEY: tiling_record(trainer.cfg.tiles, trainer.cfg.tile_scale)}
    save_checkpoint(folder / MODEL_FILE, trainer.module, preset=trainer.model_name,
                    data_fingerprint=trainer.data.fingerprint, extra=extra)
    fd, tmp = tempfile.mkstemp(prefix=f".{STATE_FILE}.", dir=folder)
    with os.fdopen(fd, "wb") as f:
        torch.save(trainer.state_dict(), f)
    os.replace(tmp, folder / STATE_FILE)
    return folder


def read_checkpoint_dir(folder: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """``(model_state, state)`` of an epoch checkpoint folder."""
    from raystack.models.checkpoint import read_checkpoint

    folder = Path(folder)
    payload = read_checkpoint(folder / MODEL_FILE)
    state = torch.load(folder / STATE_FILE, map_location="cpu", weights_only=True)
    return payload["model"], state


def checkpoints_to_delete(
    epochs: list[int], history: list[dict[str, Any]], keep: int | None
) -> list[int]:
    """Epochs to prune: all but the latest and the ``keep`` best by the selection rule."""
    if keep is None or len(epochs) <= keep:
        return []
    avail = set(epochs)
    ranked: list[int] = []
    while len(ranked) < keep and avail - set(ranked):
        pick = select_epoch(history, avail - set(ranked))
        if pick is None:
            break
        ranked.append(pick["epoch"])
    if len(ranked) < keep:  # epochs missing from history: keep the latest ones
        ranked += sorted(avail - set(ranked))[-(keep - len(ranked)):]
    kept = set(ranked) | {max(epochs)}
    return sorted(e for e in epochs if e not in kept)
