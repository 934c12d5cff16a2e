"""The layout rules of docs/architecture.md: the README's layout block lists exactly the modules in
src/, every module has a layer and imports only from its own layer or below (all imports, lazy ones
included; no cycle; run and sweep never import the CLI), no module uses another's private names, functions
stay short."""

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


# The layers, bottom (0) to top. A module's layer is that of its top-level name (a package, dmft/, models/,
# simulation/, sweep/, is one unit with all its modules; "" is the package root). A module imports from its own layer
# (sideways: the import graph stays acyclic, test below) or from layers below, never from a layer above.
# Every import counts: module level, inside functions, under TYPE_CHECKING, `from .. import name`, and the
# package root (`from .. import __version__` imports sgd_dmft/__init__.py, the top layer). The same table is
# in docs/architecture.md.
LAYERS = (
    # 0 leaves: import nothing of the package
    ("_version", "errors", "budget", "provenance", "parallel", "publish", "defaults", "progress"),
    ("grid", "curves"),  # 1 time grids; the curve Dataset schema
    ("laws", "law_base", "schedules", "models", "stability", "conventions", "arguments"),  # 2 the specification: law, model, their rules
    ("dmft", "simulation", "simulate", "exact", "spectral", "online", "algorithms"),  # 3 the core: d = infinity,
    # finite d, the limits (spectral: the law of X^T X); the algorithms by name (law + simulator)
    ("results", "comparison", "result_sets", "plot", "curve_plot", "sweep_plot"),  # 4 result files, theory vs simulation, figures
    ("config", "config_schema"),  # 5 TOML -> Problem, Law (the schema of the keys)
    ("run", "experiment", "compression"),  # 6 config -> experiment -> theory / simulation / compare; long runs compressed
    ("sweep",),  # 7 product grids (the package sweep/: keys, cache, tasks, backends, gathering, driver)
    ("cli", "cli_logging", "cli_show"),  # 8 the command line (its output through logging; what show prints)
    ("", "problem"),  # 9 for users only: the package root (lazy re-exports), the legacy alias of models/
)
# Imports that go up on purpose, (importer, imported): reason. Keep it short.
UPWARD_ALLOWED = {
    ("sgd_dmft.results", "sgd_dmft.config"): "the deprecated alias results.config_from_dataset (moved to config), "
                                             "imported only when a user asks for the old name",
    ("sgd_dmft.laws", "sgd_dmft.algorithms"): "the deprecated aliases laws.make_law / laws.LAWS (the names moved to "
                                              "the algorithm registry), imported only when a user asks for them",
}
# Sideways imports that close a cycle on purpose (lazy, inside a function), (importer, imported): reason.
CYCLE_ALLOWED = {
    ("sgd_dmft.arguments", "sgd_dmft.models"): "arguments.problem() checks isinstance(value, Problem) when called, "
                                               "while models/problem.py uses arguments.number at import; to remove: "
                                               "move problem(), law() and SOLVE above models/ and laws",
    ("sgd_dmft.laws", "sgd_dmft.algorithms"): "the deprecated aliases laws.make_law / laws.LAWS (UPWARD_ALLOWED)",
}


def _imports(name: str, path: Path, mods: dict[str, Path]) -> set[tuple[str, int]]:
    """(imported module, line) for every import of the package anywhere in the file (the whole AST)."""
    pkg = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name.split(".")[0] == "sgd_dmft":  # binds the root name too
                    out |= {(a.name, node.lineno), ("sgd_dmft", node.lineno)}
        elif isinstance(node, ast.ImportFrom):
            base = pkg.split(".")[: len(pkg.split(".")) - node.level + 1] if node.level else []
            target = ".".join(base + ([node.module] if node.module else []))
            if target.split(".")[0] != "sgd_dmft":
                continue
            for a in node.names:  # a submodule, or a name of the module `target`
                sub = f"{target}.{a.name}"
                out.add((sub if sub in mods else target, node.lineno))
    return {(t, line) for t, line in out if t != name}


def _layer(module: str) -> int:
    unit = module.split(".")[1] if "." in module else ""
    ranks = [i for i, names in enumerate(LAYERS) if unit in names]
    assert ranks, f"{module}: no layer; give {unit!r} one in LAYERS (tests/test_layout.py, docs/architecture.md)"
    return ranks[0]


def test_every_import_goes_down_or_sideways():
    mods = _modules()
    up, used = [], set()
    for name, path in sorted(mods.items()):
        for target, line in sorted(_imports(name, path, mods), key=lambda tl: (tl[1], tl[0])):
            if _layer(target) > _layer(name):
                if (name, target) in UPWARD_ALLOWED:
                    used.add((name, target))
                else:
                    up.append(f"{name}:{line} imports {target} (layer {_layer(target)} above {_layer(name)})")
    assert not up, "imports going up a layer:\n" + "\n".join(up)
    assert used == set(UPWARD_ALLOWED), f"stale exceptions: {sorted(set(UPWARD_ALLOWED) - used)}"


def test_no_import_cycle_and_one_way_flow():
    mods = _modules()
    graph = {m: {t for t, _ in _imports(m, p, mods) if t in mods} for m, p in mods.items()}
    assert all(t in graph.get(m, ()) for m, t in CYCLE_ALLOWED), f"stale exceptions: {sorted(CYCLE_ALLOWED)}"
    graph = {m: ts - {t for u, t in CYCLE_ALLOWED if u == m} for m, ts in graph.items()}
    state: dict[str, int] = {}

    def visit(u: str, path: list[str]) -> None:
        state[u] = 1
        for v in sorted(graph[u]):
            assert state.get(v) != 1, "import cycle: " + " -> ".join(path + [v])
            if v not in state:
                visit(v, path + [v])
        state[u] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m, [m])
    sweep = [m for m in mods if m == "sgd_dmft.sweep" or m.startswith("sgd_dmft.sweep.")]
    for low in ("sgd_dmft.run", *sweep, "sgd_dmft.dmft.driver", "sgd_dmft.simulation.driver"):
        src = mods[low].read_text()
        assert "from .cli" not in src and "from ..cli" not in src and "import click" not in src, low


def test_no_private_names_across_modules():
    """A module uses only the public names of the package's other modules: `from .config import _x` or
    `run._x` means the name should be public first."""
    mods = _modules()
    bad = []
    for name, path in sorted(mods.items()):
        pkg = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        tree = ast.parse(path.read_text())
        aliases = set()  # local names bound to a module of the package
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level:
                base = pkg.split(".")[: len(pkg.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
                for a in node.names:
                    if f"{target}.{a.name}" in mods:
                        aliases.add(a.asname or a.name)
                    elif a.name.startswith("_") and not a.name.startswith("__"):
                        bad.append(f"{name}:{node.lineno} imports {target}.{a.name}")
        for node in ast.walk(tree):
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in aliases
                    and node.attr.startswith("_") and not node.attr.startswith("__")):
                bad.append(f"{name}:{node.lineno} uses {node.value.id}.{node.attr}")
    assert not bad, bad


def test_no_legacy_alias_inside_the_package():
    """problem.py (the alias of models/) is for users: no module in src/ imports it."""
    mods = _modules()
    users = [m for m, p in mods.items() if m != "sgd_dmft.problem"
             and any(t == "sgd_dmft.problem" for t, _ in _imports(m, p, mods))]
    assert not users, users


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
