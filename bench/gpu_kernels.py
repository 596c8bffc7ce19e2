"""Phases a-c of bench/gpu_check.py: environment, matmul peaks, the selective scan on the device.

- environment: ``nvidia-smi -L``, torch / CUDA / cuDNN versions, the device, whether
  ``mamba_ssm`` imports and which scan backend ``scan_backend`` picks for a device tensor.
- matmul: bf16, fp32 (TF32 off) and TF32 n^3 matmuls, mean of ``reps`` after warm-ups;
  the bf16 figure is the peak the model phases measure their FLOP share against.
- scan: the auto-chosen backend against the sequential oracle (``ref``) on a small fp32
  problem, forward and gradients, then its time at SS2D's paper stage-0 shape.
"""

from __future__ import annotations

import os
import subprocess
import time
from typing import Any

import torch
from gpu_common import Ctx, short_error, time_calls

from raystack.ops import selective_scan as ss


def phase_env(ctx: Ctx) -> dict[str, Any]:
    out: dict[str, Any] = {"torch": torch.__version__, "cuda": torch.version.cuda,
                           "cudnn": torch.backends.cudnn.version() if ctx.cuda else None,
                           "device": str(ctx.device), "RAYSTACK_SCAN": os.environ.get(ss.ENV_VAR)}
    try:
        smi = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=30,
                             check=False)
        out["nvidia_smi_L"] = (smi.stdout or smi.stderr).strip()
    except (OSError, subprocess.TimeoutExpired) as e:
        out["nvidia_smi_L"] = short_error(e)
    if ctx.cuda:
        props = torch.cuda.get_device_properties(ctx.device)
        out.update(device_name=props.name, capability=f"{props.major}.{props.minor}",
                   memory_gib=round(props.total_memory / 2**30, 1),
                   multiprocessors=props.multi_processor_count,
                   bf16_supported=torch.cuda.is_bf16_supported())
    try:
        import mamba_ssm

        out["mamba_ssm"] = f"imports ({getattr(mamba_ssm, '__version__', '?')})"
    except Exception as e:  # an ImportError, or a broken build raising anything at import
        out["mamba_ssm"] = short_error(e)
    t = time.perf_counter()
    out["scan_backend"] = ss.scan_backend(torch.zeros(1, 1, 8, device=ctx.device), 16)
    out["scan_backend_s"] = round(time.perf_counter() - t, 3)
    return out


def matmul_peak(ctx: Ctx, dtype: torch.dtype, *, tf32: bool, n: int, reps: int) -> dict[str, Any]:
    """Mean FLOP/s of an n x n x n matmul in ``dtype`` after 3 warm-ups."""
    saved = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = tf32
    try:
        a = torch.randn(n, n, device=ctx.device, dtype=dtype)
        b = torch.randn(n, n, device=ctx.device, dtype=dtype)
        timing = time_calls(lambda: a @ b, ctx, warmup=3, min_reps=reps, max_reps=reps,
                            min_time=0.0)
    finally:
        torch.backends.cuda.matmul.allow_tf32 = saved
    return {"n": n, "dtype": str(dtype).removeprefix("torch."), "tf32": tf32, **timing,
            "tflops_mean": 2 * n**3 / timing["mean_s"] / 1e12,
            "tflops_best": 2 * n**3 / timing["min_s"] / 1e12}


def phase_matmul(ctx: Ctx) -> dict[str, Any]:
    n, reps = (256, 3) if ctx.quick else (8192, 10)
    out = {}
    for key, dtype, tf32 in (("bf16", torch.bfloat16, False), ("fp32", torch.float32, False),
                             ("tf32", torch.float32, True)):
        out[key] = matmul_peak(ctx, dtype, tf32=tf32, n=n, reps=reps)
        ctx.peaks[key] = out[key]["tflops_mean"] * 1e12
    return out


def scan_inputs(b: int, d: int, n: int, groups: int, length: int, device: torch.device,
                seed: int = 0) -> tuple[list[torch.Tensor], dict[str, Any]]:
    """Random fp32 scan inputs in Mamba's regime: A < 0, softplus'd delta, grouped B/C."""
    g = torch.Generator().manual_seed(seed)

    def r(*shape: int, scale: float = 1.0) -> torch.Tensor:
        return (torch.randn(*shape, generator=g) * scale).to(device)

    args = [r(b, d, length), r(b, d, length, scale=0.5), -torch.exp(r(d, n, scale=0.5)),
            r(b, groups, n, length), r(b, groups, n, length)]
    kwargs = {"D": r(d), "z": r(b, d, length), "delta_bias": r(d, scale=0.1),
              "delta_softplus": True}
    return args, kwargs


def _grads(fn, args, kwargs) -> tuple[torch.Tensor, list[torch.Tensor]]:
    leaves = [a.clone().requires_grad_(True) for a in args]
    tensors = {k: v.clone().requires_grad_(True) for k, v in kwargs.items()
               if isinstance(v, torch.Tensor)}
    flags = {k: v for k, v in kwargs.items() if not isinstance(v, torch.Tensor)}
    out = fn(*leaves, **tensors, **flags)
    gen = torch.Generator().manual_seed(1)
    out.backward(torch.randn(out.shape, generator=gen).to(out.device))
    return out.detach(), [t.grad for t in (*leaves, *tensors.values())]


def phase_scan(ctx: Ctx) -> dict[str, Any]:
    backend = ss.scan_backend(torch.zeros(1, 1, 8, device=ctx.device), 16)
    args, kwargs = scan_inputs(2, 64, 16, 4, 64 if ctx.quick else 512, ctx.device)
    out, grads = _grads(ss.selective_scan_fn, args, kwargs)
    ref, ref_grads = _grads(ss.selective_scan_ref, args, kwargs)
    names = ["u", "delta", "A", "B", "C", "D", "z", "delta_bias"]
    res: dict[str, Any] = {
        "backend": backend, "check_shape": {"b": 2, "d": 64, "n": 16, "groups": 4,
                                            "l": args[0].shape[-1]},
        "fwd_max_abs_err": float((out - ref).abs().max()),
        "fwd_ref_max_abs": float(ref.abs().max()),
        "grad_max_abs_err": {k: float((a - b).abs().max())
                             for k, a, b in zip(names, grads, ref_grads, strict=True)},
        "timing": [],
    }
    length, dim = (256, 32) if ctx.quick else (4096, 512)
    for batch in (1, 8):
        if ctx.left() < 5:
            res["timing"].append({"batch": batch, "skipped": "phase budget spent"})
            continue
        a, kw = scan_inputs(batch, dim, 16, 4, length, ctx.device, seed=batch)
        with torch.inference_mode():
            fwd = time_calls(lambda a=a, kw=kw: ss.selective_scan_fn(*a, **kw), ctx,
                             min_reps=3, max_reps=20, min_time=1.0)
        leaves = [t.requires_grad_(True) for t in a]

        def fwd_bwd(leaves=leaves, kw=kw):
            ss.selective_scan_fn(*leaves, **kw).sum().backward()

        both = time_calls(fwd_bwd, ctx, min_reps=2, max_reps=10, min_time=1.0)
        res["timing"].append({"batch": batch, "l": length, "d": dim, "n": 16, "groups": 4,
                              "fwd_ms": fwd["mean_s"] * 1e3, "fwd_bwd_ms": both["mean_s"] * 1e3,
                              "fwd_reps": fwd["reps"], "fwd_bwd_reps": both["reps"]})
    return res
