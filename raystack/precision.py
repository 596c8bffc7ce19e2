"""Mixed precision: which autocast dtype a run uses, for scoring and for training.

One setting, ``amp``, shared by ``raystack scan`` (:class:`raystack.inference.FrameScorer`)
and ``raystack train`` (:class:`raystack.train.loop.StreamTrainer`):

- ``"off"``: float32 throughout.
- ``"bf16"`` / ``"fp16"``: autocast to that dtype wherever torch supports it. The selective
  scans, the VQ distances, PSNR and the losses keep float32 inside their own guards.
- ``"auto"``: CUDA: bf16 where the GPU has it, else fp16. CPU: bf16 only to train a model
  whose recipe asks for it (``cpu_bf16``, the paper sizes) on a CPU with AMX-BF16 tiles
  (Intel Sapphire Rapids and later), where oneDNN runs bf16 convs and matmuls on them and
  those presets train 1.14-1.16x faster (docs/platform.md). Anything else on a CPU:
  float32: the small presets ran 0.94-0.98x in bf16, the casts around their small convs
  costing more than the tiles save.

    dtype = autocast_dtype("auto", torch.device("cpu"), cpu_bf16=True)   # bf16 or None
    with autocast(dtype, device):
        loss = model.loss(model(x), batch)
"""

from __future__ import annotations

import contextlib
import functools
import platform
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

# Torch is imported where it is used: the CLI imports the configs (and so AMP_MODES) before
# it may set thread variables that torch reads when it loads (raystack/threads.py).
AMP_MODES = ("auto", "off", "bf16", "fp16")


@functools.cache
def cpu_has_amx_bf16(cpuinfo: str = "/proc/cpuinfo") -> bool:
    """Whether this CPU has AMX-BF16 tiles (Linux x86 flags; False wherever unknown)."""
    if platform.system() != "Linux" or platform.machine() not in ("x86_64", "AMD64"):
        return False
    try:
        text = Path(cpuinfo).read_text(errors="replace")
    except OSError:
        return False
    for line in text.splitlines():
        if line.startswith("flags"):
            return "amx_bf16" in line.split(":", 1)[-1].split()
    return False


def check_amp(amp: str | bool | None) -> str:
    """``amp`` as one of :data:`AMP_MODES` (True = "auto"; None and False = "off").

    Raises:
        ValueError: any other value, naming the valid ones.
    """
    if amp is None or amp is False:
        return "off"
    if amp is True:
        return "auto"
    if amp not in AMP_MODES:
        msg = f"amp={amp!r}: choose one of {', '.join(AMP_MODES)}"
        raise ValueError(msg)
    return str(amp)


def autocast_dtype(
    amp: str | bool | None, device: str | torch.device, *, cpu_bf16: bool = False
) -> torch.dtype | None:
    """The autocast dtype of ``amp`` on ``device`` (None: float32, no autocast).

    ``cpu_bf16``: whether ``"auto"`` may pick bf16 on an AMX-BF16 CPU (the training recipe
    of the paper-size presets; scoring passes False).
    """
    import torch

    mode = check_amp(amp)
    device = torch.device(device)
    if mode == "off":
        return None
    if mode == "bf16":
        return torch.bfloat16
    if mode == "fp16":
        return torch.float16
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.type == "cpu" and cpu_bf16 and cpu_has_amx_bf16():
        return torch.bfloat16
    return None


def autocast(
    dtype: torch.dtype | None, device: str | torch.device
) -> contextlib.AbstractContextManager:
    """``torch.autocast`` to ``dtype`` on ``device``'s type, or nothing when ``dtype`` is None."""
    import torch

    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=torch.device(device).type, dtype=dtype)
