"""infra/ against the project: the Ray cluster launcher: Ray's validation, head, GPU workers.

The deployment files cannot run here, so every name they use is checked against what
exists (helpers: infra_kit.py).
"""

from __future__ import annotations

import copy
import re

import pytest
from infra_kit import (
    CLUSTER,
    CLUSTER_CONFIGS,
    MALLOC_THRESHOLD,
    check_fits,
    image_name,
    load_docs,
    load_job_config,
    pyproject,
    rsync_excludes,
)

# --- the Ray cluster launcher ------------------------------------------------------------


@pytest.fixture(scope="module")
def cluster() -> dict:
    return load_docs(CLUSTER)[0]


def test_cluster_config_passes_rays_own_validation(cluster):
    from ray.autoscaler._private.util import prepare_config, validate_config

    validate_config(prepare_config(copy.deepcopy(cluster)))
    broken = copy.deepcopy(cluster)
    broken["setup_command"] = broken.pop("setup_commands")  # the validation can fail
    with pytest.raises(Exception, match="setup_command"):
        validate_config(prepare_config(broken))


def test_cluster_has_a_cpu_head_and_gpu_workers(cluster):
    assert cluster["provider"]["type"] == "aws"
    types = cluster["available_node_types"]
    head = types[cluster["head_node_type"]]
    assert head["resources"].get("GPU", 0) == 0
    assert head["resources"].get("CPU") == 0, "the head must not take scan actors"
    workers = {k: v for k, v in types.items() if k != cluster["head_node_type"]}
    assert workers and all(w["resources"].get("GPU", 0) >= 1 for w in workers.values())
    for name, w in workers.items():
        assert 0 <= w["min_workers"] <= w["max_workers"] <= cluster["max_workers"], name


def test_cluster_runs_the_project_image(cluster):
    image = image_name()
    assert cluster["docker"]["image"] == image
    region = cluster["provider"]["region"]
    init = " ".join(cluster["initialization_commands"])
    assert f'docker pull "$registry/{image}"' in init
    assert f'docker tag "$registry/{image}" {image}' in init
    regions = set(re.findall(r"\.dkr\.ecr\.([a-z0-9-]+)\.amazonaws", init))
    regions |= set(re.findall(r"--region ([a-z0-9-]+)", init))
    assert regions == {region}, f"ECR region(s) {regions} != provider region {region}"


def test_cluster_syncs_the_repo_and_installs_existing_extras(cluster):
    mounts = cluster["file_mounts"]
    (target, local), = mounts.items()
    assert local == ".", "file_mounts must sync the repo root (`ray up` runs from there)"
    extras_known = set(pyproject()["project"]["optional-dependencies"])
    installs = [c for c in cluster["setup_commands"] if "pip install" in c]
    assert installs
    for cmd in installs:
        for path, extras in re.findall(r"([\w/.-]+)\[([\w,]+)\]", cmd):
            assert path == target, f"{cmd!r} installs {path}, the repo is mounted at {target}"
            assert set(extras.split(",")) <= extras_known, cmd
    assert any("[gpu]" in c for c in installs), "nodes must install raystack with its gpu extra"
    excludes = cluster["rsync_exclude"]
    for kept in ("raystack/__init__.py", "raystack/store/schema.py", "jobs", "schemas",
                 "pyproject.toml", "setup.py", "checkpoints/fp.pt", "infra/cluster/scan.toml"):
        assert not rsync_excludes(excludes, kept), f"rsync_exclude drops {kept}"
    assert rsync_excludes(excludes, ".venv/bin/python")


def test_cluster_sets_the_allocator_threshold(cluster):
    for key in ("head_start_ray_commands", "worker_start_ray_commands"):
        start = " ".join(cluster[key])
        assert f"export MALLOC_MMAP_THRESHOLD_={MALLOC_THRESHOLD};" in start, key
    assert f"--env MALLOC_MMAP_THRESHOLD_={MALLOC_THRESHOLD}" in cluster["docker"]["run_options"]


@pytest.mark.parametrize("job", sorted(CLUSTER_CONFIGS))
def test_cluster_job_configs_load_and_fit(job, cluster):
    path = CLUSTER_CONFIGS[job]
    assert path.is_file(), f"{path} missing"
    cfg = load_job_config(job, path)
    types = cluster["available_node_types"]
    gpu_nodes = [t for k, t in types.items() if k != cluster["head_node_type"]]
    max_gpus = min(
        sum(t["max_workers"] * t["resources"]["GPU"] for t in gpu_nodes),
        cluster["max_workers"] * max(t["resources"]["GPU"] for t in gpu_nodes),
    )
    min_cpus = min(t["resources"]["CPU"] for t in gpu_nodes)
    check_fits(cfg, job, max_gpus=max_gpus, cpus_per_node=min_cpus, where=str(path))
    (target, _), = cluster["file_mounts"].items()
    for ckpt in getattr(cfg, "checkpoints", ()):
        assert str(ckpt).startswith(target + "/"), (
            f"{path}: checkpoint {ckpt} is not under the synced repo {target}, so no node has it"
        )
