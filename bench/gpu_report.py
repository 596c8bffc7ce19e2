"""The printed tables of bench/gpu_check.py, from its JSON document alone.

Pure functions of the document, so the lead can re-print a fetched gpu_check.json:

    python bench/gpu_report.py bench/results/gpu_check.json
"""

from __future__ import annotations

import json
import sys
from typing import Any


def _f(v: Any, fmt: str = ".1f") -> str:
    return "-" if v is None else format(v, fmt)


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{v * 100:.1f}%"


def phase_lines(doc: dict[str, Any]) -> list[str]:
    lines = [f"{'phase':10s} {'status':6s} {'s':>7s} {'budget':>7s}"]
    for name, rec in doc.get("phases", {}).items():
        lines.append(f"{name:10s} {rec['status']:6s} {rec['seconds']:7.1f} {rec['budget_s']:7.0f}")
    return lines


def kernel_lines(doc: dict[str, Any]) -> list[str]:
    lines = []
    env = (doc["phases"].get("env") or {}).get("result") or {}
    if env:
        lines.append(f"device {env.get('device_name', env.get('device'))}, torch {env['torch']}"
                     f", CUDA {env.get('cuda')}, scan backend {env.get('scan_backend')}"
                     f", mamba_ssm: {env.get('mamba_ssm')}")
    mm = (doc["phases"].get("matmul") or {}).get("result") or {}
    if mm:
        lines.append("matmul " + ", ".join(f"{k} {v['tflops_mean']:.1f} TFLOP/s (n={v['n']})"
                                           for k, v in mm.items()))
    scan = (doc["phases"].get("scan") or {}).get("result") or {}
    if scan:
        grad = max(scan["grad_max_abs_err"].values())
        lines.append(f"scan {scan['backend']} vs ref: fwd err {scan['fwd_max_abs_err']:.2e}, "
                     f"max grad err {grad:.2e}")
        for t in scan["timing"]:
            if "skipped" in t:
                lines.append(f"  b={t['batch']}: skipped ({t['skipped']})")
            else:
                lines.append(f"  b={t['batch']} l={t['l']} d={t['d']}: fwd {t['fwd_ms']:.2f} ms,"
                             f" fwd+bwd {t['fwd_bwd_ms']:.2f} ms")
    return lines


def inference_lines(doc: dict[str, Any]) -> list[str]:
    res = (doc["phases"].get("inference") or {}).get("result") or {}
    if not res:
        return []
    lines = [f"{'model':18s} {'b':>4s} {'GFLOP':>6s} {'fp32 f/s':>9s} {'%bf16pk':>7s}"
             f" {'amp f/s':>9s} {'%bf16pk':>7s} {'dPSNR':>7s} {'MiB':>7s}"]
    for r in res["rows"]:
        head = f"{r['model']:18s} {r.get('batch', 0):4d} {_f(r.get('gflops_per_frame'), '6.2f')}"
        if "fp32" not in r:
            lines.append(f"{head} {r.get('error') or r.get('skipped')}")
            continue
        a, b = r["fp32"], r["amp"]
        lines.append(f"{head} {a['frames_per_s']:9.1f} {_pct(a['share_of_bf16_matmul']):>7s}"
                     f" {b['frames_per_s']:9.1f} {_pct(b['share_of_bf16_matmul']):>7s}"
                     f" {r['max_abs_psnr_diff_db']:7.3f} {_f(b['peak_mem_mib'], '7.0f')}")
    return lines


def flow_train_lines(doc: dict[str, Any]) -> list[str]:
    lines = []
    flow = (doc["phases"].get("ptlflow") or {}).get("result") or {}
    if "skipped" in flow:
        lines.append(f"ptlflow: {flow['skipped']}")
    for m in flow.get("models", []):
        if "sizes" not in m:
            lines.append(f"ptlflow {m['model']}: {m.get('error') or m.get('skipped')}")
            continue
        sizes = ", ".join(f"{s['hw'][1]}x{s['hw'][0]} " + (f"{s['pairs_per_s']:.1f} pairs/s"
                          if "pairs_per_s" in s else str(s.get("error") or s.get("skipped")))
                          for s in m["sizes"])
        lines.append(f"ptlflow {m['model']}: {sizes}; CPU vs device max "
                     f"{m['cpu_vs_device']['max_abs_px']:.2e} px")
    train = (doc["phases"].get("training") or {}).get("result") or {}
    for r in train.get("rows", []):
        what = (f"{r['clips_per_s']:.1f} clips/s (batch {r['batch']}, {r['steps']} steps, "
                f"{r['precision']}, peak {_f(r['peak_mem_mib'], '.0f')} MiB)"
                if "clips_per_s" in r else str(r.get("error") or r.get("skipped")))
        amp = f" amp {r['amp']}" if "amp" in r else ""
        lines.append(f"train {r['task']}.{r['preset']}{amp}: {what}")
    tests = (doc["phases"].get("pytest") or {}).get("result") or {}
    for name, g in tests.get("groups", {}).items():
        lines.append(f"pytest {name}: rc {g.get('rc')} {g.get('summary') or g.get('skipped')}")
    return lines


def summary_lines(doc: dict[str, Any]) -> list[str]:
    """Every table of the run, phases first; phases that did not run are left out."""
    return [*phase_lines(doc), *kernel_lines(doc), *inference_lines(doc),
            *flow_train_lines(doc)]


if __name__ == "__main__":
    with open(sys.argv[1]) as fh:
        print("\n".join(summary_lines(json.load(fh))))
