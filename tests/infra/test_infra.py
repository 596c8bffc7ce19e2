"""infra/ against the project: the deployment files cannot run here, so every name they use
is checked against what exists (scripts, config keys, CLI options, extras, images, pins).

    KubeRay RayJob -> entrypoint script in the image -> repo file; ConfigMap TOML -> ScanConfig
"""

from __future__ import annotations

import copy
import fnmatch
import importlib
import os
import re
import select
import shlex
import signal
import subprocess
import sys
import tomllib
from pathlib import Path, PurePosixPath

import pytest
import yaml  # PyYAML comes with ray, a core dependency
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"
DOCKERFILE = INFRA / "docker" / "Dockerfile"
DOCKERIGNORE = INFRA / "docker" / "Dockerfile.dockerignore"
CLUSTER = INFRA / "cluster" / "raystack-aws.yaml"
README = INFRA / "README.md"
RAYJOBS = {
    "scan": INFRA / "kuberay" / "rayjob-scan.yaml",
    "train": INFRA / "kuberay" / "rayjob-train.yaml",
}
CLUSTER_CONFIGS = {
    "scan": INFRA / "cluster" / "scan.toml",
    "train": INFRA / "cluster" / "train.toml",
}
# Where each job's config dataclass lives; a job's TOML must load through it.
CONFIG_CLASSES = {
    "scan": ("raystack.scan.config", "ScanConfig"),
    "train": ("raystack.train.config", "TrainConfig"),
}
MALLOC_THRESHOLD = "4294967296"  # docs/platform.md#allocator

# Field names of KubeRay's ray.io/v1 types (ray-operator/apis/ray/v1/*_types.go, 1.1+):
# a misspelt field is dropped silently by the API server, so the tests refuse unknown ones.
RAYJOB_SPEC_FIELDS = {
    "activeDeadlineSeconds", "backoffLimit", "rayClusterSpec", "submitterPodTemplate",
    "metadata", "clusterSelector", "submitterConfig", "managedBy", "deletionStrategy",
    "entrypoint", "runtimeEnvYAML", "jobId", "submissionMode", "entrypointResources",
    "entrypointNumCpus", "entrypointNumGpus", "ttlSecondsAfterFinished",
    "shutdownAfterJobFinishes", "suspend", "schedule",
}
RAYCLUSTER_SPEC_FIELDS = {
    "headGroupSpec", "workerGroupSpecs", "rayVersion", "enableInTreeAutoscaling",
    "autoscalerOptions", "headServiceAnnotations", "suspend", "managedBy",
    "gcsFaultToleranceOptions",
}
HEAD_GROUP_FIELDS = {"serviceType", "headService", "enableIngress", "rayStartParams", "template"}
WORKER_GROUP_FIELDS = {
    "groupName", "replicas", "minReplicas", "maxReplicas", "idleTimeoutSeconds", "suspend",
    "numOfHosts", "rayStartParams", "template", "scaleStrategy",
}


# --- parsing helpers ---------------------------------------------------------------------


def pyproject() -> dict:
    with (ROOT / "pyproject.toml").open("rb") as f:
        return tomllib.load(f)


def image_name() -> str:
    return f"raystack:{pyproject()['project']['version']}"


def dockerfile_instructions(text: str) -> list[tuple[str, str]]:
    """``[(INSTRUCTION, arguments)]`` with continuations joined and comment lines dropped."""
    out: list[tuple[str, str]] = []
    buf = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue  # comments may sit inside a continued instruction, too
        if line.endswith("\\"):
            buf += line[:-1] + " "
            continue
        buf += line
        instr, _, rest = buf.partition(" ")
        out.append((instr.upper(), rest.strip()))
        buf = ""
    assert not buf, "Dockerfile ends inside a continued instruction"
    return out


