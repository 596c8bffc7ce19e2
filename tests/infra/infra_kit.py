"""Parsers and checkers shared by the infra tests (tests/infra/test_infra_*.py): the
Dockerfile, .dockerignore and rsync matchers, YAML/TOML loaders and the RayJob checker.

    Dockerfile(DOCKERFILE).key_values("LABEL"); rayjob_problems(doc) -> ["what is wrong", ...]
"""

from __future__ import annotations

import fnmatch
import importlib
import re
import shlex
import tomllib
from pathlib import Path, PurePosixPath

import pytest
import yaml  # PyYAML comes with ray, a core dependency
from packaging.requirements import Requirement

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
