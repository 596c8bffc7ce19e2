"""infra/ against the project: KubeRay RayJobs: schema, GPUs, images, secrets, ConfigMaps.

The deployment files cannot run here, so every name they use is checked against what
exists (helpers: infra_kit.py).
"""

from __future__ import annotations

import copy
import shlex
from pathlib import Path, PurePosixPath

import pytest
from infra_kit import (
    DOCKERFILE,
    MALLOC_THRESHOLD,
    RAYJOBS,
    README,
    ROOT,
    Dockerfile,
    check_fits,
    cpu_quantity,
    gpu_limit,
    image_name,
    load_docs,
    load_job_config,
    mounted,
    ray_containers,
    rayjob_problems,
    the_doc,
)

# --- KubeRay -----------------------------------------------------------------------------


@pytest.fixture(scope="module", params=sorted(RAYJOBS))
def rayjob(request) -> tuple[str, Path, dict]:
    path = RAYJOBS[request.param]
    assert path.is_file(), f"{path} missing"
    return request.param, path, the_doc(path, "RayJob")


def test_rayjob_schema(rayjob):
    _, path, doc = rayjob
    assert rayjob_problems(doc) == [], path.name
    spec = doc["spec"]
    assert spec["shutdownAfterJobFinishes"] is True
    assert isinstance(spec["ttlSecondsAfterFinished"], int) and spec["ttlSecondsAfterFinished"] > 0


def test_rayjob_checker_catches_mistakes(rayjob):
    _, _, doc = rayjob
    bad = copy.deepcopy(doc)
    bad["spec"]["shutdownAfterJobFinish"] = bad["spec"].pop("shutdownAfterJobFinishes")
    group = bad["spec"]["rayClusterSpec"]["workerGroupSpecs"][0]
    group["rayStartParams"]["num-gpus"] = 1
    group["template"]["spec"]["containers"][0].setdefault("volumeMounts", []).append(
        {"name": "nope", "mountPath": "/nope"})
    problems = "\n".join(rayjob_problems(bad))
    assert "shutdownAfterJobFinish: unknown" in problems
    assert "num-gpus: value 1 is not a string" in problems
    assert "undeclared volume 'nope'" in problems


def test_rayjob_workers_have_gpus_and_head_has_none(rayjob):
    _, path, doc = rayjob
    for group, _, container in ray_containers(doc):
        if group == "head":
            assert gpu_limit(container) == 0, f"{path.name}: the head asks for a GPU"
        else:
            assert gpu_limit(container) >= 1, f"{path.name}: worker group {group} has no GPU"
    assert doc["spec"]["rayClusterSpec"]["rayVersion"] == Dockerfile(DOCKERFILE).pins()["ray"]


def test_rayjob_images_are_the_project_image(rayjob):
    _, path, doc = rayjob
    readme = README.read_text()
    for _, spec, container in ray_containers(doc):
        assert container["image"] == image_name(), f"{path.name}: {container['image']}"
        for other in spec["containers"][1:] + spec.get("initContainers", []):
            if other["image"] != image_name():
                assert f"`{other['image']}`" in readme, (
                    f"{path.name}: third-party image {other['image']} not named in the README"
                )


def test_rayjob_s3_credentials_come_from_the_documented_secret(rayjob):
    _, path, doc = rayjob
    readme = README.read_text()
    secrets = set()
    for _, spec, _ in ray_containers(doc):
        for c in spec["containers"] + spec.get("initContainers", []):
            refs = [e["secretRef"]["name"] for e in c.get("envFrom", []) if "secretRef" in e]
            assert refs, f"{path.name}: container {c['name']} gets no S3 credentials"
            secrets.update(refs)
    for name in secrets:
        assert f"kubectl create secret generic {name}" in readme, name
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_ENDPOINT_URL"):
        assert key in readme


def test_rayjob_sets_the_allocator_threshold(rayjob):
    _, path, doc = rayjob
    for group, _, container in ray_containers(doc):
        env = {e["name"]: e.get("value") for e in container.get("env", [])}
        assert env.get("MALLOC_MMAP_THRESHOLD_") == MALLOC_THRESHOLD, f"{path.name}: {group}"
    assert Dockerfile(DOCKERFILE).key_values("ENV")["MALLOC_MMAP_THRESHOLD_"] == MALLOC_THRESHOLD


def entrypoint_parts(doc: dict) -> tuple[str, str]:
    argv = shlex.split(doc["spec"]["entrypoint"])
    assert argv[0] == "python" and argv[2] == "--config" and len(argv) == 4, argv
    return argv[1], argv[3]


