"""Flow backends: DIS and Farneback recover known shifts; the ptlflow adapter's argument,
checkpoint and batching logic (the real ptlflow run is in tests/gpu_extras)."""

from __future__ import annotations

import pickle
import sys
import types

import numpy as np
import pytest
import torch

from raystack.flow import (
    FLOW_SCALE,
    FlowEstimator,
    create_flow,
    flow_from_model_output,
    flow_to_model_input,
)


def _texture(h: int, w: int, seed: int = 0) -> np.ndarray:
    """A smooth random RGB texture, rich enough for flow in every patch."""
    import cv2

    rng = np.random.default_rng(seed)
    noise = rng.random((h, w, 3)).astype(np.float32)
    tex = cv2.GaussianBlur(noise, (0, 0), 2.0)
    tex = (tex - tex.min()) / (tex.max() - tex.min())
    return (tex * 255).astype(np.uint8)


def _shifted_clip(h: int, w: int, dx: float, dy: float, t: int = 3) -> np.ndarray:
    """Frame k is the texture moved by k * (dx, dy) pixels (sub-pixel by bilinear warp)."""
    import cv2

    pad = 24
    canvas = _texture(h + 2 * pad, w + 2 * pad)
    frames = []
    for k in range(t):
        m = np.float32([[1, 0, k * dx], [0, 1, k * dy]])
        size = (canvas.shape[1], canvas.shape[0])
        moved = cv2.warpAffine(canvas, m, size, flags=cv2.INTER_LINEAR)
        frames.append(moved[pad : pad + h, pad : pad + w])
    return np.stack(frames)


def _interior_median(flow: np.ndarray, margin: int = 16) -> np.ndarray:
    return np.median(flow[:, margin:-margin, margin:-margin].reshape(-1, 2), axis=0)


BACKENDS = [("dis", {"preset": "ultrafast"}), ("dis", {"preset": "fast"}),
            ("dis", {"preset": "medium"}), ("farneback", {})]


@pytest.mark.parametrize(("name", "kwargs"), BACKENDS)
@pytest.mark.parametrize(("dx", "dy"), [(3.0, -2.0), (-1.5, 2.5)])
def test_recovers_known_shift(name, kwargs, dx, dy):
    frames = _shifted_clip(96, 128, dx, dy)
    est = create_flow(name, **kwargs)
    flow = est(frames)
    assert flow.shape == (2, 96, 128, 2)
    assert flow.dtype == np.float32
    med = _interior_median(flow)
    np.testing.assert_allclose(med, [dx, dy], atol=0.3)


@pytest.mark.parametrize(("name", "kwargs"), [("dis", {}), ("farneback", {})])
def test_grayscale_and_odd_sizes(name, kwargs):
    rgb = _shifted_clip(71, 93, 2.0, 1.0, t=4)
    est = create_flow(name, **kwargs)
    gray = rgb.mean(axis=-1).astype(np.uint8)
    for clip in (gray, gray[..., None]):
        flow = est(clip)
        assert flow.shape == (3, 71, 93, 2)
        assert flow.dtype == np.float32
        np.testing.assert_allclose(_interior_median(flow), [2.0, 1.0], atol=0.3)


def test_single_frame_gives_empty_flow_and_bad_input_is_refused():
    est = create_flow("dis")
    assert isinstance(est, FlowEstimator)
    assert est(np.zeros((1, 32, 32, 3), np.uint8)).shape == (0, 32, 32, 2)
    with pytest.raises(ValueError, match="uint8"):
        est(np.zeros((2, 32, 32, 3), np.float32))
    with pytest.raises(ValueError, match="shape"):
        est(np.zeros((2, 32, 32, 4), np.uint8))
    with pytest.raises(ValueError, match="at least 12 px"):
        est(np.zeros((2, 10, 11, 3), np.uint8))
    assert create_flow("farneback")(np.zeros((2, 5, 7), np.uint8)).shape == (1, 5, 7, 2)
    with pytest.raises(ValueError, match="unknown flow backend 'raft'"):
        create_flow("raft")
    with pytest.raises(ValueError, match="unknown DIS preset 'slow'"):
        create_flow("dis", preset="slow")
    with pytest.raises(ValueError, match="poly_n"):
        create_flow("farneback", poly_n=4)


def test_dis_estimator_pickles():
    est = create_flow("dis", preset="medium")
    again = pickle.loads(pickle.dumps(est))
    assert again.name == "dis-medium"
    frames = _shifted_clip(64, 64, 1.0, 0.0)
    np.testing.assert_array_equal(again(frames), est(frames))


