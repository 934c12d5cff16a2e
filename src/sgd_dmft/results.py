"""Result files (xarray / netCDF): attributes, atomic writing, reading (whole, lazily, within a cap), result sets read back.

* :func:`write_dataset` writes atomically (temporary file in the same directory, fsync, ``os.replace``),
  after :func:`check_finite`, with the configuration (``config_toml`` plus flattened ``problem.delta``
  style attributes), the package version, git revision, dependency versions and a UTC timestamp
  stored as global attributes.
* :func:`read_dataset` loads a file fully into memory (the file is closed afterwards); :func:`open_lazily`
  opens one without reading its variables (``show``), :func:`read_values` reads one within a size cap.
* :func:`read_result_set` reads the files of one run back, checked whole.

Re-exported here from their own modules (their earlier home was this one): the comparison of theory and
simulation, :func:`discrepancy` and its power (:mod:`sgd_dmft.comparison`); writing a result set
(:mod:`sgd_dmft.result_sets`); :func:`atomic_write` (:mod:`sgd_dmft.publish`).

Variables follow the simulators/solver: ``train_loss``, ``test_loss`` on ``time`` (plus ``seed`` for
simulations), ``M`` (``k``, ``kstar``), ``Q`` (``k``, ``k2``) and, for the theory, ``<var>_stderr``.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import xarray as xr

from ._version import __version__
from .algorithms import REGISTRY
from .curves import thinned_times
from .comparison import (  # noqa: F401  (re-exported: their home was here)
    DETECT_Z, REL_ACCURACY, REL_SE_MAX, SEED_DIM, TIME_DIM, discrepancy, power_statement, seeds_needed,
    sim_mean_stderr, theory_mean_stderr,
)
from .errors import NonFiniteResult  # noqa: F401  (re-exported: its home was here)
from .errors import SgdDmftDeprecationWarning
from .provenance import provenance_attrs
from .publish import atomic_write  # noqa: F401  (re-exported: its home was here)
from .result_sets import (  # noqa: F401  (re-exported: their home was here)
    RESULT_FILES, SET_ATTR, SWEEP_FILES, check_out_dir, new_set_id, write_result_set,
)


# --------------------------------------------------------------------------------------------
# Attributes
# --------------------------------------------------------------------------------------------
def _clean_value(v: Any) -> str | int | float | None:
    """Map an attribute value to str/int/float (netCDF-safe); ``None`` means drop it."""
    if v is None:
        return None
    if isinstance(v, (bool, np.bool_)):
        return int(bool(v))
    if isinstance(v, (int, np.integer)):
        return int(v)
    if isinstance(v, (float, np.floating)):
        return float(v)
    if isinstance(v, str):
        return v
    if isinstance(v, (Path,)):
        return str(v)
    try:
        return json.dumps(v, default=lambda o: o.tolist() if hasattr(o, "tolist") else str(o))
    except (TypeError, ValueError):
        return str(v)


def clean_attrs(attrs: Mapping[str, Any]) -> dict[str, str | int | float]:
    """Attributes with only str/int/float values (bools -> 0/1, None dropped, containers -> JSON)."""
    out: dict[str, str | int | float] = {}
    for k, v in attrs.items():
        cv = _clean_value(v)
        if cv is not None:
            out[str(k)] = cv
    return out


def config_attrs(config: Any) -> dict[str, str | int | float]:
    """Attributes describing a :class:`sgd_dmft.config.Config`: ``config_toml`` + ``section.key`` entries."""
    attrs: dict[str, Any] = {"config_toml": config.to_toml()}
    attrs.update(config.flat())
    return clean_attrs(attrs)


def __getattr__(name: str):
    # deprecated alias: reading a Config back is the config's job (results sits below config in the layers)
    if name == "config_from_dataset":
        import warnings

        from .config import config_from_dataset

        warnings.warn("sgd_dmft.results.config_from_dataset moved to sgd_dmft.config.config_from_dataset",
                      SgdDmftDeprecationWarning, stacklevel=2)
        return config_from_dataset
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# --------------------------------------------------------------------------------------------
# Reading / writing
# --------------------------------------------------------------------------------------------
KERNEL_POINTS = 501  # a result file keeps its two-time kernels on at most this many times per axis


def thin_kernels(ds: xr.Dataset, points: int = KERNEL_POINTS) -> xr.Dataset:
    """The dataset with its two-time kernels (dims ``time``, ``time2``) on every ``stride``-th time, on
    the dims ``kernel_time``, ``kernel_time2``, when there are more than ``points`` times (attr
    ``kernel_stride``); the curves keep every time. A long horizon's file then grows like T, not T^2
    (T = 2500: four 2501 x 2501 kernels were 200 MB)."""
    if "time2" not in ds.dims or ds.sizes["time2"] <= points:
        return ds
    idx = thinned_times(ds.sizes["time2"], points)
    kern = [v for v in ds.data_vars if "time2" in ds[v].dims]
    thin = ds[kern].isel(time=idx, time2=idx).rename({"time": "kernel_time", "time2": "kernel_time2"})
    out = ds.drop_vars(kern + ["time2"]).merge(thin)
    out.attrs["kernel_stride"] = int(idx[1] - idx[0])
    return out


def check_finite(ds: xr.Dataset, what: str = "result") -> None:
    """Raise :class:`NonFiniteResult` if any numeric data variable holds NaN or +-inf."""
    bad = []
    for name, da in ds.data_vars.items():
        if not np.issubdtype(da.dtype, np.number):
            continue
        vals = np.asarray(da.values)
        n_bad = int(np.size(vals) - np.count_nonzero(np.isfinite(vals)))
        if n_bad:
            bad.append(f"{name} ({n_bad} of {vals.size})")
    if bad:
        raise NonFiniteResult(f"{what} has non-finite values (NaN/inf) in: {', '.join(bad)}")


def write_dataset(ds: xr.Dataset, path: str | Path, config: Any = None, attrs: Mapping[str, Any] | None = None) -> Path:
    """Write ``ds`` to netCDF atomically, after checking that every value is finite.

    Global attributes: the dataset's own (cleaned), ``config_toml`` and ``section.key`` entries if
    ``config`` is given, extra ``attrs``, ``sgd_dmft_version``, ``git_revision`` and
    ``dependency_versions`` (:mod:`sgd_dmft.provenance`) and ``created`` (UTC ISO timestamp).
    """
    ds = _drop_online_train(ds)
    check_finite(ds, what=f"dataset for {Path(path).name}")
    a = dict(ds.attrs)
    if config is not None:
        a.update(config_attrs(config))
    if attrs:
        a.update(attrs)
    return write_netcdf(ds, path, a)


def write_netcdf(ds: xr.Dataset, path: str | Path, attrs: Mapping[str, Any]) -> Path:
    """``ds`` as netCDF (netcdf4), atomically (:func:`atomic_write`), with the global attributes ``attrs``
    followed by ``sgd_dmft_version``, the provenance (:mod:`sgd_dmft.provenance`) and ``created`` (UTC ISO
    timestamp); these and every variable's attributes cleaned (:func:`clean_attrs`). No finiteness check
    (:func:`write_dataset` makes it; a sweep's diverged points are NaN on purpose)."""
    out = ds.copy(deep=False)
    a = dict(attrs)
    a["sgd_dmft_version"] = __version__
    a.update(provenance_attrs())
    a["created"] = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    out.attrs = clean_attrs(a)
    for name in list(out.variables):
        out[name].attrs = clean_attrs(out[name].attrs)
    return atomic_write(path, lambda tmp: out.to_netcdf(tmp, mode="w", engine="netcdf4"))


def _drop_online_train(ds: xr.Dataset) -> xr.Dataset:
    """Online SGD has no training set: its all-NaN ``train_loss`` is dropped (attr ``train_loss_note``
    says so), the one NaN a written result may have had."""
    spec = REGISTRY.get(str(ds.attrs.get("algorithm")))
    one_pass = spec is not None and spec.law is None  # (no step-multiplier law: fresh samples, no training set)
    if "train_loss" in ds and one_pass and bool(ds["train_loss"].isnull().all()):
        ds = ds.drop_vars("train_loss")
        ds.attrs["train_loss_note"] = "dropped: no training set (online SGD)"
    return ds


def read_dataset(path: str | Path) -> xr.Dataset:
    """Load a netCDF file fully into memory and close it."""
    with xr.open_dataset(path, engine="netcdf4") as ds:
        return ds.load()


READ_MAX_BYTES = 256 * 2**20  # the largest variable read from a file that is only shown (show)


class TooLarge(OSError):
    """A variable of a file that is only shown is larger than ``READ_MAX_BYTES`` (nothing of it was read)."""


def _bytes(n: float) -> str:
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= size:
            return f"{n / size:.3g} {unit}"
    return f"{n:.0f} bytes"


def _too_big(path, name: str, shape, nbytes: float, max_bytes: float) -> TooLarge:
    return TooLarge(f"{path}: variable {name!r} of shape {tuple(shape)} holds {_bytes(nbytes)}, more than the "
                    f"{_bytes(max_bytes)} read from a result file that is shown (not a result of sgd-dmft)")


def open_lazily(path: str | Path, max_bytes: float | None = None) -> xr.Dataset:
    """Open a netCDF file without reading its variables (each is read on first use; close the dataset
    after). The dimension coordinates, which xarray reads at once, are refused (OSError) past
    ``max_bytes``, from the file's metadata before anything is read: a small compressed file can hold a
    variable of many GB (a 94 KB file with a 20000^2 variable took 6.8 GB when loaded whole)."""
    import netCDF4

    max_bytes = READ_MAX_BYTES if max_bytes is None else max_bytes
    with netCDF4.Dataset(path) as nc:
        for name, var in nc.variables.items():
            if tuple(var.dimensions) == (name,):
                nbytes = float(var.size) * getattr(var.dtype, "itemsize", 8)
                if nbytes > max_bytes:
                    raise _too_big(path, name, var.shape, nbytes, max_bytes)
    return xr.open_dataset(path, engine="netcdf4")


def read_values(da: xr.DataArray, max_bytes: float | None = None) -> np.ndarray:
    """The values of a (lazily opened) DataArray, refused (OSError) past ``max_bytes`` (default
    ``READ_MAX_BYTES``) before reading."""
    max_bytes = READ_MAX_BYTES if max_bytes is None else max_bytes
    nbytes = float(da.size) * da.dtype.itemsize
    if nbytes > max_bytes:
        raise _too_big(da.encoding.get("source", "file"), str(da.name), da.shape, nbytes, max_bytes)
    return np.asarray(da.values)


def json_safe(obj: Any) -> Any:
    """``obj`` with every non-finite float replaced by None (JSON ``null``): the convention of the files
    written here (e.g. ``max_z`` is null when the combined standard error is 0 and the gap is not)."""
    if isinstance(obj, Mapping):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if isinstance(obj, (float, np.floating)):
        return float(obj) if np.isfinite(obj) else None
    if isinstance(obj, np.integer):
        return int(obj)
    return obj


def write_json(obj: Any, path: str | Path) -> Path:
    """Write strict JSON atomically (non-finite numbers as null, :func:`json_safe`)."""
    text = json.dumps(json_safe(obj), indent=2, sort_keys=True, allow_nan=False) + "\n"

    def w(tmp):
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)

    return atomic_write(path, w)