def test_rayjob_entrypoint_script_is_in_the_image_and_the_repo(rayjob):
    job, path, doc = rayjob
    script, _ = entrypoint_parts(doc)
    repo_file = Dockerfile(DOCKERFILE).container_to_repo(script)
    assert repo_file is not None, f"{path.name}: no Dockerfile COPY puts {script} in the image"
    assert repo_file == ROOT / "jobs" / f"{job}.py"
    assert repo_file.is_file(), f"{path.name}: entrypoint jobs/{repo_file.name} does not exist"
    assert '"--config"' in repo_file.read_text(), f"{repo_file.name} takes no --config option"


def rayjob_config(job: str, path: Path, doc: dict, tmp_path: Path):
    """The job config a RayJob's entrypoint reads: --config path -> head volume mount ->
    ConfigMap key, loaded through the job's config dataclass."""
    _, config_path = entrypoint_parts(doc)
    head = ray_containers(doc)[0]
    _, head_spec, head_container = head
    mount = next((m for m in head_container.get("volumeMounts", [])
                  if PurePosixPath(m["mountPath"]) == PurePosixPath(config_path).parent), None)
    assert mount, f"{path.name}: nothing is mounted at {PurePosixPath(config_path).parent}"
    volume = next(v for v in head_spec["volumes"] if v["name"] == mount["name"])
    cm_name = volume["configMap"]["name"]
    cms = [d for d in load_docs(path) if d.get("kind") == "ConfigMap"
           and d["metadata"]["name"] == cm_name]
    assert len(cms) == 1, f"{path.name}: ConfigMap {cm_name} is not defined in the file"
    key = PurePosixPath(config_path).name
    assert key in cms[0]["data"], f"ConfigMap {cm_name} has no key {key}"
    local = tmp_path / f"{job}-{key}"
    local.write_text(cms[0]["data"][key])
    return load_job_config(job, local)


def test_rayjob_config_map_loads_and_fits_the_cluster(rayjob, tmp_path):
    job, path, doc = rayjob
    cfg = rayjob_config(job, path, doc, tmp_path)
    key = PurePosixPath(entrypoint_parts(doc)[1]).name
    workers = [(g, s, c) for g, s, c in ray_containers(doc) if g != "head"]
    groups = doc["spec"]["rayClusterSpec"]["workerGroupSpecs"]
    max_gpus = sum(
        g["maxReplicas"] * gpu_limit(c) for g, (_, _, c) in zip(groups, workers, strict=True)
    )
    cpus = min(cpu_quantity(c["resources"]["limits"]["cpu"]) for _, _, c in workers)
    check_fits(cfg, job, max_gpus=max_gpus, cpus_per_node=cpus, where=f"{path.name}:{key}")
    # Local paths in the config must exist in the pods that read them.
    for ckpt in getattr(cfg, "checkpoints", ()):
        for group, _, container in ray_containers(doc):
            assert mounted(container, str(ckpt)), f"{path.name}: {ckpt} not mounted in {group}"
    cache = getattr(cfg, "cache_dir", None)
    if cache:
        for group, _, container in workers:
            assert mounted(container, cache), f"{path.name}: {cache} not mounted in {group}"


def test_scan_job_fetches_what_the_train_job_exports(tmp_path):
    docs = {job: the_doc(path, "RayJob") for job, path in RAYJOBS.items()}
    train = rayjob_config("train", RAYJOBS["train"], docs["train"], tmp_path)
    scan = rayjob_config("scan", RAYJOBS["scan"], docs["scan"], tmp_path)
    # raystack/train/storage.py: a run exports STORAGE/<name>/<task>.pt
    run = f"{train.storage.rstrip('/')}/{train.name}/"
    exported = {f"{task}.pt" for task in train.tasks}
    for _, spec, _ in ray_containers(docs["scan"]):
        fetch = [c for c in spec.get("initContainers", []) if "s3" in c.get("args", [])]
        assert len(fetch) == 1, "each scan pod fetches the checkpoints once"
        args = fetch[0]["args"]
        src, dest = [a for a in args if not a.startswith("-") and a not in ("s3", "cp")][:2]
        includes = {args[i + 1] for i, a in enumerate(args) if a == "--include"}
        assert src == run, f"scan fetches {src}, training writes its run to {run}"
        assert includes == exported
        assert {str(c) for c in scan.checkpoints} == {dest + name for name in exported}
