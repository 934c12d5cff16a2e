"""mkdocs hook: the site's home page is the repository's README.md, and links out of ``docs/`` become text.

``docs/index.md`` is a stub; on build its text is replaced by the README, whose links are relative to
the repository root: ``docs/x`` becomes ``x``. On every page a link to a file outside ``docs/``
(LICENSE, CITATION.cff, ``../examples/...``) becomes its text in code, since the site does not carry it;
the markdown files keep their links for readers of the repository.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
_LINK = re.compile(r"(!?)\[([^\]]*)\]\(([^)\s]+)\)")


def relink(markdown: str, page_dir: Path, root: Path = ROOT) -> str:
    """``markdown`` of a page in ``page_dir`` with its links into ``docs/`` made relative to ``page_dir``
    and those out of ``docs/`` replaced by their text."""
    docs = (root / "docs").resolve()

    def sub(match: re.Match) -> str:
        bang, text, target = match.groups()
        if re.match(r"[a-z]+:|#", target):
            return match.group(0)
        path, _, anchor = target.partition("#")
        dest = (page_dir / path).resolve()
        if docs not in dest.parents:
            return text if text.startswith("`") else f"`{text}`"
        if page_dir.resolve() == docs or docs in page_dir.resolve().parents:
            return match.group(0)
        return f"{bang}[{text}]({dest.relative_to(docs).as_posix()}{'#' + anchor if anchor else ''})"

    return _LINK.sub(sub, markdown)


def on_page_markdown(markdown: str, page, config, files) -> str:  # noqa: ARG001 (mkdocs hook signature)
    """The home page's stub replaced by the README; links out of ``docs/`` made text."""
    docs = Path(config["docs_dir"])
    if page.file.src_uri == "index.md":
        return relink((ROOT / "README.md").read_text(encoding="utf-8"), ROOT)
    return relink(markdown, (docs / page.file.src_uri).parent)