class Dockerfile:
    """The facts the tests need from infra/docker/Dockerfile, ARGs substituted."""

    def __init__(self, path: Path):
        self.instructions = dockerfile_instructions(path.read_text())
        self.args: dict[str, str] = {}
        for instr, rest in self.instructions:
            if instr == "ARG" and "=" in rest:
                name, _, default = rest.partition("=")
                self.args[name.strip()] = default.strip().strip('"')

    def sub(self, s: str) -> str:
        return re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: self.args.get(m[1] or m[2], m[0]), s)

    def all(self, name: str) -> list[str]:
        return [self.sub(rest) for instr, rest in self.instructions if instr == name]

    def key_values(self, name: str) -> dict[str, str]:
        """``ENV`` / ``LABEL`` pairs (``K=V`` form)."""
        pairs: dict[str, str] = {}
        for rest in self.all(name):
            for token in shlex.split(rest):
                key, sep, value = token.partition("=")
                if sep:
                    pairs[key] = value
        return pairs

    def pip_commands(self) -> list[list[str]]:
        """Every ``pip install`` / ``pip wheel`` command of a RUN, as argv."""
        cmds = []
        for run in self.all("RUN"):
            for part in run.split("&&"):
                argv = shlex.split(part)
                for i, tok in enumerate(argv):
                    if tok == "pip" and i + 1 < len(argv) and argv[i + 1] in ("install", "wheel"):
                        cmds.append(argv[i:])
                        break
        return cmds

    def pip_targets(self) -> list[str]:
        """Requirement and path arguments of the pip commands (options and their values dropped)."""
        targets = []
        takes_value = {"-w", "--wheel-dir", "-c", "--constraint", "-r", "--requirement",
                       "-i", "--index-url"}
        for argv in self.pip_commands():
            skip = False
            for tok in argv[2:]:
                if skip:
                    skip = False
                elif tok in takes_value:
                    skip = True
                elif not tok.startswith("-"):
                    targets.append(tok)
        return targets

    def pins(self) -> dict[str, str]:
        """``name -> version`` of every ``name==version`` the image installs."""
        pins = {}
        for tok in self.pip_targets():
            if tok.startswith(("/", ".")):
                continue
            req = Requirement(tok)
            specs = list(req.specifier)
            if len(specs) == 1 and specs[0].operator == "==":
                pins[canonical(req.name)] = specs[0].version
        return pins

    def copies(self) -> list[tuple[list[str], str]]:
        """``COPY`` from the build context: ``([sources], destination)``."""
        out = []
        for rest in self.all("COPY"):
            argv = [t for t in shlex.split(rest)]
            if any(t.startswith("--from") for t in argv):
                continue
            argv = [t for t in argv if not t.startswith("--")]
            out.append((argv[:-1], argv[-1]))
        return out

    def container_to_repo(self, container_path: str) -> Path | None:
        """The repo file a path in the image was copied from, or None if nothing copies it."""
        target = PurePosixPath(container_path)
        for sources, dest in self.copies():
            for src in sources:
                base = PurePosixPath(dest) / src if dest.endswith("/") else PurePosixPath(dest)
                if target == base or base in target.parents:
                    return ROOT / src / target.relative_to(base)
        return None


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def dockerignore_excludes(patterns: list[str], relpath: str) -> bool:
    """Whether a .dockerignore excludes ``relpath`` (patterns anchored at the context root,
    ``*`` within one segment, ``**`` across segments, a matched folder excludes its contents,
    later ``!`` patterns re-include)."""
    excluded = False
    parts = relpath.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    for pat in patterns:
        neg = pat.startswith("!")
        pat = pat[1:] if neg else pat
        regex = re.escape(pat.strip("/")).replace(r"\*\*", ".*").replace(r"\*", "[^/]*")
        regex = regex.replace(r"\?", "[^/]")
        if any(re.fullmatch(regex, p) for p in prefixes):
            excluded = not neg
    return excluded


def dockerignore_patterns() -> list[str]:
    lines = DOCKERIGNORE.read_text().splitlines()
    return [ln.strip() for ln in lines if ln.strip() and not ln.strip().startswith("#")]


