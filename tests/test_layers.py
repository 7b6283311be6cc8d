"""The package's layers, read from its imports (no module is executed).

- Primitives (``models``, ``data``, ``spectral``, ``fit``, ``metrics`` and the other modules at the
  bottom) import nothing from ``experiments``, ``plots``, ``widgets`` or the modules above them.
- ``plots`` and ``widgets`` take results and library functions, never experiment modules.
- An experiment composes library calls and other experiments through the engine
  (``ctx.run("name")``); it never imports another experiment's module.
- A chapter notebook imports no private name (``_x``) of the package.
"""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PKG = ROOT / "dipnb"

PRIMITIVES = (
    "errors", "params", "runtime", "data", "models", "spectral", "fit", "metrics", "stopping", "ntk", "kernels",
)
ABOVE_PRIMITIVES = ("experiments", "plots", "widgets", "claims", "plan", "cli", "distributed")
EXPERIMENT_INFRASTRUCTURE = ("engine", "cache")


def _module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _imports(path: Path) -> list[tuple[int, str]]:
    """``(line, absolute module)`` of every import in ``path``, function bodies included."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            # `from . import x` / `from .. import x` may import submodules: count each name
            out += [(node.lineno, f"{mod}.{a.name}") for a in node.names] if not node.module else [(node.lineno, mod)]
    return [(line, m) for line, m in out if m == "dipnb" or m.startswith("dipnb.")]


def _layer(module: str) -> str:
    """``dipnb.experiments.denoising`` -> ``experiments``; ``dipnb.data`` -> ``data``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _files(*names: str) -> list[Path]:
    out = []
    for n in names:
        p = PKG / f"{n}.py"
        out += [p] if p.is_file() else sorted((PKG / n).glob("*.py"))
    return out


def test_the_primitives_exist():
    missing = [n for n in PRIMITIVES if not (PKG / f"{n}.py").is_file()]
    assert not missing, f"PRIMITIVES names modules that are gone: {missing}"


@pytest.mark.parametrize("path", _files(*PRIMITIVES), ids=lambda p: p.stem)
def test_a_primitive_imports_only_primitives(path):
    bad = [f"line {line}: {m}" for line, m in _imports(path) if _layer(m) in ABOVE_PRIMITIVES]
    assert not bad, f"{path.name} imports from a layer above it:\n" + "\n".join(bad)


@pytest.mark.parametrize("path", _files("plots", "widgets"), ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_plots_and_widgets_never_import_experiments(path):
    bad = [f"line {line}: {m}" for line, m in _imports(path) if _layer(m) in ("experiments", "claims", "plan", "cli")]
    assert not bad, f"{path.relative_to(ROOT)} imports an experiment:\n" + "\n".join(bad)


@pytest.mark.parametrize("path", sorted((PKG / "experiments").glob("*.py")), ids=lambda p: p.stem)
def test_an_experiment_never_imports_another_experiment(path):
    own = path.stem
    bad = []
    for line, m in _imports(path):
        parts = m.split(".")
        if _layer(m) != "experiments" or len(parts) < 3:
            continue
        other = parts[2]
        if other not in (own, *EXPERIMENT_INFRASTRUCTURE) and (PKG / "experiments" / f"{other}.py").is_file():
            bad.append(f"line {line}: {m}")
    assert not bad, (
        f"experiments/{path.name} imports another experiment (compose it with ctx.run, or move the shared"
        " code down into the library):\n" + "\n".join(bad)
    )


def _private_names(source: str) -> list[str]:
    """Private names of dipnb that a cell imports or reaches through an imported dipnb module."""
    # IPython's magics and shell lines become `pass`, keeping the indentation of the block
    lines = [ln[: len(ln) - len(ln.lstrip())] + "pass" if ln.lstrip().startswith(("%", "!")) else ln
             for ln in source.splitlines()]
    tree = ast.parse("\n".join(lines))
    modules, found = set(), []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("dipnb"):
            for a in node.names:
                if a.name.startswith("_"):
                    found.append(f"from {node.module} import {a.name}")
                else:
                    modules.add(a.asname or a.name)
            if any(part.startswith("_") for part in node.module.split(".")):
                found.append(f"from {node.module} import ...")
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith("dipnb"):
                    modules.add((a.asname or a.name).split(".")[0])
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__"):
            base = node.value
            while isinstance(base, ast.Attribute):
                base = base.value
            if isinstance(base, ast.Name) and base.id in modules:
                found.append(ast.unparse(node))
    return found


NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_a_chapter_imports_no_private_name(path):
    cells = [c for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code"]
    bad = [f"cell {c.get('id')}: {n}" for c in cells for n in _private_names("".join(c["source"]))]
    assert not bad, f"{path.name} uses private names of dipnb:\n" + "\n".join(bad)


def test_the_checks_catch_what_they_name(tmp_path):
    """Each rule fails on a planted violation (so a passing run means something)."""
    assert _private_names("from dipnb.experiments.capacity import _stats") == [
        "from dipnb.experiments.capacity import _stats"]
    assert _private_names("import dipnb\nx = dipnb.plan._cpu_name()") == ["dipnb.plan._cpu_name"]
    assert _private_names("from dipnb import plots\nplots.stopping._private(1)") == ["plots.stopping._private"]
    assert _private_names("import dipnb\ndipnb.run('x').__class__") == []

    fake = PKG / "experiments" / "decoupling.py"
    planted = tmp_path / "dipnb" / "experiments" / "capacity.py"
    planted.parent.mkdir(parents=True)
    planted.write_text("from .decoupling import MODELS\nfrom .engine import run\n")
    assert fake.is_file()
    got = [m for _, m in _imports_at(planted, tmp_path)]
    assert got == ["dipnb.experiments.decoupling", "dipnb.experiments.engine"]
    primitive = tmp_path / "dipnb" / "spectral.py"
    primitive.write_text("def f():\n    from .plots import x\n    from . import widgets\n")
    assert [_layer(m) for _, m in _imports_at(primitive, tmp_path)] == ["plots", "widgets"]


def _imports_at(path: Path, root: Path) -> list[tuple[int, str]]:
    """:func:`_imports` for a file laid out like the package under another root."""
    global ROOT
    saved, ROOT = ROOT, root
    try:
        return _imports(path)
    finally:
        ROOT = saved
