"""The sweep's results gathered into one Dataset whose swept keys are dimensions (a diverged point NaN,
flagged in ``diverged``), and its files: ``sweep.nc`` (+ ``sweep_sim.nc``) and ``sweep.png`` published as
one set."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import xarray as xr

from .._version import __version__
from ..config import Config
from .keys import Grid


def _with_index_coords(ds: xr.Dataset) -> xr.Dataset:
    missing = {d: np.arange(n) for d, n in ds.sizes.items() if d not in ds.coords}
    return ds.assign_coords(missing) if missing else ds


def gather(grid: Grid, results: Sequence[xr.Dataset | str], kind: str) -> xr.Dataset:
    """One Dataset with the swept keys as leading dims; a str entry is a divergence message."""
    ok = [(i, _with_index_coords(r)) for i, r in enumerate(results) if isinstance(r, xr.Dataset)]
    shape = grid.shape
    coords: dict[str, Any] = {}
    for dim, key, vals in zip(grid.dims, grid.keys, grid.coords):
        coords[dim] = xr.Variable((dim,), np.asarray(vals), attrs={"config_key": key})
    data: dict[str, Any] = {}
    if ok:
        aligned = xr.align(*[d for _, d in ok], join="outer")
        longest = max(d.sizes.get("time", 0) for _, d in ok)
        if aligned[0].sizes.get("time", 0) != longest:
            raise ValueError(f"{kind} sweep: the grid points' time grids do not align (union has "
                             f"{aligned[0].sizes['time']} points, longest run {longest}); is dt swept?")
        names: list[str] = []
        for d in aligned:
            names += [v for v in d.data_vars if v not in names]
        for c in aligned[0].coords:
            coords[c] = aligned[0][c].variable
        for v in names:
            proto = next(d[v] for d in aligned if v in d)
            arr = np.full(shape + proto.shape, np.nan)
            for (i, _), d in zip(ok, aligned):
                if v in d:
                    arr[grid.points[i]] = np.asarray(d[v].transpose(*proto.dims).values, dtype=float)
            data[v] = xr.Variable(tuple(grid.dims) + proto.dims, arr, attrs=dict(proto.attrs))
        wall = np.full(shape, np.nan)
        for i, d in ok:
            wall[grid.points[i]] = float(d.attrs.get("wall_time_s", np.nan))
        data["wall_time_s"] = xr.Variable(tuple(grid.dims), wall, attrs={"description": "wall time of the task (s)"})
    div = np.zeros(shape, dtype=np.int8)
    msgs = []
    for i, r in enumerate(results):
        if isinstance(r, str):
            div[grid.points[i]] = 1
            pt = {dim: _jsonable(grid.coords[j][grid.points[i][j]]) for j, dim in enumerate(grid.dims)}
            msgs.append({"point": pt, "message": r})
    data["diverged"] = xr.Variable(tuple(grid.dims), div,
                                   attrs={"description": "1 where the run diverged (values NaN there)"})
    out = xr.Dataset(data, coords=coords)
    out.attrs.update(
        kind=f"{kind}-sweep",
        sweep_keys=json.dumps(grid.keys),
        sweep_dims=json.dumps(grid.dims),
        n_points=len(results),
        n_diverged=len(msgs),
        diverged_points=json.dumps(msgs),
        sgd_dmft_version=__version__,
    )
    return out


def _jsonable(v: Any) -> Any:
    return v.item() if hasattr(v, "item") else v


def write_sweep(ds: xr.Dataset, path: Path, config: Config) -> Path:
    """A gathered sweep Dataset as netCDF, atomically, with the config and provenance attributes."""
    from ..results import write_netcdf

    return write_netcdf(ds, path, {**ds.attrs, "config_toml": config.to_toml()})


def plot_sweep(theory: xr.Dataset, sim: xr.Dataset | None, path: str | Path, var: str = "test_loss") -> Path:
    """``sweep.png``: ``var`` vs t, one curve per grid point; its final value vs the first swept key; the
    theory-vs-simulation ``max_t |z|`` per point when simulations were run (:func:`sgd_dmft.plot.sweep_figure`)."""
    from .. import plot

    return plot.plot_sweep(theory, sim, path, var)


def publish_sweep(out: Path, config: Config, theory: xr.Dataset, sim: xr.Dataset | None) -> None:
    """sweep.nc (+ sweep_sim.nc) and sweep.png published as one set (results.write_result_set): a
    failed plot leaves the previous set whole; the cache is kept."""
    from ..results import SWEEP_FILES, write_result_set

    writers = {"sweep.nc": lambda p: write_sweep(theory, p, config)}
    if sim is not None:
        writers["sweep_sim.nc"] = lambda p: write_sweep(sim, p, config)
    writers["sweep.png"] = lambda p: plot_sweep(theory, sim, p)
    write_result_set(out, writers, owned=SWEEP_FILES)


def load_sweep(out_dir: str | Path) -> tuple[xr.Dataset, xr.Dataset | None]:
    """``(theory, simulation or None)`` from a sweep directory."""
    from ..results import read_dataset

    out = Path(out_dir)
    sim = out / "sweep_sim.nc"
    return read_dataset(out / "sweep.nc"), (read_dataset(sim) if sim.exists() else None)
