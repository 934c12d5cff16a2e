"""Result files (xarray / netCDF) and theory-vs-simulation comparison.

* :func:`write_dataset` writes atomically (temporary file in the same directory, fsync, ``os.replace``),
  after :func:`check_finite`, with the configuration (``config_toml`` plus flattened ``problem.delta``
  style attributes), the package version, git revision, dependency versions and a UTC timestamp
  stored as global attributes.
* :func:`read_dataset` loads a file fully into memory (the file is closed afterwards); :func:`open_lazily`
  opens one without reading its variables (``show``), :func:`read_values` reads one within a size cap.
* :func:`discrepancy` measures the largest gap between a theory curve and the simulation mean, in
  units of the combined standard error.

Variables follow the simulators/solver: ``train_loss``, ``test_loss`` on ``time`` (plus ``seed`` for
simulations), ``M`` (``k``, ``kstar``), ``Q`` (``k``, ``k2``) and, for the theory, ``<var>_stderr``.
"""

from __future__ import annotations

import warnings

import datetime as _dt
import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import xarray as xr

from ._version import __version__
from .curves import mean_stderr_da
from .errors import NonFiniteResult  # noqa: F401  (re-exported: its home was here)
from .provenance import provenance_attrs

SEED_DIM = "seed"
TIME_DIM = "time"
REL_SE_MAX = 0.5  # a theory standard error above this fraction of the curve makes its z meaningless


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
                      DeprecationWarning, stacklevel=2)
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
    n = ds.sizes["time2"]
    stride = -(-(n - 1) // (points - 1))
    idx = np.arange(0, n, stride)
    kern = [v for v in ds.data_vars if "time2" in ds[v].dims]
    thin = ds[kern].isel(time=idx, time2=idx).rename({"time": "kernel_time", "time2": "kernel_time2"})
    out = ds.drop_vars(kern + ["time2"]).merge(thin)
    out.attrs["kernel_stride"] = int(stride)
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


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _umask() -> int:
    old = os.umask(0o022)
    os.umask(old)
    return old


def atomic_write(path: str | Path, writer) -> Path:
    """Call ``writer(tmp_path)`` on a temporary file next to ``path``, fsync it, then ``os.replace``.

    On any exception the temporary file is removed and an existing ``path`` is left untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        writer(tmp)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the file the usual permissions
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    _fsync_dir(path.parent)
    return path


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
    if "train_loss" in ds and ds.attrs.get("algorithm") == "online" and bool(ds["train_loss"].isnull().all()):
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


# --------------------------------------------------------------------------------------------
# Statistics and comparison
# --------------------------------------------------------------------------------------------
def sim_mean_stderr(sim: xr.Dataset, var: str) -> tuple[xr.DataArray, xr.DataArray]:
    """Mean over seeds and its standard error ``std(ddof=1) / sqrt(seeds)`` (0 with one seed)."""
    return mean_stderr_da(sim[var], SEED_DIM)


def theory_mean_stderr(theory: xr.Dataset, var: str) -> tuple[xr.DataArray, xr.DataArray]:
    """Theory curve and its standard error (``<var>_stderr`` if present, else 0)."""
    da = theory[var]
    if SEED_DIM in da.dims:  # tolerate a theory with replicas left in
        return sim_mean_stderr(theory, var)
    se = theory.get(f"{var}_stderr")
    return da, (xr.zeros_like(da) if se is None else se)


def _on_sim_times(theory: xr.Dataset, sim: xr.Dataset, var: str):
    """``(theory, theory s.e., sim mean, sim s.e., note)`` on the simulation's times inside the theory's
    range: the theory linearly interpolated when the grids differ (``note`` says so, else None)."""
    tm, tse = theory_mean_stderr(theory, var)
    sm, sse = sim_mean_stderr(sim, var)
    t_sim = np.asarray(sim[TIME_DIM].values, dtype=float)
    t_th = np.asarray(theory[TIME_DIM].values, dtype=float)
    tol = 1e-9 * max(1.0, float(np.max(np.abs(t_th))))
    keep = (t_sim >= t_th.min() - tol) & (t_sim <= t_th.max() + tol)
    if not keep.any():
        raise ValueError(f"discrepancy({var!r}): theory and simulation time ranges do not overlap")
    times = np.clip(t_sim[keep], t_th.min(), t_th.max())
    sm = sm.isel({TIME_DIM: np.nonzero(keep)[0]})
    sse = sse.isel({TIME_DIM: np.nonzero(keep)[0]})
    note = None
    if len(t_th) == len(times) and np.allclose(t_th, times, rtol=0, atol=tol):
        tm_i, tse_i = tm, tse
    else:
        tm_i = tm.interp({TIME_DIM: times})
        tse_i = tse.interp({TIME_DIM: times})
        note = (f"theory ({len(t_th)} times) linearly interpolated onto the simulation's {len(times)} times"
                + (f"; {int((~keep).sum())} simulation times outside the theory's range [{t_th.min():g}, "
                   f"{t_th.max():g}] not compared" if not keep.all() else ""))
    tm_i = tm_i.assign_coords({TIME_DIM: sm[TIME_DIM].values})
    tse_i = tse_i.assign_coords({TIME_DIM: sm[TIME_DIM].values})
    return tm_i, tse_i, sm, sse, note


def _flat(da: xr.DataArray, like: xr.DataArray) -> np.ndarray:
    """``da`` broadcast against ``like``, as a ``(times, entries)`` float array."""
    b = xr.broadcast(da, like)[0].transpose(TIME_DIM, ...)
    return np.asarray(b.values, dtype=float).reshape(b.sizes[TIME_DIM], -1)


def discrepancy(theory: xr.Dataset, sim: xr.Dataset, var: str) -> dict[str, float]:
    """Largest gap between theory and simulation mean, in units of the combined standard error.

    ``z(t) = |theory(t) - mean_sim(t)| / sqrt(se_theory(t)^2 + se_sim(t)^2)``, maximised over the
    simulation's times inside the theory's time range and over any extra dims (e.g. ``k``, ``kstar``
    of ``M``). A theory on another grid (your own curves, :func:`sgd_dmft.from_arrays`) is linearly
    interpolated onto the simulation's times: ``interpolated`` is then True and ``note`` says so.
    Returns ``{"max_z", "at_time", "max_abs"}`` (``max_abs`` = largest absolute gap), plus ``z_t`` and
    ``df``: the standard errors are themselves estimated (from ``seeds`` runs and ``replicas``
    replicas), so each ``z`` is Student-t distributed with Welch-Satterthwaite degrees of freedom
    ``df``; ``z_t`` is the normal-equivalent of the most significant time (``Phi^-1(1 - p/2)`` of its
    two-sided t p-value). With few seeds a large ``max_z`` can be a small ``z_t`` (4 seeds: z = 9.7 is
    z_t = 3.0). A zero combined error gives ``z = inf`` for a nonzero gap (written ``null`` in JSON).
    Also ``theory_rel_se``, ``reliable`` (:func:`_reliability`) and the power of the comparison
    (:func:`_power`): ``detectable``, the smallest gap these seeds would show at 3 combined s.e.;
    :func:`seeds_needed` says how many seeds a given gap needs.
    """
    tm_i, tse_i, sm, sse, note = _on_sim_times(theory, sim, var)
    gap = np.abs(tm_i - sm)
    se = np.sqrt(tse_i**2 + sse**2)
    gap, se = xr.broadcast(gap, se)
    g = np.asarray(gap.transpose(TIME_DIM, ...).values, dtype=float).reshape(sm.sizes[TIME_DIM], -1)
    e = np.asarray(se.transpose(TIME_DIM, ...).values, dtype=float).reshape(g.shape)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(e > 0, g / np.where(e > 0, e, 1.0), np.where(g > 0, np.inf, 0.0))
    per_t = z.max(axis=1)
    i = int(np.argmax(per_t))
    # Student-t: Welch-Satterthwaite degrees of freedom of the combined variance, per element
    n_seeds = sim.sizes.get(SEED_DIM, 1)
    n_reps = int(theory.attrs.get("replicas", 0)) if float(np.max(np.asarray(tse_i.values))) > 0 else 0
    vs = _flat(sse**2, gap)
    vt = e**2 - vs
    with np.errstate(divide="ignore", invalid="ignore"):
        den = (vs**2 / max(n_seeds - 1, 1) if n_seeds > 1 else 0.0) + (vt**2 / (n_reps - 1) if n_reps > 1 else 0.0)
        df = np.where(den > 0, e**4 / np.where(den > 0, den, 1.0), np.inf)
    from scipy import stats

    with np.errstate(invalid="ignore"):
        logp = np.where(np.isfinite(z), stats.t.logsf(z, np.where(np.isfinite(df), df, 1e12)), -np.inf)
    j = np.unravel_index(int(np.argmin(logp)), logp.shape)
    z_t = float(stats.norm.isf(np.exp(logp[j]))) if np.isfinite(logp[j]) else float("inf")
    out = {"max_z": float(per_t[i]), "at_time": float(sm[TIME_DIM].values[i]), "max_abs": float(g.max()),
           "z_t": z_t, "df": float(df[j]), **_reliability(tm_i, tse_i, sm, var, _dt_error_on(theory, sm, var)),
           **_power(np.sqrt(np.maximum(vt, 0.0)), np.sqrt(vs), n_seeds), "interpolated": note is not None}
    if note is not None:
        out["note"] = note
    return out


DETECT_Z = 3.0  # a gap is "detectable" when it is this many combined standard errors


def _power(theory_se: np.ndarray, sim_se: np.ndarray, n_seeds: int) -> dict[str, Any]:
    """The power of the comparison: ``seeds``, ``seed_sd`` (the median over the compared times and
    entries of the spread of one seed, ``se_sim sqrt(seeds)``), ``theory_se`` (the median theory
    standard error) and ``detectable = 3 sqrt(theory_se^2 + seed_sd^2 / seeds)``: the smallest gap, in
    the variable's units, that these seeds show at 3 combined standard errors. Medians over the entries
    with a nonzero error (a deterministic start is not typical). One seed has no spread: ``detectable``
    is inf."""
    pos = (theory_se > 0) | (sim_se > 0)
    th = float(np.median(theory_se[pos])) if pos.any() else 0.0
    sd = float(np.median(sim_se[pos])) * math.sqrt(n_seeds) if pos.any() else 0.0
    det = DETECT_Z * math.sqrt(th**2 + sd**2 / n_seeds) if n_seeds > 1 else float("inf")
    return {"detectable": det, "seeds": int(n_seeds), "seed_sd": sd, "theory_se": th}


def seeds_needed(disc: Mapping[str, Any], gap: float) -> float:
    """How many seeds make a gap of ``gap`` (in the variable's units) detectable at 3 combined standard
    errors, from a :func:`discrepancy` result: the smallest ``N`` with ``3 sqrt(theory_se^2 + seed_sd^2
    / N) <= gap``. ``inf`` when the theory's own error already hides the gap (raise solver.paths
    first), or the seeds' spread is unknown (one seed)."""
    gap = float(gap)
    if not gap > 0 or not math.isfinite(gap):
        from .errors import ConfigError

        raise ConfigError(f"seeds_needed: gap = {gap!r}; allowed: a positive finite gap in the variable's units",
                          key="gap")
    room = (gap / DETECT_Z) ** 2 - float(disc["theory_se"]) ** 2
    sd = float(disc["seed_sd"])
    if room <= 0 or (sd == 0 and int(disc["seeds"]) < 2):
        return float("inf")
    return float(max(2, math.ceil(sd**2 / room))) if sd > 0 else 2.0


def power_statement(disc: Mapping[str, Any]) -> str:
    """One line on a :func:`discrepancy` result's power: the smallest gap its seeds detect at 3 combined
    standard errors, and how many seeds half of that gap needs (:func:`seeds_needed`)."""
    det, n = disc.get("detectable"), disc.get("seeds")
    if det is None or n is None or not math.isfinite(det):
        return f"detectable gap: unknown ({n} seed{'s' if n != 1 else ''}: no spread to estimate)"
    if det == 0:
        return f"detectable gap 0 (no noise in {n} seeds and the theory: any gap shows)"
    half = seeds_needed(disc, det / 2)
    need = f"{half:.0f} seeds" if math.isfinite(half) else "a less noisy theory first (raise solver.paths)"
    return f"detectable gap {det:.3g} (3 combined s.e. with {n} seeds); half of it, {det / 2:.3g}, needs {need}"


REL_ACCURACY = 0.1  # theory s.e. or dt error above this fraction of the curve: ``reliable`` False, a warning


def _dt_error_on(theory: xr.Dataset, sm: xr.DataArray, var: str) -> xr.DataArray | None:
    """The theory's ``<var>_dt_error`` on the simulation's compared times (None without one)."""
    if var + "_dt_error" not in theory:
        return None
    dt = theory[var + "_dt_error"]
    return dt.interp({TIME_DIM: np.asarray(sm[TIME_DIM].values, dtype=float)}).assign_coords(
        {TIME_DIM: sm[TIME_DIM].values})


def _relative(err: xr.DataArray, a: xr.DataArray, b: xr.DataArray) -> tuple[float, int]:
    """The largest ``|err(t)| / max(|a(t)|, |b(t)|, 1e-3 max |a|)`` and its time index."""
    A = np.abs(np.asarray(a.transpose(TIME_DIM, ...).values, dtype=float)).reshape(a.sizes[TIME_DIM], -1)
    B = np.abs(np.asarray(b.transpose(TIME_DIM, ...).values, dtype=float)).reshape(A.shape)
    E = np.abs(np.asarray(xr.broadcast(err, a)[0].transpose(TIME_DIM, ...).values, dtype=float)).reshape(A.shape)
    floor = 1e-3 * float(np.max(A)) if A.size else 0.0
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = np.where(E > 0, E / np.maximum(np.maximum(A, B), max(floor, 1e-300)), 0.0)
    if not rel.size:
        return 0.0, 0
    return float(np.max(rel)), int(np.unravel_index(int(np.argmax(rel)), rel.shape)[0])


def _reliability(tm: xr.DataArray, tse: xr.DataArray, sm: xr.DataArray, var: str,
                 tdt: xr.DataArray | None = None) -> dict[str, Any]:
    """Whether the theory is accurate enough for its z to mean anything: ``theory_rel_se`` (and
    ``theory_rel_dt_error``) is the largest ``se_theory(t)`` (dt error) ``/ max(|theory(t)|, |mean_sim(t)|,
    1e-3 max_t |theory|)``. Above ``REL_ACCURACY`` (0.1) ``reliable`` is False, ``unreliable`` says where and
    a RuntimeWarning says it; above ``REL_SE_MAX`` (0.5) ``refused`` is True (``run.compare`` refuses the
    comparison, CLI exit 3: an exploded standard error cannot pass for agreement)."""
    a, b = xr.broadcast(tm, sm)
    worst, it = _relative(tse, a, b)
    worst_dt, it_dt = _relative(tdt, a, b) if tdt is not None else (0.0, 0)
    out: dict[str, Any] = {"theory_rel_se": worst, "theory_rel_dt_error": worst_dt,
                           "reliable": bool(worst <= REL_ACCURACY and worst_dt <= REL_ACCURACY),
                           "refused": bool(worst > REL_SE_MAX)}
    if not out["reliable"]:
        what, val, i = ("standard error", worst, it) if worst >= worst_dt else ("dt error", worst_dt, it_dt)
        t = float(tm[TIME_DIM].values[i])
        out["unreliable"] = (f"the theory's {what} of {var} at t={t:.4g} is {val:.3g} of the curve (> "
                             f"{REL_SE_MAX if out['refused'] else REL_ACCURACY:g}): "
                             + ("no z statistic can be trusted" if out["refused"] else
                                "the comparison has little power; raise solver.paths or lower dynamics.dt"))
        warnings.warn(f"discrepancy: {out['unreliable']}", RuntimeWarning, stacklevel=3)
    return out


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


# --------------------------------------------------------------------------------------------
# Result sets: the files of one run, replaced as a whole
# --------------------------------------------------------------------------------------------
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
    from .errors import ConfigError

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
    from .publish import clean_stale

    clean_stale(path)  # what a run killed while publishing left beside it
    return path


def write_result_set(out: str | Path, writers: Mapping[str, Any], owned: Sequence[str] = RESULT_FILES,
                     step=None) -> dict[str, Path]:
    """Write a result set: ``writers[name](path)`` writes file ``name``; all are written into a staging
    directory beside ``out``, which then replaces ``out`` in one atomic exchange (publish.py: other
    entries of ``out`` are kept, files named in ``owned`` that this set lacks are dropped). On any error
    (or Ctrl-C) before that the staging directory is removed and ``out`` is left as it was; a Ctrl-C or
    SIGTERM during the exchange is delivered after it, with ``published`` set on the exception. What
    killed runs left beside ``out`` is cleaned first. Returns ``{name: final path}``."""
    import shutil

    from . import publish

    out = check_out_dir(out, tuple(writers))
    if out.is_symlink():  # publish into the directory it points to (the link stays)
        out = out.resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    stage = publish.stage_dir(out)
    published = False
    try:
        os.chmod(stage, 0o777 & ~_umask())
        for name, writer in writers.items():
            writer(stage / name)
        _fsync_dir(stage)
        with publish.held_signals():
            publish.publish(stage, out, set(owned) | set(writers), step)
            published = True
            _fsync_dir(out.parent)
    except BaseException as exc:
        if published:
            exc.published = out  # the new set is complete in out: the CLI says so
        raise
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return {name: out / name for name in writers}


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
