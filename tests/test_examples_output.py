"""The figure scripts (examples/fig_*.py, `make figures`) write under out/ only: the tracked PNGs in
docs/figures/ change only with ``--publish`` / ``FIG_PUBLISH=1``. Statically, every script writes
through ``_common.Figure`` (no file writes of its own); by a tiny run, ``Figure`` writes into its
output folder and leaves docs/figures/ alone unless publishing was asked for."""

from __future__ import annotations

import ast
import importlib
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
WRITERS = {"savefig", "to_netcdf", "write_dataset", "write_json", "write_text", "write_bytes", "copyfile", "copy",
           "copy2", "copytree", "open", "mkdir", "imsave", "dump"}


def _calls(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call):
            f = node.func
            names.add(f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", ""))
    return names


@pytest.mark.parametrize("script", sorted(EXAMPLES.glob("fig_*.py")), ids=lambda p: p.name)
def test_figure_scripts_write_only_through_figure(script):
    writes = _calls(script) & WRITERS
    assert not writes, f"{script.name} writes files itself ({sorted(writes)}): use _common.Figure (out/figures/)"
    assert "docs" not in {n.value for n in ast.walk(ast.parse(script.read_text()))
                          if isinstance(n, ast.Constant) and isinstance(n.value, str)}


@pytest.fixture
def common(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(EXAMPLES))
    monkeypatch.setenv("FIG_OUT", str(tmp_path / "out"))
    monkeypatch.delenv("FIG_PUBLISH", raising=False)
    sys.modules.pop("_common", None)
    mod = importlib.import_module("_common")
    monkeypatch.setattr(mod, "DOCS", tmp_path / "docs" / "figures")
    yield mod
    sys.modules.pop("_common", None)


def _tiny_figure(mod):
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    return mod.Figure("fig_tiny").finish(fig)


def test_figure_writes_under_out_and_not_docs(common, tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["fig_tiny.py"])
    png = _tiny_figure(common)
    assert png == tmp_path / "out" / "fig_tiny" / "fig_tiny.png" and png.is_file()
    assert (tmp_path / "out" / "fig_tiny" / "summary.json").is_file()
    assert not (tmp_path / "docs").exists()
    assert common.OUT == tmp_path / "out"
    assert Path(common.__file__).parent == EXAMPLES


@pytest.mark.parametrize("how", ["flag", "env"])
def test_figure_publishes_only_on_request(common, tmp_path, monkeypatch, how):
    monkeypatch.setattr(sys, "argv", ["fig_tiny.py", "--publish"] if how == "flag" else ["fig_tiny.py"])
    if how == "env":
        monkeypatch.setenv("FIG_PUBLISH", "1")
    _tiny_figure(common)
    assert (tmp_path / "docs" / "figures" / "fig_tiny.png").is_file()


def test_default_output_is_out_figures(monkeypatch):
    monkeypatch.syspath_prepend(str(EXAMPLES))
    monkeypatch.delenv("FIG_OUT", raising=False)
    sys.modules.pop("_common", None)
    try:
        mod = importlib.import_module("_common")
        assert mod.OUT == ROOT / "out" / "figures" and not mod.publish_requested([])
    finally:
        sys.modules.pop("_common", None)
