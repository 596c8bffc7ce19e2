"""``M2S2LConfig``: every hyper-parameter of an M²S²L model, ablation switches and loss weights.

One frozen dataclass; presets (``presets.py``) are instances of it. Where the paper gives
no number the default is our choice, and ``docs/m2s2l.md`` says why.

    cfg = M2S2LConfig()                      # the paper preset: 256x256, dim 256
    cfg.context                              # 9: frames a prediction needs (longest window + 1)
    cfg.replace(decomposition=False)         # ablation M3 of the paper (no decomposition)
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from raystack.errors import ConfigError

TASK = "m2s2l"
STREAMS = ("m2s2l_app", "m2s2l_mot")  # score streams: appearance PSNR, motion PSNR


@dataclass(frozen=True)
class M2S2LConfig:
    """Every hyper-parameter of an M²S²L model; presets in ``presets.py`` are instances."""

    img_size: tuple[int, int] = (256, 256)  # (H, W) the model is built for; paper: 256x256
    in_channels: int = 3  # RGB frames
    dim: int = 256  # feature dimension "throughout the architecture" (paper III-A)
    # --- multi-scale spatial stream (paper II-B) ---
    patch_sizes: tuple[int, ...] = (8, 16, 32)  # fine, medium, coarse patches (ours: 32/16/8 grids)
    spatial_depths: tuple[int, ...] = (2, 4, 8)  # MS-VSS blocks per encoder: depth ~ 1/sqrt(tokens)
    spatial_frames: int = 1  # latest frames on channels: appearance = the last frame (motion is
    #                          the temporal stream's job), so the streams see disjoint cues
    ms_kernels: tuple[int, ...] = (3, 5, 7)  # parallel depth-wise conv kernels of an MS-VSS block
    grid_patch: int = 8  # the common grid is img_size / grid_patch (the fine scale's grid)
    # --- multi-scale temporal stream (paper II-C) ---
    temporal_windows: tuple[int, ...] = (2, 4, 8)  # frame differences seen: short, medium, long
    temporal_patch: int = 16  # patch size embedding each frame difference (16x16 grid at 256)
    temporal_depth: int = 1  # Temporal Mamba Blocks per temporal encoder
    temporal_conv: int = 4  # causal depth-wise conv along time inside a TMB (Mamba's 4)
    dt_window_range: tuple[float, float] = (0.25, 2.0)  # TMB step init: dt in [lo/w, hi/w] for
    #                                                    window w (scale-specific step sizes)
    # --- state-space blocks (spatial SS2D and temporal TMB alike) ---
    d_state: int = 16  # SSM state size N
    ssm_expand: int = 2  # inner width = ssm_expand * dim
    d_conv: int = 3  # SS2D depth-wise conv kernel
    dt_rank: int | None = None  # rank of the delta projection; None = ceil(dim / 16)
    # --- memory (MNAD, Park et al. 2020) ---
    memory_items: int = 10  # prototypes per bank (MNAD: 10)
    memory_margin: float = 1.0  # triplet margin of the separateness loss (MNAD: 1.0)
    # --- decoders: the common grid upsampled x2 per stage back to img_size ---
    decoder_dims: tuple[int, ...] = (128, 64, 16)  # channels per x2 upsampling stage
    decoder_convs: int = 1  # 3x3 conv layers after each 2x2 transposed-conv upsampling
    # --- ablation switches (paper Table III: M1 baseline ... M4 full) ---
    multi_scale_spatial: bool = True  # off: one spatial encoder (medium patch), plain VSS blocks
    multi_scale_temporal: bool = True  # off: one temporal encoder (the longest window)
    decomposition: bool = True  # off: one shared feature feeds both decoders (one memory bank)
    memory: bool = True  # off: no memory banks; decoders read the features directly
    # --- losses (paper II-E; the weights are ours, the paper's numbers did not survive) ---
    w_frame: float = 1.0  # lambda of the frame loss L_frame = L_pixel + w_gradient * L_gd
    w_gradient: float = 1.0  # weight of the gradient term inside the frame loss (as FFP)
    w_motion: float = 1.0  # lambda of the motion loss (L2 on the frame difference)
    w_separation: float = 0.1  # lambda of the separation loss (squared cosines between parts)
    w_compact: float = 0.1  # MNAD feature compactness loss weight (MNAD prediction: 0.1)
    w_separate: float = 0.1  # MNAD feature separateness loss weight (MNAD prediction: 0.1)
    # --- scoring ---
    score_alpha: float = 0.6  # weighted PSNR alpha*app + (1-alpha)*mot (Ped2 0.6, Avenue 0.4,
    #                            ShanghaiTech 0.5); the query layer applies it, this records it
    drop_path: float = 0.1  # max stochastic depth of the spatial blocks (linear over depth)
    norm_eps: float = 1e-6  # LayerNorm epsilon

    def __post_init__(self) -> None:
        # Tuples survive JSON and TOML round trips as lists; store them as tuples.
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, list):
                object.__setattr__(self, f.name, tuple(value))
        self.validate()

    # --- derived values -------------------------------------------------------------------

    @property
    def task(self) -> str:
        """``"m2s2l"``: what checkpoints record and the scorer names the model by."""
        return TASK

    @property
    def streams(self) -> tuple[str, ...]:
        """Score streams one model writes: appearance PSNR and motion PSNR."""
        return STREAMS

    @property
    def context(self) -> int:
        """Frames before the first scoreable frame: the longest window's differences need
        ``max(window) + 1`` frames. Training clips hold ``context + 1`` frames (+ target)."""
        return max(self.temporal_windows) + 1

    @property
    def scales(self) -> tuple[int, ...]:
        """Indices of the spatial scales built: all, or the medium one (ablation)."""
        n = len(self.patch_sizes)
        return tuple(range(n)) if self.multi_scale_spatial else (n // 2,)

    @property
    def windows(self) -> tuple[int, ...]:
        """Temporal windows built: all, or the longest one (ablation keeps the same input)."""
        return self.temporal_windows if self.multi_scale_temporal else (max(self.temporal_windows),)

    @property
    def grid(self) -> tuple[int, int]:
        """(h, w) of the common feature grid."""
        return (self.img_size[0] // self.grid_patch, self.img_size[1] // self.grid_patch)

    def validate(self) -> None:
        """Raise :class:`ConfigError` naming the field and the fix when the config is invalid."""
        problems = []
        if len(self.img_size) != 2 or min(self.img_size) < 1:
            problems.append(f"img_size={self.img_size} must be (H, W)")
        for name in ("in_channels", "dim", "spatial_frames", "grid_patch", "temporal_patch",
                     "temporal_depth", "temporal_conv", "d_state", "ssm_expand", "memory_items"):
            if getattr(self, name) < 1:
                problems.append(f"{name}={getattr(self, name)} must be >= 1")
        if not self.patch_sizes or len(self.patch_sizes) != len(self.spatial_depths):
            problems.append(f"patch_sizes {self.patch_sizes} and spatial_depths "
                            f"{self.spatial_depths} must be equally long and non-empty")
        if any(v < 1 for v in (*self.patch_sizes, *self.spatial_depths, *self.temporal_windows)):
            problems.append("patch_sizes, spatial_depths and temporal_windows must be positive")
        if not self.temporal_windows:
            problems.append("temporal_windows must name at least one window")
        if any(k < 1 or k % 2 == 0 for k in (*self.ms_kernels, self.d_conv)):
            problems.append(f"ms_kernels {self.ms_kernels} and d_conv={self.d_conv} must be odd")
        if len(self.img_size) == 2:
            for name in ("patch_sizes", "temporal_patch", "grid_patch"):
                for p in _as_tuple(getattr(self, name)):
                    if p >= 1 and any(s % p for s in self.img_size):
                        problems.append(f"img_size={self.img_size} must be a multiple of "
                                        f"{name} {p}")
        # The decoders double the grid once per stage, so grid_patch = 2 ** stages.
        if self.grid_patch != 2 ** len(self.decoder_dims):
            problems.append(f"grid_patch={self.grid_patch} must equal 2 ** len(decoder_dims) = "
                            f"{2 ** len(self.decoder_dims)} (one x2 upsampling per stage)")
        if self.spatial_frames > self.context:
            problems.append(f"spatial_frames={self.spatial_frames} exceeds the clip's "
                            f"{self.context} input frames")
        lo, hi = self.dt_window_range
        if not 0 < lo <= hi:
            problems.append(f"dt_window_range={self.dt_window_range} must be 0 < lo <= hi")
        for name in ("w_frame", "w_gradient", "w_motion", "w_separation", "w_compact",
                     "w_separate", "memory_margin"):
            if getattr(self, name) < 0:
                problems.append(f"{name}={getattr(self, name)} must be >= 0")
        if not 0.0 <= self.score_alpha <= 1.0:
            problems.append(f"score_alpha={self.score_alpha} must be in [0, 1]")
        if not 0.0 <= self.drop_path < 1.0:
            problems.append(f"drop_path={self.drop_path} must be in [0, 1)")
        if problems:
            msg = "invalid M2S2LConfig: " + "; ".join(problems)
            raise ConfigError(msg)

    def replace(self, **overrides) -> M2S2LConfig:
        """A copy with ``overrides`` applied (and validated)."""
        return dataclasses.replace(self, **overrides)


def _as_tuple(value) -> tuple:
    return tuple(value) if isinstance(value, (tuple, list)) else (value,)
