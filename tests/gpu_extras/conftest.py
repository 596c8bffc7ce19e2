"""Tests that need the gpu extra's stack (torch 2.14.1 + torchvision + ptlflow).

They run only under `make test-gpu-extras`, which builds .venv-gpu-extras and sets
RAYSTACK_GPU_EXTRAS=1; the main suite never collects them.
"""

import os

collect_ignore_glob = [] if os.environ.get("RAYSTACK_GPU_EXTRAS") == "1" else ["test_*.py"]
