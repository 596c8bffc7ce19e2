"""Package discovery that pyproject.toml alone cannot express: the top-level ``schemas/``
folder is installed as the ``raystack.schemas`` package, so the versioned contracts live
where the repo layout puts them and installed copies still find them."""

from setuptools import find_packages, setup

setup(
    packages=[*find_packages(include=["raystack", "raystack.*"]), "raystack.schemas"],
    package_dir={"raystack.schemas": "schemas"},
)
