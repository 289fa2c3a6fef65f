"""The package's import graph is layered: core < runtime < method < evaluation < tools < study <
book < cli (``perceptual.LAYERS``). Walks every module's imports (function-level ones too) and
fails on an import that runs upward, or on a cycle among module-level imports."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

import perceptual

PACKAGE = Path(perceptual.__file__).parent


def module_name(path: Path, root: Path = PACKAGE) -> str:
    parts = path.relative_to(root.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path, root: Path = PACKAGE) -> list[tuple[str, bool]]:
    """(imported perceptual module, at module level?) for every import in the file."""
    tree = ast.parse(path.read_text())
    here = module_name(path, root)
    package = here if path.name == "__init__.py" else here.rpartition(".")[0]
    top = {id(node) for node in tree.body}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            names = [f"{base}.{a.name}" for a in node.names]  # resolved to the deepest module below
        else:
            continue
        found += [(n, id(node) in top) for n in names if n.split(".")[0] == root.name]
    return found


def layer(module: str) -> int | None:
    """Index in LAYERS of ``perceptual.<layer>...``; None for the package root."""
    parts = module.split(".")
    return perceptual.LAYERS.index(parts[1]) if len(parts) > 1 and parts[1] in perceptual.LAYERS else None


def violations(root: Path = PACKAGE) -> list[str]:
    """Upward imports and module-level cycles in the package under ``root``."""
    found, graph = [], {}
    modules = {module_name(p, root): p for p in root.rglob("*.py")}
    for name, path in modules.items():
        mine = layer(name)
        for target, top in imports(path, root):
            while target not in modules and "." in target:  # perceptual.x.y.name → the module perceptual.x.y
                target = target.rpartition(".")[0]
            theirs = layer(target)
            upward = f"{name} imports {target} ({perceptual.LAYERS[theirs or 0]} is above {perceptual.LAYERS[mine or 0]})"
            if mine is not None and theirs is not None and theirs > mine and upward not in found:
                found.append(upward)
            if top and target in modules and target != name:
                graph.setdefault(name, set()).add(target)
    state: dict[str, int] = {}

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                found.append("cycle: " + " → ".join(trail[trail.index(nxt):] + [nxt]))
            elif nxt not in state:
                visit(nxt, trail + [nxt])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    return found


def test_every_layer_is_a_documented_subpackage():
    for name in perceptual.LAYERS[:-1]:
        init = PACKAGE / name / "__init__.py"
        assert init.is_file() and len(ast.get_docstring(ast.parse(init.read_text())) or "") > 100, name
    top = sorted(p.name for p in PACKAGE.iterdir() if p.suffix == ".py")
    assert top == ["__init__.py", "__main__.py", "cli.py"] or top == ["__init__.py", "cli.py"]


def test_imports_are_layered_and_acyclic():
    assert violations() == []


def _plant(tmp_path: Path, files: dict[str, str]) -> Path:
    root = tmp_path / "perceptual"
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root


def test_an_upward_import_is_caught(tmp_path):
    root = _plant(tmp_path, {"__init__.py": "", "core/__init__.py": "", "method/__init__.py": "",
                             "method/losses.py": "", "core/paths.py": "def f():\n    from perceptual.method import losses\n"})
    assert violations(root) == ["perceptual.core.paths imports perceptual.method.losses (method is above core)"]


def test_a_relative_upward_import_and_a_cycle_are_caught(tmp_path):
    root = _plant(tmp_path, {"__init__.py": "", "runtime/__init__.py": "", "study/__init__.py": "",
                             "runtime/a.py": "from ..study import b\n", "study/b.py": "",
                             "core/__init__.py": "", "core/x.py": "from perceptual.core import y\n",
                             "core/y.py": "from . import x\n"})
    found = violations(root)
    assert "perceptual.runtime.a imports perceptual.study.b (study is above runtime)" in found
    assert any(v.startswith("cycle: perceptual.core.x → perceptual.core.y → perceptual.core.x") for v in found)


def test_old_module_names_are_the_moved_modules():
    from perceptual import losses
    from perceptual.vgg import load_vgg
    from perceptual.method import losses as moved, vgg

    assert losses is moved and load_vgg is vgg.load_vgg
    assert vgg.__spec__.name == "perceptual.method.vgg"  # the alias does not rename the module
    with pytest.raises(AttributeError):
        perceptual.no_such_module
