"""Dependencies between raystack's layers run one way, read from every module's imports.

    io -> archive -> decode -> probe/plan (scan) -> scan        store -> io only

Each import statement of every module is parsed with ``ast``, function-level ones included
(a lazy import is still a dependency; hiding a cycle in a function does not remove it).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "raystack"

# Modules any layer may import: they import nothing of raystack but each other.
LEAVES = ("raystack", "raystack.lazy", "raystack.errors", "raystack.retry", "raystack.redact",
          "raystack.media")

# layer -> the modules (and packages) that make it up.
LAYERS = {
    "leaf": LEAVES,
    "io": ("raystack.io",),
    "archive": ("raystack.archive",),
    "decode": ("raystack.decode", "raystack.decode_base", "raystack.decode_frames"),
    "store": ("raystack.store",),
    "scan": ("raystack.scan",),
    # Above the scan: what runs on top of scans and stores.
    "above": ("raystack.train", "raystack.query", "raystack.report", "raystack.eval",
              "raystack.cli", "raystack.synth"),
}

# layer -> the layers its modules may import. "other" is every module in no layer (models,
# inference, flow, config, console, ...), which only the scan and the layers above use.
ALLOWED = {
    "leaf": {"leaf"},
    "io": {"io", "leaf"},
    "archive": {"archive", "io", "leaf"},
    "decode": {"decode", "leaf"},
    "store": {"store", "io", "leaf"},
    "scan": {"scan", "store", "decode", "archive", "io", "leaf", "other"},
}


def layer_of(module: str) -> str:
    """The layer of a dotted module name (longest matching prefix), else ``"other"``.

    The root package ``raystack`` (its ``__version__``) is a leaf by itself, not a prefix.
    """
    best, found = -1, "other"
    for layer, names in LAYERS.items():
        for name in names:
            inside = name != "raystack" and module.startswith(name + ".")
            if (module == name or inside) and len(name) > best:
                best, found = len(name), layer
    return found


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_module(dotted: str) -> bool:
    rel = Path(*dotted.split("."))
    return (PACKAGE.parent / rel).with_suffix(".py").is_file() or (
        PACKAGE.parent / rel / "__init__.py").is_file()


def raystack_imports(path: Path, module: str | None = None) -> list[tuple[int, str]]:
    """``(line, module)`` of every raystack module ``path`` imports, at any depth.

    ``from raystack import retry`` imports the module ``raystack.retry``; ``from
    raystack.errors import X`` the module ``raystack.errors``. ``module`` is the file's
    dotted name (default: from its place in the package), for resolving relative imports.
    """
    module = module or module_name(path)
    tree = ast.parse(path.read_text(), filename=str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names
                    if a.name.split(".")[0] == "raystack"]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                anchor = parts[: len(parts) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            if base.split(".")[0] != "raystack":
                continue
            subs = [f"{base}.{a.name}" for a in node.names if _is_module(f"{base}.{a.name}")]
            out += [(node.lineno, m) for m in subs] or [(node.lineno, base)]
    return out


def check(module: str, imports: list[tuple[int, str]]) -> list[str]:
    """One message per import of ``module`` that its layer may not make."""
    layer = layer_of(module)
    if layer not in ALLOWED:
        return []
    return [f"{module} (line {line}, layer {layer}) imports {target} (layer "
            f"{layer_of(target)}); {layer} may import only {sorted(ALLOWED[layer])}"
            for line, target in imports if layer_of(target) not in ALLOWED[layer]]


def _modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py")
                  if "schemas" not in p.relative_to(PACKAGE).parts)


def test_imports_follow_the_layers():
    bad = [msg for p in _modules() for msg in check(module_name(p), raystack_imports(p))]
    assert bad == []


def test_every_constrained_layer_has_modules():
    assert set(ALLOWED) <= {layer_of(module_name(p)) for p in _modules()}


def test_the_checker_sees_lazy_and_relative_imports_and_names_them(tmp_path):
    fake = tmp_path / "fake.py"
    fake.write_text("from raystack import retry\n\n\ndef f():\n"
                    "    from raystack.archive import listing\n"
                    "    import raystack.store.layout\n"
                    "    from .store import Store\n")
    found = raystack_imports(fake, "raystack.decode_fake")
    assert sorted(found) == [(1, "raystack.retry"), (5, "raystack.archive.listing"),
                             (6, "raystack.store.layout"), (7, "raystack.store")]
    bad = check("raystack.decode_frames", found)
    assert len(bad) == 3
    assert ("raystack.decode_frames (line 5, layer decode) imports raystack.archive.listing "
            "(layer archive); decode may import only ['decode', 'leaf']") in bad


@pytest.mark.parametrize(("module", "layer"), [
    ("raystack.io.cache", "io"), ("raystack.archive.materialise", "archive"),
    ("raystack.decode_frames", "decode"), ("raystack.scan.probe", "scan"),
    ("raystack.store.store", "store"), ("raystack.retry", "leaf"), ("raystack", "leaf"),
    ("raystack.inference", "other"), ("raystack.train.storage", "above"),
])
def test_layer_of(module, layer):
    assert layer_of(module) == layer