def rsync_excludes(patterns: list[str], relpath: str) -> bool:
    """rsync --exclude: a leading "/" anchors at the transfer root, otherwise a pattern matches
    any path component (enough for the patterns the cluster config uses)."""
    parts = relpath.split("/")
    for pat in patterns:
        if "/" in pat.strip("/"):
            pytest.fail(f"rsync pattern {pat!r}: the test's matcher does not handle inner '/'")
        if pat.startswith("/"):
            if fnmatch.fnmatchcase(parts[0], pat[1:]):
                return True
        elif any(fnmatch.fnmatchcase(p, pat) for p in parts):
            return True
    return False


def load_docs(path: Path) -> list[dict]:
    with path.open() as f:
        return [d for d in yaml.safe_load_all(f) if d is not None]


def the_doc(path: Path, kind: str) -> dict:
    docs = [d for d in load_docs(path) if d.get("kind") == kind]
    assert len(docs) == 1, f"{path.name}: expected one {kind}, found {len(docs)}"
    return docs[0]


def config_class(job: str):
    module, name = CONFIG_CLASSES[job]
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as err:
        pytest.fail(
            f"{module}.{name} is not importable ({err}): the [{job}] configs of infra/ "
            f"cannot be checked against it"
        )


def load_job_config(job: str, path: Path):
    """Load ``path``'s ``[job]`` table through the job's dataclass, as jobs/<job>.py does."""
    from raystack.config import load_config

    cfg = load_config(config_class(job), path, section=job)
    checker = getattr(importlib.import_module(CONFIG_CLASSES[job][0]), "check_config", None)
    if checker is not None:
        checker(cfg)
    return cfg


def cpu_quantity(q) -> float:
    s = str(q)
    return float(s[:-1]) / 1000 if s.endswith("m") else float(s)


def ray_containers(rayjob: dict) -> list[tuple[str, dict, dict]]:
    """``(group, pod spec, Ray container)`` for the head and then each worker group; KubeRay
    runs Ray in the first container of a pod."""
    rc = rayjob["spec"]["rayClusterSpec"]
    groups = [("head", rc["headGroupSpec"])]
    groups += [(g["groupName"], g) for g in rc.get("workerGroupSpecs", [])]
    return [(name, g["template"]["spec"], g["template"]["spec"]["containers"][0])
            for name, g in groups]


def mounted(container: dict, path: str) -> bool:
    p = PurePosixPath(path)
    return any(
        PurePosixPath(m["mountPath"]) == p or PurePosixPath(m["mountPath"]) in p.parents
        for m in container.get("volumeMounts", [])
    )


