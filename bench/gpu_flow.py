"""Phase e of bench/gpu_check.py: ptlflow through raystack's adapter on the device.

Each model is built with random weights, saved to a local checkpoint and loaded back through
``raystack.flow.create_flow("ptlflow", ...)`` (nothing is ever downloaded), as
tests/gpu_extras/test_ptlflow_real.py does. Pairs/s at 256x256 and 640x360, and the largest
difference between the flows of the same pair on the CPU and on the device (random weights
make the flow itself meaningless; the difference says whether the device path computes the
same function, TF32 convolutions included).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from gpu_common import Ctx, is_oom, short_error, time_calls

from raystack.flow import create_flow

MODELS = ("rapidflow", "raft_small")


def moving_texture(t: int, h: int, w: int, seed: int = 0) -> np.ndarray:
    """uint8 (t, h, w, 3): a blocky random texture moving 3 px right, 2 px down a frame."""
    rng = np.random.default_rng(seed)
    tex = np.kron(rng.random((h // 8 + 1, w // 8 + 1, 3)), np.ones((8, 8, 1)))[:h, :w]
    return (np.stack([np.roll(tex, (2 * k, 3 * k), axis=(0, 1)) for k in range(t)]) * 255
            ).astype(np.uint8)


def flow_model(ctx: Ctx, ptlflow: Any, name: str, folder: Path) -> dict[str, Any]:
    torch.manual_seed(0)
    net = ptlflow.get_model(name).eval()
    path = folder / f"{name}.ckpt"
    torch.save({"state_dict": net.state_dict(), "hyper_parameters": {}}, path)
    del net
    dev = create_flow("ptlflow", model=name, ckpt_path=path, device=str(ctx.device), batch_size=8)
    out: dict[str, Any] = {"model": name, "sizes": []}
    sizes = [(64, 64)] if ctx.quick else [(256, 256), (360, 640)]
    for h, w in sizes:
        if ctx.left() < 10:
            out["sizes"].append({"hw": [h, w], "skipped": "phase budget spent"})
            continue
        frames = moving_texture(9, h, w)  # 8 pairs: one batch of the adapter
        try:
            timing = time_calls(lambda f=frames: dev(f), ctx, min_reps=2, max_reps=10,
                                min_time=1.0)
            out["sizes"].append({"hw": [h, w], "pairs_per_s": 8 / timing["mean_s"],
                                 "reps": timing["reps"]})
        except Exception as e:
            out["sizes"].append({"hw": [h, w], "error": short_error(e), "oom": is_oom(e)})
    pair = moving_texture(2, *sizes[0])
    cpu = create_flow("ptlflow", model=name, ckpt_path=path, device="cpu", batch_size=1)
    a, b = cpu(pair), dev(pair)
    out["cpu_vs_device"] = {"hw": list(sizes[0]), "max_abs_px": float(np.abs(a - b).max()),
                            "mean_abs_px": float(np.abs(a - b).mean()),
                            "cpu_flow_max_abs_px": float(np.abs(a).max())}
    return out


def phase_ptlflow(ctx: Ctx) -> dict[str, Any]:
    try:
        import ptlflow
    except Exception as e:  # ImportError, or a dependency raising at import
        return {"skipped": f"ptlflow does not import: {short_error(e)}"}
    res: dict[str, Any] = {"ptlflow": getattr(ptlflow, "__version__", "?"),
                           "cudnn_allow_tf32": torch.backends.cudnn.allow_tf32,
                           "matmul_allow_tf32": torch.backends.cuda.matmul.allow_tf32,
                           "models": []}
    with tempfile.TemporaryDirectory() as tmp:
        for name in MODELS:
            if ctx.left() < 15:
                res["models"].append({"model": name, "skipped": "phase budget spent"})
                continue
            try:
                res["models"].append(flow_model(ctx, ptlflow, name, Path(tmp)))
            except Exception as e:
                res["models"].append({"model": name, "error": short_error(e)})
    return res
