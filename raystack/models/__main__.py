"""``python -m raystack.models [PATTERN]``: every preset with its parameter count.

Models are built on the meta device, so even the 28M-parameter presets cost no memory.

    $ python -m raystack.models "vqmau_fp.*"
"""

from __future__ import annotations

import sys

from raystack.models import create_model, get_config, list_models
from raystack.models.presets import PAPER_PARAMS


def main(pattern: str = "*") -> None:
    print(f"{'preset':24s} {'params':>12s}  {'vs paper':>9s}  img    dims / depths")
    for name in list_models(pattern):
        config = get_config(name)
        n = sum(p.numel() for p in create_model(name, device="meta").parameters())
        ref = PAPER_PARAMS.get(name)
        vs = f"{(n / ref - 1) * 100:+.1f}%" if ref else ""
        size = getattr(config, "img_size", ("?",))
        print(
            f"{name:24s} {n:12,d}  {vs:>9s}  {size[0]:<5}  "
            f"{getattr(config, 'dims', '')} / {getattr(config, 'depths', '')}"
        )


if __name__ == "__main__":
    main(*sys.argv[1:2])