def test_model_input_scaling_round_trip():
    rng = np.random.default_rng(1)
    flow = rng.uniform(-FLOW_SCALE, FLOW_SCALE, size=(3, 8, 10, 2)).astype(np.float32)
    x = flow_to_model_input(flow)
    assert x.shape == (3, 2, 8, 10)
    assert x.dtype == np.float32
    assert x.min() >= -1 and x.max() <= 1
    np.testing.assert_allclose(x[:, 0], flow[..., 0] / FLOW_SCALE, rtol=1e-6)
    np.testing.assert_allclose(flow_from_model_output(x), flow, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(flow_from_model_output(torch.from_numpy(x)), flow, atol=1e-5)
    big = np.full((4, 4, 2), 5 * FLOW_SCALE, np.float32)
    big[..., 1] = -5 * FLOW_SCALE
    clipped = flow_to_model_input(big)
    assert (clipped[0] == 1).all() and (clipped[1] == -1).all()
    with pytest.raises(ValueError, match=r"\(\.\.\., H, W, 2\)"):
        flow_to_model_input(np.zeros((4, 4, 3)))


# --- ptlflow adapter: argument and checkpoint handling (no ptlflow needed) -------------


def test_ptlflow_needs_model_and_a_local_checkpoint(tmp_path):
    with pytest.raises(ValueError, match="model="):
        create_flow("ptlflow", ckpt_path=tmp_path / "x.ckpt")
    with pytest.raises(ValueError, match="ckpt_path"):
        create_flow("ptlflow", model="raft_small")
    # A pretrained checkpoint NAME is not a file: refused, never looked up online.
    with pytest.raises(FileNotFoundError, match="'things' does not exist.*never downloaded"):
        create_flow("ptlflow", model="raft_small", ckpt_path="things")
    with pytest.raises(FileNotFoundError, match="is a directory"):
        create_flow("ptlflow", model="raft_small", ckpt_path=tmp_path)
    ckpt = tmp_path / "m.ckpt"
    ckpt.write_bytes(b"x")
    with pytest.raises(ValueError, match="device"):
        create_flow("ptlflow", model="raft_small", ckpt_path=ckpt, device="tpu")
    with pytest.raises(ValueError, match="batch_size"):
        create_flow("ptlflow", model="raft_small", ckpt_path=ckpt, batch_size=0)


def test_ptlflow_missing_names_the_gpu_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ptlflow", None)  # makes `import ptlflow` fail
    ckpt = tmp_path / "m.ckpt"
    ckpt.write_bytes(b"x")
    with pytest.raises(ImportError, match=r"pip install 'raystack\[gpu\]'"):
        create_flow("ptlflow", model="raft_small", ckpt_path=ckpt)


class _ShiftNet(torch.nn.Module):
    """Stands in for a ptlflow model: 'flow' = (ch0 - ch2 of image 2, ch1 of image 1) per pixel,
    so the test sees channel order, pair order, batching and the output layout."""

    def __init__(self) -> None:
        super().__init__()
        self.gain = torch.nn.Parameter(torch.ones(()))
        self.calls: list[tuple[int, ...]] = []

    def forward(self, inputs):
        im = inputs["images"]  # (B, 2, 3, H, W), BGR in [0, 1]
        assert im.is_contiguous(), "ptlflow models call .view() on their input"
        self.calls.append(tuple(im.shape))
        dx = im[:, 1, 0] - im[:, 1, 2]
        dy = im[:, 0, 1]
        return {"flows": (self.gain * torch.stack([dx, dy], 1))[:, None]}


@pytest.fixture
def fake_ptlflow(monkeypatch):
    mod = types.ModuleType("ptlflow")
    built: list[_ShiftNet] = []

    def get_model(name, ckpt_path=None):
        assert ckpt_path is None, "the adapter must load checkpoints itself"
        built.append(_ShiftNet())
        return built[-1]

    mod.get_model = get_model
    mod.get_model_names = lambda: ["fake_shift", "raft_small"]
    monkeypatch.setitem(sys.modules, "ptlflow", mod)
    return built


def test_ptlflow_adapter_batches_pairs_in_bgr(fake_ptlflow, tmp_path):
    ckpt = tmp_path / "fake.ckpt"
    torch.save({"state_dict": {"gain": torch.tensor(2.0)}}, ckpt)
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, size=(6, 12, 10, 3), dtype=np.uint8)
    est = create_flow("ptlflow", model="fake_shift", ckpt_path=ckpt, device="cpu", batch_size=2)
    flow = est(frames)
    assert est.name == "ptlflow-fake_shift"
    assert flow.shape == (5, 12, 10, 2) and flow.dtype == np.float32
    f = frames.astype(np.float32) / 255
    # the net sees BGR, so ch0 - ch2 is B - R of the next frame; then G of this frame; times
    # the gain 2 loaded from the checkpoint
    np.testing.assert_allclose(flow[..., 0], 2 * (f[1:, ..., 2] - f[1:, ..., 0]), atol=1e-5)
    np.testing.assert_allclose(flow[..., 1], 2 * f[:-1, ..., 1], atol=1e-5)
    assert [c[0] for c in fake_ptlflow[-1].calls] == [2, 2, 1]


def test_ptlflow_adapter_checkpoint_errors(fake_ptlflow, tmp_path):
    bad = tmp_path / "bad.ckpt"
    bad.write_bytes(b"not a torch file")
    with pytest.raises(ValueError, match="cannot read ptlflow checkpoint"):
        create_flow("ptlflow", model="fake_shift", ckpt_path=bad)
    wrong = tmp_path / "wrong.ckpt"
    torch.save({"state_dict": {"other": torch.zeros(3)}}, wrong)
    with pytest.raises(ValueError, match="does not fit model 'fake_shift'"):
        create_flow("ptlflow", model="fake_shift", ckpt_path=wrong)
    bare = tmp_path / "bare.pt"
    torch.save({"gain": torch.tensor(3.0)}, bare)  # a bare state dict is accepted
    est = create_flow("ptlflow", model="fake_shift", ckpt_path=bare)
    assert est.net.gain.item() == 3.0
    with pytest.raises(ValueError, match="unknown ptlflow model 'raft_smal'.*raft_small"):
        create_flow("ptlflow", model="raft_smal", ckpt_path=bare)
    est = create_flow("ptlflow", model="fake_shift", allow_random_weights=True)
    assert est.ckpt_path is None
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            create_flow("ptlflow", model="fake_shift", ckpt_path=bare, device="cuda")