def rayjob_problems(doc: dict) -> list[str]:
    """Schema problems of a RayJob (ray.io/v1): unknown fields, missing parts, bad types."""
    problems = []
    if doc.get("apiVersion") != "ray.io/v1":
        problems.append(f"apiVersion {doc.get('apiVersion')!r} != 'ray.io/v1'")
    if doc.get("kind") != "RayJob":
        problems.append(f"kind {doc.get('kind')!r} != 'RayJob'")
    if not doc.get("metadata", {}).get("name"):
        problems.append("metadata.name missing")
    spec = doc.get("spec", {})
    problems += [f"spec.{k}: unknown RayJob field" for k in sorted(set(spec) - RAYJOB_SPEC_FIELDS)]
    if not isinstance(spec.get("entrypoint"), str) or not spec.get("entrypoint").strip():
        problems.append("spec.entrypoint missing")
    rc = spec.get("rayClusterSpec")
    if not isinstance(rc, dict):
        return [*problems, "spec.rayClusterSpec missing"]
    unknown = sorted(set(rc) - RAYCLUSTER_SPEC_FIELDS)
    problems += [f"rayClusterSpec.{k}: unknown field" for k in unknown]
    groups = [("headGroupSpec", rc.get("headGroupSpec"), HEAD_GROUP_FIELDS)]
    groups += [(f"workerGroupSpecs[{i}]", g, WORKER_GROUP_FIELDS)
               for i, g in enumerate(rc.get("workerGroupSpecs") or [])]
    if len(groups) < 2:
        problems.append("rayClusterSpec.workerGroupSpecs: no worker group")
    for where, group, allowed in groups:
        if not isinstance(group, dict):
            problems.append(f"{where} missing")
            continue
        problems += [f"{where}.{k}: unknown field" for k in sorted(set(group) - allowed)]
        params = group.get("rayStartParams")
        if not isinstance(params, dict):
            problems.append(f"{where}.rayStartParams missing (a map, may be empty)")
        else:
            problems += [f"{where}.rayStartParams.{k}: value {v!r} is not a string"
                         for k, v in params.items() if not isinstance(v, str)]
        spec_ = (group.get("template") or {}).get("spec") or {}
        containers = spec_.get("containers") or []
        if not containers or not all(c.get("name") and c.get("image") for c in containers):
            problems.append(f"{where}.template.spec.containers: need name and image")
        volumes = {v["name"] for v in spec_.get("volumes", [])}
        for c in containers + spec_.get("initContainers", []):
            for m in c.get("volumeMounts", []):
                if m["name"] not in volumes:
                    problems.append(f"{where}: {c['name']} mounts undeclared volume {m['name']!r}")
        if where.startswith("worker"):
            for key in ("groupName", "minReplicas", "maxReplicas"):
                if key not in group:
                    problems.append(f"{where}.{key} missing")
            lo, hi = group.get("minReplicas", 0), group.get("maxReplicas", 0)
            if not lo <= group.get("replicas", lo) <= hi:
                problems.append(f"{where}: replicas outside [minReplicas, maxReplicas]")
    return problems


def gpu_limit(container: dict) -> int:
    return int(container.get("resources", {}).get("limits", {}).get("nvidia.com/gpu", 0))


# --- the image ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def dockerfile() -> Dockerfile:
    return Dockerfile(DOCKERFILE)


def test_dockerfile_labels_name_the_image_and_version(dockerfile):
    labels = dockerfile.key_values("LABEL")
    name, _, tag = image_name().partition(":")
    assert labels.get("org.opencontainers.image.title") == name
    assert labels.get("org.opencontainers.image.version") == tag, (
        "the image version label must follow pyproject.toml's version"
    )


def test_dockerfile_builds_on_cuda_devel_and_runs_on_matching_cuda(dockerfile):
    froms = [f.split()[0] for f in dockerfile.all("FROM")]
    assert all(f.startswith("nvidia/cuda:") for f in froms), froms
    # mamba-ssm compiles with nvcc: only devel images have it.
    assert "devel" in froms[0], f"the build stage needs a CUDA devel image, got {froms[0]}"
    cuda = {f.split(":")[1].split("-")[0] for f in froms}
    assert len(cuda) == 1, f"build and runtime stages use different CUDA versions: {cuda}"


def test_dockerfile_pins_match_project(dockerfile):
    pins = dockerfile.pins()
    # The stack `make test-gpu-extras` runs the ptlflow adapter against is the one shipped.
    extras_req = INFRA / "gpu-extras" / "requirements.txt"
    for line in extras_req.read_text().splitlines():
        line = line.split("#")[0].strip()
        if "==" in line:
            req = Requirement(line)
            name = canonical(req.name)
            if name in ("torch", "torchvision", "ptlflow"):
                assert pins.get(name) == next(iter(req.specifier)).version, (
                    f"{name}: Dockerfile pins {pins.get(name)}, {extras_req.name} pins {line}"
                )
    # Every pin must satisfy what pyproject.toml asks of the same package.
    meta = pyproject()["project"]
    reqs = [Requirement(r) for r in meta["dependencies"]]
    for extra in meta["optional-dependencies"].values():
        reqs += [Requirement(r) for r in extra]
    for req in reqs:
        name = canonical(req.name)
        if name in pins:
            assert req.specifier.contains(pins[name], prereleases=True), (
                f"Dockerfile pins {name}=={pins[name]}, pyproject.toml wants {req}"
            )
    for name in ("torch", "mamba-ssm", "ptlflow", "ray"):
        assert name in pins, f"the Dockerfile installs no pinned {name}"


