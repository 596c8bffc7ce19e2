"""raystack.threads: the entry point's thread settings."""

from __future__ import annotations

import os
import subprocess
import sys

from raystack.threads import OMP_SPIN, short_omp_spin


def test_short_omp_spin_leaves_user_settings_and_a_loaded_torch_alone() -> None:
    import torch  # noqa: F401  (loaded: libgomp has read its settings)

    env: dict[str, str] = {}
    assert short_omp_spin(env) is False and env == {}


def _fresh(code: str, **env: str) -> str:
    base = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", *OMP_SPIN)}
    done = subprocess.run([sys.executable, "-c", code], env={**base, **env},
                          capture_output=True, text=True, check=True)
    return done.stdout.strip()


def test_cli_import_sets_the_spin_before_torch_loads() -> None:
    code = ("import os, sys, raystack.cli; "
            "print(os.environ.get('GOMP_SPINCOUNT'), 'torch' in sys.modules)")
    assert _fresh(code) == f"{OMP_SPIN['GOMP_SPINCOUNT']} False"


def test_user_choices_win() -> None:
    code = "import os, raystack.cli; print(os.environ.get('GOMP_SPINCOUNT'))"
    assert _fresh(code, GOMP_SPINCOUNT="5") == "5"
    assert _fresh(code, OMP_WAIT_POLICY="ACTIVE") == "None"


def test_ray_workers_get_it() -> None:
    from raystack.scan.pipeline import WORKER_ENV as SCAN_ENV
    from raystack.train.ray_train import WORKER_ENV as TRAIN_ENV

    for env in (SCAN_ENV, TRAIN_ENV):
        assert OMP_SPIN.items() <= env.items()
