"""Every written result names the code that made it: ``git_revision`` (of the source checkout, read
from .git without a subprocess) and ``dependency_versions`` beside ``sgd_dmft_version``."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from click.testing import CliRunner

import sgd_dmft
from sgd_dmft import provenance
from sgd_dmft.cli import main
from sgd_dmft.results import read_dataset, write_dataset

SHA1, SHA2 = "1" * 40, "abcdef0123456789abcdef0123456789abcdef01"
TINY = """
[problem]
model = "linear"
delta = 2.0
ridge = 0.1
[dynamics]
algorithm = "sgd"
gamma = 0.5
t_max = 0.3
dt = 0.1
[simulation]
d = 40
seeds = 2
"""


def _repo(tmp_path: Path, head: str, refs: dict[str, str] | None = None, packed: str | None = None) -> Path:
    git = tmp_path / "repo" / ".git"
    git.mkdir(parents=True)
    (git / "HEAD").write_text(head + "\n")
    for ref, sha in (refs or {}).items():
        (git / ref).parent.mkdir(parents=True, exist_ok=True)
        (git / ref).write_text(sha + "\n")
    if packed is not None:
        (git / "packed-refs").write_text(packed)
    return git.parent


def test_read_revision_loose_packed_detached_and_worktree(tmp_path):
    assert provenance.read_revision(_repo(tmp_path / "a", "ref: refs/heads/main", {"refs/heads/main": SHA1})) == SHA1
    packed = f"# pack-refs with: peeled fully-peeled sorted\n{SHA1} refs/heads/other\n{SHA2} refs/heads/main\n"
    assert provenance.read_revision(_repo(tmp_path / "b", "ref: refs/heads/main", packed=packed)) == SHA2
    assert provenance.read_revision(_repo(tmp_path / "c", SHA2)) == SHA2
    # a worktree: .git is a file naming its git dir, whose refs live in the common dir
    main_repo = _repo(tmp_path / "d", "ref: refs/heads/main", {"refs/heads/feature": SHA2})
    wt_git = main_repo / ".git" / "worktrees" / "wt"
    wt_git.mkdir(parents=True)
    (wt_git / "HEAD").write_text("ref: refs/heads/feature\n")
    (wt_git / "commondir").write_text("../..\n")
    wt = tmp_path / "wt"
    wt.mkdir()
    (wt / ".git").write_text(f"gitdir: {wt_git}\n")
    assert provenance.read_revision(wt) == SHA2


@pytest.mark.parametrize("case", ["no .git", "dangling ref", "garbage HEAD", "bad gitdir file"])
def test_read_revision_never_fails(tmp_path, case):
    if case == "no .git":
        root = tmp_path
    elif case == "dangling ref":
        root = _repo(tmp_path, "ref: refs/heads/gone")
    elif case == "garbage HEAD":
        root = _repo(tmp_path, "\x00\xffnot a sha")
    else:
        root = tmp_path / "w"
        root.mkdir()
        (root / ".git").write_text("this is not a gitdir line\n")
    assert provenance.read_revision(root) == "unknown"


def test_git_revision_of_this_checkout_and_unknown_outside_one(monkeypatch, tmp_path):
    root = provenance._checkout_root(Path(provenance.__file__).resolve().parent)
    rev = provenance.git_revision()
    if root is None:
        assert rev == "unknown"
    elif shutil.which("git"):
        want = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                              timeout=30).stdout.strip()
        assert rev == want
    # an installed copy (site-packages/sgd_dmft) is no checkout, even inside some other repository
    site = _repo(tmp_path, SHA1) / "lib" / "site-packages" / "sgd_dmft"
    site.mkdir(parents=True)
    assert provenance._checkout_root(site) is None


def test_dependency_versions_name_the_installed_ones():
    text = provenance.dependency_versions()
    assert text.split(", ")[0] == f"numpy {np.__version__}"
    assert f"xarray {xr.__version__}" in text and "scipy " in text and "numba " in text and "?" not in text


def _check(ds: xr.Dataset) -> None:
    assert ds.attrs["sgd_dmft_version"] == sgd_dmft.__version__
    assert ds.attrs["git_revision"] == provenance.git_revision()
    assert ds.attrs["dependency_versions"] == provenance.dependency_versions()


def test_written_results_carry_revision_and_versions(tmp_path):
    ds = xr.Dataset({"test_loss": ("time", np.array([1.0, 0.5]))}, coords={"time": [0.0, 1.0]})
    _check(read_dataset(write_dataset(ds, tmp_path / "x.nc")))
    p = tmp_path / "c.toml"
    p.write_text(TINY)
    r = CliRunner().invoke(main, ["simulate", str(p), "--out", str(tmp_path / "sim"), "--no-progress"])
    assert r.exit_code == 0, r.output
    _check(read_dataset(tmp_path / "sim" / "result.nc"))


def test_written_sweep_carries_revision_and_versions(tmp_path):
    from sgd_dmft import sweep
    from sgd_dmft.config import parse_config

    cfg = parse_config({"problem": {"model": "linear"}})
    ds = xr.Dataset({"test_loss": (("gamma", "time"), np.ones((2, 3)))},
                    coords={"gamma": [0.2, 0.5], "time": [0.0, 0.1, 0.2]}, attrs={"sgd_dmft_version": "0.1.0"})
    _check(read_dataset(sweep.write_sweep(ds, tmp_path / "sweep.nc", cfg)))
