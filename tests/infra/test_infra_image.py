"""infra/ against the project: the Docker image: labels, base images, pins, extras, copied files.

The deployment files cannot run here, so every name they use is checked against what
exists (helpers: infra_kit.py).
"""

from __future__ import annotations

import re

import pytest
from infra_kit import (
    DOCKERFILE,
    INFRA,
    ROOT,
    Dockerfile,
    canonical,
    dockerignore_excludes,
    dockerignore_patterns,
    image_name,
    pyproject,
)
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

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
