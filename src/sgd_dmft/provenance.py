"""Provenance of a result: the git revision of the package's source checkout and the versions of the
numerical dependencies, written into every result file's attributes (``git_revision``,
``dependency_versions``) beside ``sgd_dmft_version``.

No subprocess: the revision is read from ``.git`` directly (``HEAD``, loose refs, ``packed-refs``,
worktrees' ``gitdir:`` files). Both values are cached and never raise: outside a checkout (an
installed wheel) the revision is ``"unknown"``.
"""

from __future__ import annotations

import functools
import re
from importlib import metadata
from pathlib import Path

DEPENDENCIES = ("numpy", "scipy", "xarray", "numba")
UNKNOWN = "unknown"
_SHA = re.compile(r"^[0-9a-f]{40}([0-9a-f]{24})?$")


def _checkout_root(pkg_dir: Path) -> Path | None:
    """The source checkout holding this package (``<root>/src/sgd_dmft``, ``<root>/pyproject.toml``,
    ``<root>/.git``), or None: a ``.git`` further up (a venv inside some other repository) is not ours."""
    root = pkg_dir.parent.parent
    if pkg_dir.parent.name == "src" and (root / "pyproject.toml").is_file() and (root / ".git").exists():
        return root
    return None


def _git_dirs(dotgit: Path) -> tuple[Path, Path]:
    """``(git dir, common dir)``: a worktree's ``.git`` file points to its own git dir, whose refs
    live in the common dir."""
    gitdir = dotgit
    if dotgit.is_file():
        line = dotgit.read_text(encoding="utf-8").strip()
        if not line.startswith("gitdir:"):
            raise ValueError("not a gitdir file")
        gitdir = (dotgit.parent / line[len("gitdir:"):].strip()).resolve()
    common = gitdir
    if (gitdir / "commondir").is_file():
        common = (gitdir / (gitdir / "commondir").read_text(encoding="utf-8").strip()).resolve()
    return gitdir, common


def _resolve_ref(ref: str, gitdir: Path, common: Path) -> str | None:
    for base in (gitdir, common):
        p = base / ref
        if p.is_file():
            sha = p.read_text(encoding="utf-8").strip()
            return sha if _SHA.match(sha) else None
    packed = common / "packed-refs"
    if packed.is_file():
        for line in packed.read_text(encoding="utf-8").splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[1] == ref and _SHA.match(parts[0]):
                return parts[0]
    return None


def read_revision(root: Path) -> str:
    """The commit checked out in the git checkout ``root`` (``"unknown"`` if it cannot be read)."""
    try:
        gitdir, common = _git_dirs(root / ".git")
        head = (gitdir / "HEAD").read_text(encoding="utf-8").strip()
        if head.startswith("ref:"):
            return _resolve_ref(head[4:].strip(), gitdir, common) or UNKNOWN
        return head if _SHA.match(head) else UNKNOWN
    except (OSError, ValueError, UnicodeDecodeError):
        return UNKNOWN


@functools.lru_cache(maxsize=1)
def git_revision() -> str:
    """The git commit of the package's source checkout, ``"unknown"`` when it is not one (cached)."""
    try:
        root = _checkout_root(Path(__file__).resolve().parent)
    except OSError:
        return UNKNOWN
    return UNKNOWN if root is None else read_revision(root)


@functools.lru_cache(maxsize=1)
def dependency_versions() -> str:
    """``"numpy 2.1.3, scipy 1.14.1, xarray 2024.10.0, numba 0.60.0"`` (``?`` for a missing one; cached)."""
    out = []
    for name in DEPENDENCIES:
        try:
            v = metadata.version(name)
        except Exception:  # noqa: BLE001 - PackageNotFoundError or a broken installation
            v = "?"
        out.append(f"{name} {v}")
    return ", ".join(out)


def provenance_attrs() -> dict[str, str]:
    """``{"git_revision": ..., "dependency_versions": ...}`` for a result's attributes."""
    return {"git_revision": git_revision(), "dependency_versions": dependency_versions()}
