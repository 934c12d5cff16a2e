"""A researcher's first hour (issue 21): install lines that work from a clone, LICENSE, CITATION.cff,
a BibTeX entry in the README."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path


ROOT = Path(__file__).resolve().parents[1]
ARXIV = "2601.21093"


def _docs() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), *sorted((ROOT / "examples").glob("*.py"))]


def test_install_lines_work_from_a_clone():
    # `pip install 'sgd-dmft[torch]'` needs a public index the package is not on
    broken = re.compile(r"pip install\s+['\"]?sgd[-_]dmft\b")
    bad = [f"{p.relative_to(ROOT)}:{i}" for p in _docs() for i, line in enumerate(p.read_text().splitlines(), 1)
           if broken.search(line)]
    assert not bad, f"install lines that need a public index: {bad}"
    readme = (ROOT / "README.md").read_text()
    assert "pip install -e '.[torch]'" in readme and "pip install -e '.[torch]'" in (ROOT / "docs/pytorch.md").read_text()
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    for extra in re.findall(r"pip install -e '\.\[(\w+)\]'", readme):
        assert extra in extras, f"README installs the extra {extra!r}, pyproject.toml has {sorted(extras)}"


def test_license_is_the_mit_license_of_pyproject():
    text = (ROOT / "LICENSE").read_text()
    assert text.startswith("MIT License") and "the sgd-dmft authors" in text
    assert tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["license"] == "MIT"


def _load_cff(text: str) -> dict:
    try:
        import yaml
    except ImportError:  # light check: top-level keys only
        return {m.group(1): m.group(2).strip().strip('"') for m in re.finditer(r"^([\w-]+):\s*(.*)$", text, re.M)}
    data = yaml.safe_load(text)
    assert isinstance(data, dict)
    return data


def test_citation_cff_parses_and_cites_the_paper():
    text = (ROOT / "CITATION.cff").read_text()
    cff = _load_cff(text)
    for key in ("cff-version", "message", "title", "authors", "version", "license", "references"):
        assert key in cff, f"CITATION.cff lacks {key}"
    assert str(cff["license"]) == "MIT"
    proj = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert str(cff["version"]) == proj["version"]
    if isinstance(cff["references"], list):
        ref = cff["references"][0]
        assert {a["family-names"] for a in ref["authors"]} == {"Fan", "Wang"} and ref["year"] == 2026
        assert "multi-pass SGD in multi-index models" in ref["title"]
    assert ARXIV in text


def test_readme_has_a_bibtex_entry_for_the_paper():
    readme = (ROOT / "README.md").read_text()
    m = re.search(r"```bibtex\n(.*?)```", readme, re.S)
    assert m, "no ```bibtex block in README.md"
    entry = m.group(1)
    assert re.match(r"@\w+\{\w+,", entry.strip()) and entry.count("{") == entry.count("}")
    assert ARXIV in entry and "2026" in entry and "Fan" in entry and "Wang" in entry


def test_readme_links_license_and_citation():
    readme = (ROOT / "README.md").read_text()
    assert "(LICENSE)" in readme and "(CITATION.cff)" in readme
