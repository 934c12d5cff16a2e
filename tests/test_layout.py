"""The layout rules of docs/architecture.md: the README's layout block lists exactly the modules in
src/, imports run one way (no cycle; run and sweep never import the CLI), functions stay short."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "src" / "sgd_dmft"
MAX_LINES = 60


def _modules() -> dict[str, Path]:
    out = {}
    for p in PKG.rglob("*.py"):
        parts = p.relative_to(PKG.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = p
    return out


def _readme_files() -> set[str]:
    text = (ROOT / "README.md").read_text()
    block = text[text.index("## Layout"):]
    block = block[block.index("```") + 3:]
    block = block[: block.index("```")]
    files, stack = set(), []
    for line in block.splitlines():
        m = re.match(r"^(\s*)(\S+)", line)
        if not m or not line.startswith("  ") and not line.startswith("src/"):
            continue
        indent, name = len(m.group(1)), m.group(2)
        if line.startswith("src/"):
            stack = [(0, "")]
            continue
        while stack and stack[-1][0] >= indent:
            stack.pop()
        prefix = stack[-1][1] if stack else ""
        if name.endswith("/"):
            stack.append((indent, prefix + name))
        elif name.endswith(".py"):
            files.add(prefix + name)
    return files


def test_readme_layout_matches_the_tree():
    tree = {str(p.relative_to(PKG)) for p in PKG.rglob("*.py") if p.name != "__init__.py"}
    listed = _readme_files()
    assert listed == tree, f"missing in README: {sorted(tree - listed)}; not in src: {sorted(listed - tree)}"


def _deps(name: str, path: Path, mods: dict[str, Path]) -> set[str]:
    pkg = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    out = set()
    for node in ast.parse(path.read_text()).body:  # module-scope imports (lazy ones are allowed)
        if isinstance(node, ast.ImportFrom):
            base = pkg.split(".")
            base = base[: len(base) - (node.level - 1)] if node.level else []
            target = ".".join(base + ([node.module] if node.module else [])) if node.level else (node.module or "")
            subs = {f"{target}.{a.name}" for a in node.names}
            out |= {t for t in (subs if node.module is None else subs | {target}) if t in mods}
        elif isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name in mods}
    return out - {name}


def test_no_import_cycle_and_one_way_flow():
    mods = _modules()
    graph = {m: _deps(m, p, mods) for m, p in mods.items()}
    state: dict[str, int] = {}

    def visit(u: str, path: list[str]) -> None:
        state[u] = 1
        for v in graph[u]:
            assert state.get(v) != 1, "import cycle: " + " -> ".join(path + [v])
            if v not in state:
                visit(v, path + [v])
        state[u] = 2

    for m in graph:
        if m not in state:
            visit(m, [m])
    for low in ("sgd_dmft.run", "sgd_dmft.sweep", "sgd_dmft.dmft.driver", "sgd_dmft.simulation.driver"):
        src = mods[low].read_text()
        assert "from .cli" not in src and "from ..cli" not in src and "import click" not in src, low


def test_functions_are_short():
    long = []
    for p in PKG.rglob("*.py"):
        for node in ast.walk(ast.parse(p.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                numba = any("njit" in ast.unparse(d) or "numba" in ast.unparse(d) for d in node.decorator_list)
                n = node.end_lineno - node.lineno + 1
                if n > MAX_LINES and not numba:
                    long.append(f"{p.relative_to(PKG)}:{node.lineno} {node.name} ({n} lines)")
    assert not long, long
