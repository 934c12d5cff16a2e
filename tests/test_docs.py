"""The reference site (mkdocs.yml, docs/, the API pages built from the docstrings) builds in strict mode:
any warning (a broken link, a docstring mkdocstrings cannot render, a page outside the nav) fails."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import sgd_dmft

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("sgd_dmft_docs_hooks", ROOT / "docs" / "hooks.py")
hooks = importlib.util.module_from_spec(_spec)  # docs/hooks.py, the mkdocs hook
_spec.loader.exec_module(hooks)


def test_site_builds_strict_without_warnings(tmp_path):
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1", "PYTHONPATH": str(ROOT / "src")}
    proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(ROOT / "mkdocs.yml"),
                           "-d", str(tmp_path / "site")], capture_output=True, text=True, env=env, timeout=120)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log
    assert not re.search(r"^(WARNING|ERROR)\b", log, re.M), log
    home = (tmp_path / "site" / "index.html").read_text()
    assert "Exact high-dimensional learning curves" in home  # the README is the home page
    api = (tmp_path / "site" / "api" / "solve" / "index.html").read_text()
    assert "DMFT learning curves of the recursion" in api  # solve's docstring, rendered


def test_api_pages_name_every_public_name():
    pages = "\n".join(p.read_text() for p in (ROOT / "docs" / "api").glob("*.md"))
    documented = set(re.findall(r"^::: sgd_dmft\.[\w.]*?(\w+)$", pages, re.M))
    modules = set(re.findall(r"^::: sgd_dmft\.(\w+)$", pages, re.M))  # whole modules: laws, errors, ...
    missing = [n for n in sgd_dmft.__all__ if n != "__version__" and n not in documented and n not in modules
               and getattr(sgd_dmft, n).__module__.split(".")[1] not in modules]
    assert not missing, f"public names without an API entry in docs/api/: {missing}"


def test_readme_links_are_relinked_for_the_site():
    md = "[a](docs/theory.md#x) ![f](docs/figures/a.png) [b](CITATION.cff) [`c`](examples/x.py) [w](https://e.org)"
    out = hooks.relink(md, ROOT)
    assert out == "[a](theory.md#x) ![f](figures/a.png) `b` `c` [w](https://e.org)"
    page = "[t](theory.md) [e](../examples/fig_pytorch.py)"
    assert hooks.relink(page, ROOT / "docs") == "[t](theory.md) `e`"
