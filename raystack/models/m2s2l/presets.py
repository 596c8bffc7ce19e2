"""M²S²L presets as data: the paper's model per dataset, and a small CPU preset for tests.

The paper (III-A) gives one architecture for all three datasets; only the score weight
alpha differs (0.6 Ped2, 0.4 Avenue, 0.5 ShanghaiTech), so the three dataset presets are
the same model with a different ``score_alpha``. ``m2s2l.paper`` is an alias of
``m2s2l.ped2``. Budget (paper Table I): 14.9M parameters, 20.1 GFLOPs per frame at 256x256.

``small`` (128x128, dim 64, windows 2/4/8): the size of ``vqmau_fp.small``, trained beside
it by the demo-sized benchmark (bench/m2s2l_bench.py). ``tiny`` (64x64, dim 32, windows
2/3/4): a forward + backward in well under a second on one CPU core, for tests.

    cfg = PRESETS["m2s2l.avenue"]          # M2S2LConfig(score_alpha=0.4, ...)
"""

from __future__ import annotations

from raystack.models.m2s2l.config import M2S2LConfig

_PAPER = M2S2LConfig()

PRESETS: dict[str, M2S2LConfig] = {
    "m2s2l.ped2": _PAPER.replace(score_alpha=0.6),
    "m2s2l.avenue": _PAPER.replace(score_alpha=0.4),
    "m2s2l.shanghaitech": _PAPER.replace(score_alpha=0.5),
    "m2s2l.small": _PAPER.replace(
        img_size=(128, 128), dim=64, patch_sizes=(4, 8, 16), spatial_depths=(1, 2, 2),
        grid_patch=4, decoder_dims=(32, 16), temporal_windows=(2, 4, 8), temporal_patch=8,
        d_state=16, memory_items=10, drop_path=0.0, score_alpha=0.5,
    ),
    "m2s2l.tiny": _PAPER.replace(
        img_size=(64, 64), dim=32, patch_sizes=(4, 8, 16), spatial_depths=(1, 1, 1),
        grid_patch=4, decoder_dims=(16, 8), temporal_windows=(2, 3, 4), temporal_patch=8,
        d_state=8, memory_items=6, drop_path=0.0, score_alpha=0.5,
    ),
}

ALIASES: dict[str, str] = {"m2s2l.paper": "m2s2l.ped2"}

# The paper's budget (Table I), which the paper presets must land within 15% of.
PAPER_PARAMS = 14.9e6
PAPER_GFLOPS = 20.1
