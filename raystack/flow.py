"""Dense optical flow between consecutive frames, behind one interface with several backends.

Every backend maps a clip of uint8 RGB frames to the flow from each frame to the next, in
pixels, as (dx, dy): frame ``i`` at ``(x, y)`` reappears in frame ``i + 1`` at
``(x + dx, y + dy)``.

    est = create_flow("dis", preset="fast")   # CPU default (OpenCV DIS)
    flow = est(frames)                        # (T, 256, 256, 3) uint8 -> (T-1, 256, 256, 2) px
    x = flow_to_model_input(flow)             # (T-1, 2, 256, 256) float32 in [-1, 1]

Backends: ``dis`` (OpenCV DIS, presets ``ultrafast`` | ``fast`` | ``medium``), ``farneback``
(OpenCV Farneback) and ``ptlflow`` (a ptlflow model from a local checkpoint, for GPU
machines; it lives in the ``gpu`` extra and never downloads weights).
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

# Model input is clip(flow_px / FLOW_SCALE, -1, 1). Frames are resized to 256x256 first.
# At that size a walking person moves about 1-4 px a frame (Avenue, 25 fps, people ~80 px
# tall: ~3 px; Ped2, 10 fps, people ~40 px tall: ~3.5 px; ShanghaiTech, 24 fps: ~1.5 px),
# while the anomalies of these benchmarks (running, bikes, skaters, carts) reach ~5-10 px.
# 10 px keeps those unclipped, so the fastest motion of interest still reads as different,
# and normal walking spans 10-40% of the range instead of vanishing near zero.
FLOW_SCALE: float = 10.0

DIS_PRESETS = ("ultrafast", "fast", "medium")
BACKENDS = ("dis", "farneback", "ptlflow")


@runtime_checkable
class FlowEstimator(Protocol):
    """A flow backend: ``(T, H, W, 3)`` uint8 RGB -> ``(T-1, H, W, 2)`` float32 pixels."""

    name: str

    def __call__(self, frames: np.ndarray) -> np.ndarray: ...


def create_flow(name: str = "dis", **kwargs: Any) -> FlowEstimator:
    """Build a flow backend by name.

    Args:
        name: ``"dis"`` (kwargs ``preset``), ``"farneback"`` (kwargs: OpenCV's parameters) or
            ``"ptlflow"`` (kwargs ``model``, ``ckpt_path``, ``device``, ``batch_size``).
        **kwargs: passed to the backend's constructor.

    Returns:
        A callable mapping ``(T, H, W, 3)`` uint8 RGB frames to ``(T-1, H, W, 2)`` float32
        flow in pixels.

    Raises:
        ValueError: for an unknown backend name (the message lists the valid ones).
    """
    backends = {"dis": DISFlow, "farneback": FarnebackFlow, "ptlflow": PtlflowFlow}
    if name not in backends:
        msg = f"unknown flow backend {name!r}; choose one of {list(BACKENDS)}"
        raise ValueError(msg)
    return backends[name](**kwargs)


def flow_to_model_input(flow_px: np.ndarray) -> np.ndarray:
    """``(..., H, W, 2)`` flow in pixels -> ``(..., 2, H, W)`` float32 in [-1, 1].

    The map is ``clip(flow_px / FLOW_SCALE, -1, 1)``, channels first as the models take them.
    """
    flow_px = np.asarray(flow_px)
    if flow_px.ndim < 3 or flow_px.shape[-1] != 2:
        msg = f"flow must have shape (..., H, W, 2), got {flow_px.shape}"
        raise ValueError(msg)
    x = np.clip(flow_px.astype(np.float32) / np.float32(FLOW_SCALE), -1.0, 1.0)
    return np.ascontiguousarray(np.moveaxis(x, -1, -3))


def rescale_flow(x: Any, flow_scale: float) -> Any:
    """Model-range flow at :data:`FLOW_SCALE` -> model range at ``flow_scale`` px per unit.

    Exact for ``flow_scale <= FLOW_SCALE``: what the first clip cut at FLOW_SCALE px lies
    beyond the new clip at flow_scale px too. Works on numpy arrays and torch tensors.
    """
    if flow_scale == FLOW_SCALE:
        return x
    gain = FLOW_SCALE / float(flow_scale)
    return (x * gain).clip(-1.0, 1.0)


def flow_from_model_output(x: Any) -> np.ndarray:
    """Inverse of :func:`flow_to_model_input`: ``(..., 2, H, W)`` -> ``(..., H, W, 2)`` pixels.

    Accepts a numpy array or a torch tensor (any device). Values clipped on the way in
    come back as +-FLOW_SCALE.
    """
    if hasattr(x, "detach"):
        x = x.detach().float().cpu().numpy()
    x = np.asarray(x, dtype=np.float32)
    if x.ndim < 3 or x.shape[-3] != 2:
        msg = f"model flow must have shape (..., 2, H, W), got {x.shape}"
        raise ValueError(msg)
    return np.ascontiguousarray(np.moveaxis(x, -3, -1) * np.float32(FLOW_SCALE))


def _check_frames(frames: np.ndarray, backend: str) -> np.ndarray:
    """Validate a clip; returns it as (T, H, W, C) with C in {1, 3}."""
    frames = np.asarray(frames)
    if frames.dtype != np.uint8:
        msg = f"{backend} flow expects uint8 frames, got dtype {frames.dtype}"
        raise ValueError(msg)
    if frames.ndim == 3:  # grayscale (T, H, W)
        frames = frames[..., None]
    if frames.ndim != 4 or frames.shape[-1] not in (1, 3):
        msg = f"{backend} flow expects frames (T, H, W, 3) or (T, H, W), got shape {frames.shape}"
        raise ValueError(msg)
    if frames.shape[0] < 1 or frames.shape[1] < 2 or frames.shape[2] < 2:
        msg = f"{backend} flow needs at least one frame of 2x2 pixels, got {frames.shape}"
        raise ValueError(msg)
    return frames


def _gray(frames: np.ndarray) -> list[np.ndarray]:
    import cv2

    if frames.shape[-1] == 1:
        return [np.ascontiguousarray(f[..., 0]) for f in frames]
    return [cv2.cvtColor(np.ascontiguousarray(f), cv2.COLOR_RGB2GRAY) for f in frames]


class DISFlow:
    """OpenCV's Dense Inverse Search: the CPU default, 1-22 ms a 256x256 pair by preset."""

    def __init__(self, preset: str = "fast") -> None:
        import cv2

        if preset not in DIS_PRESETS:
            msg = f"unknown DIS preset {preset!r}; choose one of {list(DIS_PRESETS)}"
            raise ValueError(msg)
        self.preset = preset
        self.name = f"dis-{preset}"
        code = {
            "ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST,
            "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
            "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM,
        }[preset]
        self._dis = cv2.DISOpticalFlow_create(code)

    def __call__(self, frames: np.ndarray) -> np.ndarray:
        frames = _check_frames(frames, "DIS")
        if max(frames.shape[1:3]) < 12:
            msg = f"DIS flow needs frames at least 12 px wide or high, got {frames.shape[1:3]}"
            raise ValueError(msg)
        gray = _gray(frames)
        h, w = gray[0].shape
        out = np.empty((len(gray) - 1, h, w, 2), dtype=np.float32)
        for i in range(len(gray) - 1):
            out[i] = self._dis.calc(gray[i], gray[i + 1], None)
        return out

    def __reduce__(self) -> tuple:
        # cv2 objects do not pickle; Ray ships estimators to workers, so rebuild there.
        return (DISFlow, (self.preset,))


class FarnebackFlow:
    """OpenCV's Farneback polynomial-expansion flow; parameters are OpenCV's, same defaults."""

    def __init__(
        self,
        pyr_scale: float = 0.5,
        levels: int = 3,
        winsize: int = 15,
        iterations: int = 3,
        poly_n: int = 5,
        poly_sigma: float = 1.2,
    ) -> None:
        if not 0.0 < pyr_scale < 1.0:
            msg = f"Farneback pyr_scale must be in (0, 1), got {pyr_scale}"
            raise ValueError(msg)
        if poly_n not in (5, 7):
            msg = f"Farneback poly_n must be 5 or 7, got {poly_n}"
            raise ValueError(msg)
        self.params = {
            "pyr_scale": float(pyr_scale),
            "levels": int(levels),
            "winsize": int(winsize),
            "iterations": int(iterations),
            "poly_n": int(poly_n),
            "poly_sigma": float(poly_sigma),
        }
        self.name = "farneback"

    def __call__(self, frames: np.ndarray) -> np.ndarray:
        import cv2

        gray = _gray(_check_frames(frames, "Farneback"))
        h, w = gray[0].shape
        out = np.empty((len(gray) - 1, h, w, 2), dtype=np.float32)
        for i in range(len(gray) - 1):
            out[i] = cv2.calcOpticalFlowFarneback(
                gray[i], gray[i + 1], None, flags=0, **self.params
            )
        return out


class PtlflowFlow:
    """A ptlflow model loaded from a LOCAL checkpoint; never downloads.

    ptlflow models take ``{"images": (B, 2, 3, H, W)}`` float in [0, 1] with channels in
    BGR order (ptlflow reads images with OpenCV; models that want RGB flip inside), pad or
    resize to their stride themselves, and return ``flows`` (B, 1, 2, H, W) in pixels of
    the input. Frame pairs are batched ``batch_size`` at a time.

    The checkpoint is loaded here, not by ``ptlflow.get_model(name, ckpt_path)``: given a
    name that is not a file, ptlflow would fetch a pretrained checkpoint from the network.
    Accepted formats: ptlflow's / Lightning's ``{"state_dict": ..., "hyper_parameters": ...}``
    or a bare state dict.
    """

    def __init__(
        self,
        model: str | None = None,
        ckpt_path: str | Path | None = None,
        device: str = "auto",
        batch_size: int = 8,
        allow_random_weights: bool = False,
    ) -> None:
        # Arguments are checked before ptlflow is imported so that mistakes surface the
        # same way on a machine without the gpu extra.
        if not model or not isinstance(model, str):
            msg = "ptlflow flow needs model=<ptlflow model name>, e.g. model='raft_small'"
            raise ValueError(msg)
        if device not in ("auto", "cpu", "cuda") and not str(device).startswith("cuda:"):
            msg = f"ptlflow device must be 'auto', 'cpu' or 'cuda[:N]', got {device!r}"
            raise ValueError(msg)
        if int(batch_size) < 1:
            msg = f"ptlflow batch_size must be >= 1, got {batch_size}"
            raise ValueError(msg)
        self.ckpt_path = _resolve_ckpt(ckpt_path, allow_random_weights)
        self.model_name = model
        self.batch_size = int(batch_size)
        self.name = f"ptlflow-{model}"

        try:
            import ptlflow
        except ImportError as e:
            msg = (
                f"the ptlflow flow backend needs ptlflow ({e}); install the gpu extra: "
                "pip install 'raystack[gpu]'"
            )
            raise ImportError(msg) from e
        import torch

        self.device = _pick_device(device, torch)
        names = list(ptlflow.get_model_names())
        if model not in names:
            close = difflib.get_close_matches(model, names, n=5)
            msg = f"unknown ptlflow model {model!r}; close names: {close or names[:20]}"
            raise ValueError(msg)
        net = ptlflow.get_model(model)  # ckpt_path=None: builds the architecture only
        if self.ckpt_path is not None:
            _load_ptlflow_ckpt(net, self.ckpt_path, model, torch)
        self.net = net.to(self.device).eval()

    def __call__(self, frames: np.ndarray) -> np.ndarray:
        import torch

        frames = _check_frames(frames, "ptlflow")
        if frames.shape[-1] == 1:
            frames = np.repeat(frames, 3, axis=-1)
        t, h, w = frames.shape[:3]
        out = np.empty((max(t - 1, 0), h, w, 2), dtype=np.float32)
        # RGB uint8 (T, H, W, 3) -> BGR float (T, 3, H, W) in [0, 1], the ptlflow convention.
        clip = torch.from_numpy(np.ascontiguousarray(frames[..., ::-1]))
        clip = clip.permute(0, 3, 1, 2)
        with torch.inference_mode():
            for s in range(0, t - 1, self.batch_size):
                e = min(s + self.batch_size, t - 1)
                a = clip[s:e].to(self.device, torch.float32) / 255.0
                b = clip[s + 1 : e + 1].to(self.device, torch.float32) / 255.0
                # (B, 2, 3, H, W); ptlflow's preprocessing calls .view(), which needs a
                # contiguous tensor, and the permuted uint8 clip is channels-last in memory.
                images = torch.stack([a, b], dim=1).contiguous()
                flows = self.net({"images": images})["flows"]  # (B, 1, 2, H, W)
                if flows.shape[-2:] != (h, w):
                    msg = (
                        f"ptlflow model {self.model_name!r} returned flow of size "
                        f"{tuple(flows.shape[-2:])} for {h}x{w} frames"
                    )
                    raise RuntimeError(msg)
                out[s:e] = flows[:, 0].permute(0, 2, 3, 1).float().cpu().numpy()
        return out


def _resolve_ckpt(ckpt_path: str | Path | None, allow_random_weights: bool) -> Path | None:
    if ckpt_path is None or str(ckpt_path) == "":
        if allow_random_weights:
            return None
        msg = (
            "ptlflow flow needs ckpt_path=<local checkpoint file>; raystack never downloads "
            "weights (allow_random_weights=True exists for tests only)"
        )
        raise ValueError(msg)
    path = Path(ckpt_path).expanduser()
    if not path.is_file():
        why = "is a directory" if path.is_dir() else "does not exist"
        msg = (
            f"ptlflow checkpoint {str(ckpt_path)!r} {why}; pass the path of a local checkpoint "
            "file (named pretrained checkpoints such as 'things' are never downloaded)"
        )
        raise FileNotFoundError(msg)
    return path.resolve()


def _pick_device(device: str, torch: Any) -> str:
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        msg = f"ptlflow device {device!r} requested but CUDA is not available; use 'cpu' or 'auto'"
        raise ValueError(msg)
    return device


def _load_ptlflow_ckpt(net: Any, path: Path, model: str, torch: Any) -> None:
    """Load a local checkpoint the way ``ptlflow.restore_model`` does, minus any download."""
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises several types for corrupt or foreign files
        msg = f"cannot read ptlflow checkpoint {path}: {type(e).__name__}: {e}"
        raise ValueError(msg) from e
    if not isinstance(ckpt, dict):
        msg = f"ptlflow checkpoint {path} holds a {type(ckpt).__name__}, expected a dict"
        raise ValueError(msg)
    state = ckpt.get("state_dict", ckpt)
    hparams = ckpt.get("hyper_parameters") or {}
    for key in ("train_size", "train_avg_length"):
        if key in hparams:
            setattr(net, key, hparams[key])
    for k, v in (hparams.get("extra_params") or {}).items():
        net.add_extra_param(k, v)
    try:
        net.load_state_dict(state)
    except RuntimeError as e:
        msg = f"ptlflow checkpoint {path} does not fit model {model!r}: {e}"
        raise ValueError(msg) from e