def test_dockerfile_python_satisfies_requires_python(dockerfile):
    versions = set(re.findall(r"python3\.(\d+)", " ".join(dockerfile.all("RUN"))))
    assert len(versions) == 1, f"one Python in the image, found 3.{versions}"
    spec = SpecifierSet(pyproject()["project"]["requires-python"])
    assert spec.contains(f"3.{versions.pop()}")


def test_dockerfile_installs_raystack_with_existing_extras(dockerfile):
    extras_known = set(pyproject()["project"]["optional-dependencies"])
    local = [t for t in dockerfile.pip_targets() if t.startswith("/") and "[" in t]
    assert local, "the Dockerfile never pip-installs raystack from its source"
    for tok in local:
        path, extras = re.fullmatch(r"(.+)\[(.+)\]", tok).groups()
        assert set(extras.split(",")) <= extras_known, f"{tok}: extras not in pyproject.toml"
        assert dockerfile.container_to_repo(path + "/pyproject.toml") == ROOT / "pyproject.toml"
    assert any("[gpu]" in t for t in local), "the image must install the gpu extra"


def test_dockerfile_copies_exist_and_survive_the_dockerignore(dockerfile):
    patterns = dockerignore_patterns()
    copies = dockerfile.copies()
    assert copies
    for sources, _ in copies:
        for src in sources:
            assert (ROOT / src).exists(), f"COPY {src}: not in the repo"
            assert not dockerignore_excludes(patterns, src), f"COPY {src}: in the dockerignore"
    # What `pip install /opt/raystack[gpu]` needs must reach the image whole.
    for needed in ("raystack/__init__.py", "raystack/store/schema.py", "schemas", "setup.py"):
        assert not dockerignore_excludes(patterns, needed), needed


def test_dockerignore_matcher_follows_docker_semantics():
    assert dockerignore_excludes(["store"], "store/scores/x.parquet")
    assert not dockerignore_excludes(["store"], "raystack/store/schema.py")
    assert dockerignore_excludes(["**/__pycache__"], "raystack/__pycache__/a.pyc")
    assert not dockerignore_excludes([".venv", "!.venv"], ".venv/bin/python")


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


def check_fits(cfg, job: str, *, max_gpus: float, cpus_per_node: float, where: str) -> None:
    """The job asks for GPUs explicitly, and for no more GPUs and CPUs than the cluster has.

    Sizes are explicit because the defaults derive them from the resources present at start,
    and an autoscaling cluster starts with no GPU worker.
    """
    assert 1 <= cfg.cpus_per_worker <= cpus_per_node, (
        f"{where}: cpus_per_worker {cfg.cpus_per_worker}, a GPU node has {cpus_per_node}"
    )
    if job == "scan":
        assert cfg.workers >= 1 and cfg.gpus_per_worker > 0, f"{where}: no GPU actors"
        assert cfg.device in ("cuda", "auto"), where
        assert cfg.workers * cfg.gpus_per_worker <= max_gpus, (
            f"{where}: {cfg.workers} workers x {cfg.gpus_per_worker} GPU > {max_gpus} GPUs"
        )
    else:
        # workers < 2 would train in the driver, on the GPU-less head.
        assert 2 <= cfg.workers <= max_gpus, f"{where}: {cfg.workers} workers, {max_gpus} GPUs"
        assert cfg.device == "cuda", f"{where}: device {cfg.device!r} would not ask for GPUs"


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


# --- README: commands and paths it quotes ------------------------------------------------


def readme_commands(prefix: str) -> list[list[str]]:
    """Commands starting with ``prefix`` in the README's code blocks and inline code."""
    text = README.read_text()
    found = [ln.strip() for ln in text.splitlines() if ln.startswith("    ")]
    found += re.findall(r"`([^`\n]+)`", text)
    return [shlex.split(c.split(" #")[0]) for c in found if c.startswith(prefix + " ")]


