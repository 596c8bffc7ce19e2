"""``raystack train --workers 2`` starts its private Ray as ``raystack scan`` does.

The command runs in a subprocess with a Ray of its own (as a user runs it): no
token-authentication warning, no API server (dashboard.py) while it trains, no session
folder left and no process of its session alive once it has exited.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def _session_cmds(sid: int) -> list[str]:
    """Command lines of the processes of session ``sid``."""
    out = []
    for p in Path("/proc").iterdir():
        if not p.name.isdigit():
            continue
        try:
            if os.getsid(int(p.name)) != sid:
                continue
            out.append((p / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"))
        except (OSError, ProcessLookupError):
            continue
    return out


def test_train_with_workers_leaves_no_session_folder_and_prints_no_ray_warning(
    synth_archive, tmp_path
):
    ray_tmp = Path(tempfile.gettempdir()) / "ray"
    config = tmp_path / "train.toml"
    config.write_text(
        "[train]\nmodel = \"fp\"\npreset = \"tiny\"\nmodel_overrides = { img_size = [32, 32] }\n"
        "epochs = 1\nbatch_size = 4\nclips_per_epoch = 8\nval_fraction = 0.2\nval_clips = 8\n")
    args = [sys.executable, "-m", "raystack.cli", "train", str(synth_archive / "train"),
            "--config", str(config), "--workers", "2", "--storage", str(tmp_path / "runs"),
            "--name", "lifecycle", "--no-progress"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    proc = subprocess.Popen(args, cwd=REPO, env=env, start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seen: set[str] = set()
    while proc.poll() is None:  # its session's processes while the Ray Train workers run
        cmds = _session_cmds(proc.pid)
        if any(c.startswith("ray::") and "Train" in c for c in cmds):
            seen |= set(cmds)
        time.sleep(0.2)
    out, err = proc.communicate()
    assert proc.returncode == 0, err[-3000:]
    assert (tmp_path / "runs" / "lifecycle" / "fp.pt").exists()
    assert any("raylet" in c for c in seen)  # we did watch the Ray it started
    assert not [c for c in seen if "dashboard/dashboard.py" in c]
    assert "Token authentication" not in err + out and "RAY_AUTH_MODE" not in err + out
    assert not list(ray_tmp.glob(f"session_*_{proc.pid}"))
    deadline = time.monotonic() + 10  # the watchdog may still be finishing
    while _session_cmds(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _session_cmds(proc.pid)
