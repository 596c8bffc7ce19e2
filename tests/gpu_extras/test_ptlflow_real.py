"""The ptlflow adapter for real: small ptlflow models with random weights, a checkpoint
saved and reloaded locally, run on CPU on 256x256 frames. Needs `make test-gpu-extras`."""

from __future__ import annotations

import numpy as np
import ptlflow  # a missing ptlflow must fail here, loudly, not skip
import pytest
import torch

from raystack.flow import create_flow

MODELS = ["rapidflow", "flownets"]


def _frames(t: int = 4, size: int = 256, seed: int = 0) -> np.ndarray:
    """A smooth random texture moving 3 px right and 2 px down per frame."""
    rng = np.random.default_rng(seed)
    tex = rng.random((size // 8, size // 8, 3))
    tex = np.kron(tex, np.ones((8, 8, 1)))  # blocky, so there is structure to match
    frames = [np.roll(tex, (2 * k, 3 * k), axis=(0, 1)) for k in range(t)]
    return (np.stack(frames) * 255).astype(np.uint8)


@pytest.fixture(params=MODELS)
def saved(request, tmp_path):
    torch.manual_seed(0)
    net = ptlflow.get_model(request.param).eval()
    path = tmp_path / f"{request.param}.ckpt"
    torch.save({"state_dict": net.state_dict(), "hyper_parameters": {}}, path)
    return request.param, net, path


def test_checkpoint_reload_reproduces_the_model(saved):
    name, net, path = saved
    frames = _frames()
    est = create_flow("ptlflow", model=name, ckpt_path=path, device="cpu", batch_size=2)
    flow = est(frames)
    assert flow.shape == (3, 256, 256, 2) and flow.dtype == np.float32
    assert np.isfinite(flow).all()

    # The adapter feeds ptlflow's convention: BGR in [0, 1], pairs as (B, 2, 3, H, W).
    bgr = torch.from_numpy(np.ascontiguousarray(frames[..., ::-1])).permute(0, 3, 1, 2) / 255.0
    images = torch.stack([bgr[:-1], bgr[1:]], dim=1).float().contiguous()
    with torch.inference_mode():
        ref = net({"images": images})["flows"]
    assert ref.shape == (3, 1, 2, 256, 256)
    np.testing.assert_allclose(flow, ref[:, 0].permute(0, 2, 3, 1).numpy(), rtol=1e-4, atol=1e-4)

    again = create_flow("ptlflow", model=name, ckpt_path=str(path), device="auto", batch_size=3)
    assert again.device == "cpu" or torch.cuda.is_available()
    np.testing.assert_allclose(again(frames), flow, rtol=1e-4, atol=1e-4)

    torch.manual_seed(1)
    other = create_flow("ptlflow", model=name, allow_random_weights=True, device="cpu")
    assert np.abs(other(frames) - flow).max() > 1e-3, "weights from the checkpoint were ignored"


def test_named_checkpoints_are_never_downloaded():
    with pytest.raises(FileNotFoundError, match="never downloaded"):
        create_flow("ptlflow", model="rapidflow", ckpt_path="things")
    with pytest.raises(ValueError, match="unknown ptlflow model 'rapid_flow'"):
        create_flow("ptlflow", model="rapid_flow", allow_random_weights=True)