def final_values(ds: xr.Dataset, var: str, max_bytes: float | None = None) -> tuple[float, float]:
    """``(value, stderr)`` of a scalar-per-time variable at the last time (sim: mean over seeds). Only the
    last time is read (a lazily opened file: :func:`open_lazily`), at most ``max_bytes`` of it."""
    if TIME_DIM not in ds[var].dims:
        raise ValueError(f"{var} has no '{TIME_DIM}' dimension (dims {ds[var].dims})")
    last = ds[[v for v in (var, f"{var}_stderr") if v in ds]].isel({TIME_DIM: -1})
    for v in last.data_vars:
        last[v] = (last[v].dims, read_values(last[v], math.inf if max_bytes is None else max_bytes))
    if SEED_DIM in last[var].dims:
        m, se = sim_mean_stderr(last, var)
    else:
        m, se = theory_mean_stderr(last, var)
    return float(m.values), float(se.values)


def read_result_set(directory: str | Path, lazy: bool = False) -> tuple[dict[Path, xr.Dataset], dict | None]:
    """``({path: dataset}, summary or None)`` of a result directory, checked whole: every file readable
    (one-line errors naming the file) and all from the same run (their ``result_set`` ids agree).
    ``lazy``: the datasets are opened, not loaded (:func:`open_lazily`; the caller closes them)."""
    d = Path(directory)
    ncs = [d / n for n in ("result.nc", "theory.nc", "simulation.nc") if (d / n).is_file()]
    if not ncs:
        raise FileNotFoundError(f"no result.nc / theory.nc / simulation.nc in {d}")
    datasets = {}
    for p in ncs:
        try:
            datasets[p] = open_lazily(p) if lazy else read_dataset(p)
        except Exception as e:  # noqa: BLE001 - HDF / netCDF errors of a truncated file
            if isinstance(e, TooLarge):
                raise
            for ds in datasets.values():
                ds.close()
            raise OSError(f"cannot read {p}: {' '.join(str(e).split())} (truncated or not a netCDF file)") from None
    summary = None
    summ = d / "summary.json"
    if summ.is_file():
        try:
            summary = json.loads(summ.read_text(encoding="utf-8"))
            if not isinstance(summary, dict) or not isinstance(summary.get("discrepancy", {}), dict):
                raise ValueError("not a summary object")
        except (ValueError, UnicodeDecodeError) as e:
            raise OSError(f"cannot read {summ}: corrupt summary ({' '.join(str(e).split())})") from None
    ids = {p.name: ds.attrs.get(SET_ATTR) for p, ds in datasets.items()}
    if summary is not None:
        ids["summary.json"] = summary.get(SET_ATTR)
    known = {v for v in ids.values() if v is not None}
    if len(known) > 1 or (known and None in ids.values()):
        for ds in datasets.values():
            ds.close()
        raise OSError(f"the files of {d} come from different runs ({', '.join(f'{k}: {v}' for k, v in ids.items())}): "
                      f"a mixed result set; rerun the command into a fresh --out")
    return datasets, summary
