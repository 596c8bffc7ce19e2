"""Where an M²S²L training step spends its time: torch.profiler over full optimiser steps.

One process per preset, the CLI's thread settings (``raystack.threads.short_omp_spin``)
applied before torch loads. Each step is the model on a batch of random clips in [-1, 1],
its own loss, backward and AdamW: the work of ``raystack train`` without data loading.
Two warm-up steps, ``--steps`` timed steps, then ``--profiled`` steps under the profiler;
the table lists the operators by self CPU time and the share each takes of the total.

    .venv/bin/python bench/m2s2l_profile.py --presets m2s2l.small m2s2l.paper

Printed and written to ``bench/results/<name>.json``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))


def profile_preset(preset: str, batch: int, steps: int, profiled: int, top: int) -> dict:
    """Time and profile ``preset`` in this process."""
    from raystack.threads import short_omp_spin

    short_omp_spin()
    import torch
    from torch.profiler import ProfilerActivity, profile

    from raystack.models.registry import create_model

    torch.manual_seed(0)
    model = create_model(preset)
    model.train()
    c = model.config
    clip = torch.rand(batch, c.context + 1, 3, *c.img_size) * 2 - 1  # context + the target
    opt = torch.optim.AdamW(model.parameters(), 1e-4)

    def step() -> None:
        out = model(clip[:, :-1])
        loss, _ = model.loss(out, {"frames": clip})
        opt.zero_grad()
        loss.backward()
        opt.step()

    for _ in range(2):
        step()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    step_s = (time.perf_counter() - t0) / steps
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(profiled):
            step()
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events)
    rows = sorted(events, key=lambda e: e.self_cpu_time_total, reverse=True)[:top]
    return {
        "preset": preset, "batch": batch, "threads": torch.get_num_threads(),
        "step_s": round(step_s, 4), "clips_per_s": round(batch / step_s, 3),
        "profiled_steps": profiled, "self_cpu_total_s": round(total / 1e6, 3),
        "ops": [{"name": e.key, "calls": e.count,
                 "self_cpu_s": round(e.self_cpu_time_total / 1e6, 4),
                 "share": round(e.self_cpu_time_total / total, 4)} for e in rows],
    }


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--presets", nargs="+", default=["m2s2l.small", "m2s2l.paper"])
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--steps", type=int, default=3, help="timed steps after 2 warm-up steps")
    ap.add_argument("--profiled", type=int, default=2, help="steps under the profiler")
    ap.add_argument("--top", type=int, default=12, help="operators listed per preset")
    ap.add_argument("--name", default="m2s2l_profile", help="bench/results/NAME.json")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        print(json.dumps(profile_preset(args.worker, args.batch, args.steps, args.profiled,
                                        args.top)))
        return
    from machine_info import machine

    results = []
    for preset in args.presets:  # a fresh process each: the thread settings load with torch
        out = subprocess.run(
            [sys.executable, __file__, "--worker", preset, "--batch", str(args.batch),
             "--steps", str(args.steps), "--profiled", str(args.profiled), "--top", str(args.top)],
            capture_output=True, text=True, check=True)
        r = json.loads(out.stdout.strip().splitlines()[-1])
        results.append(r)
        print(f"\n{preset}: {r['step_s'] * 1000:.0f} ms a step of {r['batch']} clips "
              f"({r['clips_per_s']:.2f} clips/s), {r['threads']} threads")
        print("| operator | calls | self CPU s | share |\n|---|---|---|---|")
        for op in r["ops"]:
            print(f"| {op['name']} | {op['calls']} | {op['self_cpu_s']:.3f} | "
                  f"{100 * op['share']:.1f}% |")
    path = ROOT / "bench" / "results" / f"{args.name}.json"
    path.write_text(json.dumps({"machine": machine(), "command": " ".join(sys.argv),
                                "results": results}, indent=2) + "\n")
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
