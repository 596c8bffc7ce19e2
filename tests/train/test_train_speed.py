"""What the training-speed changes must keep: the fused AdamW takes the same steps as the
per-tensor loop it replaced, and the trainer uses it."""

from __future__ import annotations

import torch

from raystack.models import create_model
from raystack.train.loop import StreamTrainer, make_adamw


def _steps(opt_of, steps: int = 4) -> list[torch.Tensor]:
    torch.manual_seed(0)
    model = create_model("vqmau_fp.tiny", img_size=(32, 32))
    decay = [p for p in model.parameters() if p.dim() >= 2]
    rest = [p for p in model.parameters() if p.dim() < 2]
    opt = opt_of([{"params": decay, "weight_decay": 0.01},
                  {"params": rest, "weight_decay": 0.0}])
    gen = torch.Generator().manual_seed(1)
    for _ in range(steps):
        for p in model.parameters():
            p.grad = torch.randn(p.shape, generator=gen)
        opt.step()
    return [p.detach().clone() for p in model.parameters()]


def test_fused_adamw_matches_the_per_tensor_loop():
    fused = _steps(lambda g: make_adamw(g, lr=3e-3, device=torch.device("cpu")))
    loop = _steps(lambda g: torch.optim.AdamW(g, lr=3e-3, foreach=False))
    moved = _steps(lambda g: torch.optim.AdamW(g, lr=3e-3, foreach=False), steps=5)
    for a, b in zip(fused, loop, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    # the comparison can fail: one step more lands elsewhere
    assert any(not torch.allclose(a, b, rtol=1e-5, atol=1e-6)
               for a, b in zip(loop, moved, strict=True))


def test_trainer_steps_with_the_fused_adamw(tiny_cfg):
    from raystack.models import get_config
    from raystack.train.data import prepare_data

    cfg = tiny_cfg()
    data = prepare_data(cfg, "fp", get_config(cfg.model_name("fp"), **cfg.model_overrides))
    trainer = StreamTrainer(cfg, "fp", data)
    assert trainer.opt.defaults["fused"] is True
    assert [g["weight_decay"] for g in trainer.opt.param_groups] == [cfg.weight_decay, 0.0]