def test_readme_documents_the_image_build():
    assert f"docker build -f infra/docker/Dockerfile -t {image_name()} ." in README.read_text()
    assert f"-t {image_name()} ." in DOCKERFILE.read_text()


def cli_parse_error(argv: list[str]) -> str | None:
    """Why ``raystack <argv>`` would not parse (unknown command or option, missing or bad
    argument), or None; nothing runs."""
    import typer

    from raystack.cli import app

    group = typer.main.get_command(app)
    name, args = argv[0], argv[1:]
    if name not in group.commands:
        return f"no command {name!r} (commands: {sorted(group.commands)})"
    try:
        group.commands[name].make_context(name, list(args))
    except Exception as err:  # typer vendors click: its UsageError is not click's
        return f"{type(err).__name__}: {err}"
    return None


def test_readme_raystack_commands_parse_with_the_cli():
    cmds = readme_commands("raystack")
    assert cmds, "infra/README.md quotes no raystack command"
    for argv in cmds:
        err = cli_parse_error(argv[1:])
        assert err is None, f"`{' '.join(argv)}` does not parse: {err}"
    assert "NoSuchOption" in cli_parse_error(["scan", "x", "--chekpoint", "fp.pt"])
    assert cli_parse_error(["scna", "x"]).startswith("no command")


def test_paths_quoted_in_infra_exist():
    """Repo paths the README and configs name, also as nodes see them (/home/ray/raystack/...)."""
    (target, _), = load_docs(CLUSTER)[0]["file_mounts"].items()
    texts = {p: p.read_text() for p in (README, CLUSTER, *CLUSTER_CONFIGS.values()) if p.exists()}
    for src, text in texts.items():
        for rel in re.findall(re.escape(target) + r"/([\w./-]+)", text):
            if rel.startswith("checkpoints/"):
                continue  # the user's own files, synced with the tree
            assert (ROOT / rel).exists(), f"{src.name} names {target}/{rel}: not in the repo"
        for rel in re.findall(r"(?<![\w/])((?:jobs|infra)/[\w./-]+\.(?:py|toml|yaml|sh))", text):
            assert (ROOT / rel).exists(), f"{src.name} names {rel}: not in the repo"


# --- local S3 ----------------------------------------------------------------------------


def test_local_s3_script_serves_buckets_and_uploads(tmp_path):
    (tmp_path / "in" / "sub").mkdir(parents=True)
    (tmp_path / "in" / "sub" / "a.txt").write_text("a")
    (tmp_path / "in" / "b.txt").write_text("b")
    env = {**os.environ, "PYTHON": sys.executable}
    proc = subprocess.Popen(
        [str(INFRA / "local-s3" / "run.sh"), "--port", "0", "--bucket", "cams",
         "--upload", str(tmp_path / "in"), "s3://cams/pre"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env,
        start_new_session=True,
    )
    try:
        # The four export lines come in one flush once the buckets and uploads are done.
        ready, _, _ = select.select([proc.stdout], [], [], 60)
        assert ready, "local S3 printed nothing in 60 s"
        lines = [proc.stdout.readline().strip() for _ in range(4)]
        assert all(ln.startswith("export ") for ln in lines), lines
        exports = dict(ln.removeprefix("export ").split("=", 1) for ln in lines)
        assert exports["AWS_ENDPOINT_URL"].startswith("http://127.0.0.1:")
        import boto3

        client = boto3.client(
            "s3", endpoint_url=exports["AWS_ENDPOINT_URL"],
            aws_access_key_id=exports["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=exports["AWS_SECRET_ACCESS_KEY"],
            region_name=exports["AWS_DEFAULT_REGION"],
        )
        keys = sorted(o["Key"] for o in client.list_objects_v2(Bucket="cams")["Contents"])
        assert keys == ["pre/b.txt", "pre/sub/a.txt"]
        assert client.get_object(Bucket="cams", Key="pre/sub/a.txt")["Body"].read() == b"a"
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
