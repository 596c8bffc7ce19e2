"""M²S²L (Mamba-based multi-scale spatial-temporal learning), registered as family ``m2s2l``.

Importing this package registers the family and its presets (``m2s2l.ped2``,
``m2s2l.avenue``, ``m2s2l.shanghaitech``, alias ``m2s2l.paper``, and ``m2s2l.tiny``) with
the model registry; ``raystack.models`` imports it. The model implements the scoring
contract of :mod:`raystack.models.contract`; its building blocks live in the submodules
(``spatial``, ``temporal``, ``memory``, ``decompose``, ``decoder``, ``losses``, ``flops``).

    from raystack.models import create_model
    model = create_model("m2s2l.tiny")
    scores = model.eval().score_batch(torch.rand(2, model.context + 1, 3, 64, 64) * 2 - 1)
    scores["m2s2l_app"].psnr.shape == (2,)        # .aux is the memory distance
"""

from __future__ import annotations

from raystack.models.m2s2l.config import STREAMS, M2S2LConfig
from raystack.models.m2s2l.model import M2S2L, M2S2LOutput, build_m2s2l
from raystack.models.m2s2l.presets import ALIASES, PRESETS
from raystack.models.registry import register_family, register_preset

register_family("m2s2l", M2S2LConfig, build_m2s2l)
for _name, _cfg in PRESETS.items():
    register_preset(_name, _cfg, aliases=tuple(a for a, n in ALIASES.items() if n == _name))

__all__ = ["PRESETS", "STREAMS", "M2S2L", "M2S2LConfig", "M2S2LOutput"]
