"""The sweep's cache: one file per finished task, ``cache/<task hash>.nc``, used only when it proves to be
that task's result (task hash, content hash, time grid, seeds, finiteness); see the package doc."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import xarray as xr

from ..experiment import record_grid
from .._version import __version__
from ..config import Config
from ..errors import Diverged
from ..models.loading import is_entry, source_hash
from .keys import SIMULATION

# not numerics: the command line, figures, result writing, sweeps (the whole sweep/ package), pools, progress bars
_NOT_NUMERICS = {"cli.py", "plot.py", "sweep", "results.py", "parallel.py", "progress.py", "__main__.py"}
_CODE_HASH: str | None = None


def code_hash() -> str:
    """sha256 of the source of the modules that decide the numbers (every ``*.py`` of the package except
    cli, plot, sweep/, results, parallel, progress), in sorted path order; computed once per process."""
    global _CODE_HASH
    if _CODE_HASH is None:
        root = Path(__file__).resolve().parents[1]  # the package
        h = hashlib.sha256()
        for f in sorted(root.rglob("*.py")):
            rel = f.relative_to(root).as_posix()
            if rel in _NOT_NUMERICS or rel.split("/", 1)[0] in _NOT_NUMERICS:
                continue
            h.update(rel.encode("utf-8") + b"\0" + f.read_bytes() + b"\0")
        _CODE_HASH = h.hexdigest()
    return _CODE_HASH


def _model_source(config: Config | str) -> str:
    """sha256 of a custom model's module source ('' for a preset)."""
    if isinstance(config, str):
        import tomllib

        model = tomllib.loads(config).get("problem", {}).get("model", "")
    else:
        model = config.problem["model"]
    return source_hash(model) if is_entry(model) else ""


def task_hash(config: Config | str, kind: str) -> str:
    """sha256 of the normalised config TOML + package version + :func:`code_hash` + kind + the source of a
    custom model's module."""
    toml = config if isinstance(config, str) else config.to_toml()
    h = hashlib.sha256()
    for part in (toml, __version__, code_hash(), kind, _model_source(config)):
        h.update(part.encode("utf-8"))
        h.update(b"\0")
    return h.hexdigest()


def cache_path(out_dir: str | Path, config: Config | str, kind: str) -> Path:
    return Path(out_dir) / "cache" / f"{task_hash(config, kind)}.nc"


def content_hash(ds: xr.Dataset) -> str:
    """sha256 of a dataset's arrays (every variable and coordinate: name, dims, float64 values), the same
    before writing and after reading back a netCDF file."""
    h = hashlib.sha256()
    for name in sorted(map(str, ds.variables)):
        var = ds.variables[name]
        vals = np.asarray(var.values)
        if np.issubdtype(vals.dtype, np.number) or vals.dtype == bool:
            data = np.ascontiguousarray(vals, dtype="<f8").tobytes()
        else:
            data = json.dumps([str(v) for v in vals.ravel()]).encode("utf-8")
        h.update(json.dumps([name, list(var.dims), list(vals.shape)]).encode("utf-8") + b"\0" + data + b"\0")
    return h.hexdigest()


def write_cache(ds: xr.Dataset, path: str | Path, cfg: Config, kind: str) -> Path:
    """Write a task's result atomically, with the attributes ``task_sha256`` (:func:`task_hash`) and
    ``content_sha256`` (:func:`content_hash`) that :func:`cache_problem` checks."""
    from ..results import write_dataset

    out = ds.copy(deep=False)
    out.attrs = {**ds.attrs, "task_sha256": task_hash(cfg, kind), "content_sha256": content_hash(ds)}
    return write_dataset(out, path, cfg)


def cache_problem(ds: xr.Dataset, cfg: Config, kind: str) -> str:
    """Why a cache file's dataset is not this task's result ('' when it is): task hash, content hash,
    time grid, seeds, finiteness."""
    from ..results import check_finite

    if ds.attrs.get("task_sha256") != task_hash(cfg, kind):
        return "written for another task (or by an older version)"
    if ds.attrs.get("content_sha256") != content_hash(ds):
        return "its values do not match their hash (edited or corrupted)"
    want = record_grid(cfg).times(cfg.dynamics["t_max"])
    got = np.asarray(ds["time"].values, dtype=float) if "time" in ds.coords else np.zeros(0)
    if got.shape != want.shape or not np.allclose(got, want, rtol=1e-12, atol=1e-12 * max(1.0, float(want[-1]))):
        return f"its time grid ({got.size} times) is not the point's ({want.size} times up to t = {want[-1]:g})"
    if kind == SIMULATION and ds.sizes.get("seed") != cfg.simulation["seeds"]:
        return f"it has {ds.sizes.get('seed', 0)} seeds, the point {cfg.simulation['seeds']}"
    try:
        check_finite(ds, "it")
    except Diverged as e:
        return str(e)
    return ""


def read_cache(path: Path, cfg: Config, kind: str) -> tuple[xr.Dataset | None, str]:
    """``(the cached result, '')``, or ``(None, why it cannot be used)`` (``''`` when there is none);
    a file that cannot be used is removed, so that the recomputed result replaces it."""
    from ..results import read_dataset

    if not path.exists():
        return None, ""
    try:
        ds = read_dataset(path)
        why = cache_problem(ds, cfg, kind)
    except Exception as e:  # noqa: BLE001 - unreadable/corrupt cache file: recompute
        why = f"unreadable ({type(e).__name__})"
    if not why:
        return ds, ""
    try:
        path.unlink()
    except OSError:
        pass
    return None, why


def remove_temporaries(cache_files) -> None:
    """Temporary cache files of these tasks (``.<hash>.nc.*.tmp``, left by a task killed mid-write)."""
    for path in cache_files:
        for tmp in path.parent.glob(f".{path.name}.*.tmp"):
            try:
                tmp.unlink()
            except OSError:
                pass
