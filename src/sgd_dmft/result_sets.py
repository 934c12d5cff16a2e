"""Result sets: the files of one run in one output directory, checked before a run and replaced as a
whole (written into a staging directory, then exchanged in: :mod:`sgd_dmft.publish`).

Re-exported by :mod:`sgd_dmft.results` (the names' earlier home); :func:`sgd_dmft.results.read_result_set`
reads a set back.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any, Mapping, Sequence

from . import publish
from .errors import ConfigError

__all__ = ["RESULT_FILES", "SWEEP_FILES", "SET_ATTR", "new_set_id", "check_out_dir", "write_result_set"]

RESULT_FILES = ("result.nc", "theory.nc", "simulation.nc", "figure.png", "summary.json")
SWEEP_FILES = ("sweep.nc", "sweep_sim.nc", "sweep.png")  # a sweep's set (its cache is kept beside)
SET_ATTR = "result_set"  # the id shared by the files of one result set (netCDF attribute, JSON key)


def new_set_id() -> str:
    """A fresh result-set id (random hex)."""
    import uuid

    return uuid.uuid4().hex


def check_out_dir(out: str | Path, names: Sequence[str] = RESULT_FILES, keep_dirs: bool = False) -> Path:
    """The output directory, checked before anything runs: not empty, not a file, its nearest existing
    ancestor a writable directory, and none of ``names`` inside it a directory (unless ``keep_dirs``
    allows ``cache``-like subdirectories). Raises ConfigError (key ``--out``, CLI exit 2)."""
    if not str(out).strip():
        raise ConfigError("--out '': must name a directory (e.g. --out results/run1)", key="--out")
    path = Path(os.path.abspath(Path(out).expanduser()))  # ".." resolved: the set goes beside, not inside
    if path.exists() and not path.is_dir():
        raise ConfigError(f"--out '{out}': exists and is not a directory", key="--out")
    anc = path
    while not anc.exists():
        anc = anc.parent
    if not anc.is_dir():
        raise ConfigError(f"--out '{out}': '{anc}' is a file, not a directory", key="--out")
    if not os.access(anc, os.W_OK | os.X_OK):
        raise ConfigError(f"--out '{out}': '{anc}' is not writable", key="--out")
    for name in names:
        p = path / name
        if p.is_dir() and not (keep_dirs and "." not in name):
            raise ConfigError(f"--out '{out}': '{p}' is a directory where the file {name} goes; remove it or "
                              f"choose another --out", key="--out")
    publish.clean_stale(path)  # what a run killed while publishing left beside it
    return path


def write_result_set(out: str | Path, writers: Mapping[str, Any], owned: Sequence[str] = RESULT_FILES,
                     step=None) -> dict[str, Path]:
    """Write a result set: ``writers[name](path)`` writes file ``name``; all are written into a staging
    directory beside ``out``, which then replaces ``out`` in one atomic exchange (publish.py: other
    entries of ``out`` are kept, files named in ``owned`` that this set lacks are dropped). On any error
    (or Ctrl-C) before that, the exchange or its fallback included, the entries of ``out`` carried into the
    staging directory are moved back, the staging directory is removed and ``out`` is left as it was (where
    moving them back fails, they stay in the staging directory, named in a note on the error); a Ctrl-C or
    SIGTERM during the exchange is delivered after it, with ``published`` set on the exception (as on one
    that lands while the old set is removed after it). What killed runs left beside ``out`` is cleaned
    first. Returns ``{name: final path}``."""
    out = check_out_dir(out, tuple(writers))
    if out.is_symlink():  # publish into the directory it points to (the link stays)
        out = out.resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    stage = publish.stage_dir(out)
    written = {name: out / name for name in writers}
    published = False
    try:
        try:
            os.chmod(stage, 0o777 & ~publish.current_umask())
            for name, writer in writers.items():
                writer(stage / name)
            publish.fsync_dir(stage)
            with publish.held_signals():
                publish.publish(stage, out, set(owned) | set(writers), step)
                published = True
                publish.fsync_dir(out.parent)
        finally:  # after the exchange: the old set (can take a while); kept while it holds entries of out
            if not publish.holds_carried(stage):  # (moving them back failed: the error's note says where)
                shutil.rmtree(stage, ignore_errors=True)
    except BaseException as exc:  # a Ctrl-C in the removal above comes after publication too
        if published:
            exc.published = out  # the new set is complete in out: the CLI says so
        raise
    return written
