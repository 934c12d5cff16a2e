"""The curve Dataset schema shared by the solver, the closed forms, the online ODEs and the simulators.

Theory datasets hold, on ``time``, ``train_loss``, ``test_loss`` (``time``), ``M`` (``time, k, kstar``),
``Q`` (``time, k, k2``) and each ``<var>_stderr``: the standard error of the mean over independent
replicas (zero for exact answers). Simulation datasets hold the same variables with a leading
``seed`` dimension and no ``_stderr``. Units: ``time`` is gradient-flow time ``t = steps x eta``
(one SGD epoch lasts ``gamma``); losses are per-sample (mean over samples, penalty excluded).
"""

from __future__ import annotations

import math
from typing import Mapping

import numpy as np
import xarray as xr

CURVES = ("train_loss", "test_loss", "M", "Q")
DIMS = {"train_loss": ("time",), "test_loss": ("time",), "M": ("time", "k", "kstar"), "Q": ("time", "k", "k2"),
        "test_error": ("time",)}
TEST_ERROR_UNITS = "probability: P(sign f(r) != y) on a fresh Gaussian sample (test 0-1 error)"
TIME_UNITS = "t = steps x eta (gradient-flow time; one epoch = gamma)"
# a theory curve whose standard error or dt error passes this fraction of the curve is not accurate enough:
# solve warns, a comparison's ``reliable`` is False (the one home of the threshold)
REL_ACCURACY = 0.1


def thinned_times(n: int, points: int) -> np.ndarray:
    """Indices of at most ``points`` (>= 2) of ``n`` times, every ``stride``-th from the first: the times on
    which a long run keeps its two-time kernels (the solver's replicas and result files alike)."""
    if n <= points:
        return np.arange(n)
    return np.arange(0, n, -(-(n - 1) // (int(points) - 1)))


def mean_stderr(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean over the leading axis and its standard error ``std(ddof=1) / sqrt(n)`` (zeros when n = 1)."""
    a = np.asarray(a)
    n = a.shape[0]
    mean = a.mean(axis=0)
    se = a.std(axis=0, ddof=1) / math.sqrt(n) if n > 1 else np.zeros_like(mean)
    return mean, se


def mean_stderr_da(da: xr.DataArray, dim: str = "seed") -> tuple[xr.DataArray, xr.DataArray]:
    """:func:`mean_stderr` over a named dimension of a DataArray (the DataArray itself and zeros
    when the dimension is absent or has one entry)."""
    if dim not in da.dims:
        return da, xr.zeros_like(da)
    n = da.sizes[dim]
    mean = da.mean(dim)
    if n < 2:
        return mean, xr.zeros_like(mean)
    return mean, da.std(dim, ddof=1) / math.sqrt(n)


def theory_vars(replicas: Mapping[str, np.ndarray]) -> dict[str, tuple]:
    """``{var: (dims, mean), var_stderr: (dims, se)}`` from per-replica arrays ``(R, T+1, ...)``."""
    data = {}
    for name, arr in replicas.items():
        mean, se = mean_stderr(arr)
        data[name] = (DIMS[name], mean)
        data[name + "_stderr"] = (DIMS[name], se)
    return data


def exact_vars(curves: Mapping[str, np.ndarray]) -> dict[str, tuple]:
    """``{var: (dims, value), var_stderr: (dims, 0)}`` for an exact answer (no Monte Carlo)."""
    data = {}
    for name, arr in curves.items():
        data[name] = (DIMS[name], arr)
        data[name + "_stderr"] = (DIMS[name], np.zeros_like(arr))
    return data


def simulation_dataset(times: np.ndarray, seeds, per_seed: Mapping[str, np.ndarray], attrs: Mapping) -> xr.Dataset:
    """A simulation Dataset from per-seed arrays ``(S, T+1, ...)``."""
    ds = xr.Dataset({name: (("seed",) + DIMS[name], arr) for name, arr in per_seed.items()},
                    coords={"seed": np.asarray(seeds, dtype=np.int64), "time": times}, attrs=dict(attrs))
    if "test_error" in ds:
        ds["test_error"].attrs["units"] = TEST_ERROR_UNITS
    return ds


def add_overlap_function(ds: xr.Dataset, name: str, f, units: str = "") -> xr.Dataset:
    """``ds`` with ``name = f(Q (T, k, k), M (T, k, k*)) -> (T,)`` on ``time`` (a function of the overlap
    curves, e.g. the test 0-1 error) and, where ``ds`` has ``M_stderr`` and ``Q_stderr``, ``<name>_stderr``:
    the delta method's ``sum_e |f(x + se_e) - f(x - se_e)| / 2`` over the entries ``e`` of ``M`` and of ``Q``'s
    upper triangle, an upper bound on the standard error whatever the correlations between the entries (the
    replica means do not keep them). ``units``: the variable's ``units`` attribute."""
    Q, M = ds["Q"].values, ds["M"].values
    out = ds.assign({name: (("time",), np.asarray(f(Q, M), dtype=np.float64))})
    out[name].attrs["units"] = units
    if "M_stderr" not in ds or "Q_stderr" not in ds:
        return out
    se = np.zeros(len(ds["time"]))
    sM, sQ = ds["M_stderr"].values, ds["Q_stderr"].values
    for i, j in np.ndindex(M.shape[1:]):
        step = np.zeros_like(M)
        step[:, i, j] = sM[:, i, j]
        se += np.abs(f(Q, M + step) - f(Q, M - step)) / 2
    for i, j in zip(*np.triu_indices(Q.shape[1])):
        step = np.zeros_like(Q)
        step[:, i, j] = step[:, j, i] = sQ[:, i, j]
        se += np.abs(f(Q + step, M) - f(Q - step, M)) / 2
    out[name + "_stderr"] = (("time",), se)
    out[name + "_stderr"].attrs["units"] = units
    return out


# --------------------------------------------------------------------------------------------
# Your own curves
# --------------------------------------------------------------------------------------------
_OWN_DIMS = {"train_loss": "seeds x times", "test_loss": "seeds x times", "M": "seeds x times x k x kstar",
             "Q": "seeds x times x k x k"}


def _own_time(time) -> np.ndarray:
    from .errors import ConfigError

    t = np.asarray(time, dtype=float)
    if t.ndim != 1 or t.size < 1:
        raise ConfigError(f"from_arrays: time has shape {t.shape}; allowed: a 1-d array of the recorded times",
                          key="time")
    if not np.isfinite(t).all() or (t.size > 1 and not (np.diff(t) > 0).all()):
        raise ConfigError(f"from_arrays: time = [{t[0]:g}, ..., {t[-1]:g}] is not finite and strictly increasing; "
                          f"allowed: increasing finite times (gradient-flow time t = steps x eta)", key="time")
    return t


def _own_array(name: str, value, n_times: int) -> np.ndarray:
    from .errors import ConfigError

    a = np.asarray(value, dtype=float)
    ndim = len(DIMS[name]) + 1
    if a.ndim != ndim or a.shape[1] != n_times or a.shape[0] < 1:
        hint = " (one run: x[None])" if a.ndim == ndim - 1 else ""
        raise ConfigError(f"from_arrays: {name} has shape {a.shape}; allowed: {_OWN_DIMS[name]} with "
                          f"{n_times} times{hint}", key=name)
    bad = a.size - int(np.count_nonzero(np.isfinite(a)))
    if bad:
        raise ConfigError(f"from_arrays: {name} has {bad} non-finite values (NaN/inf) of {a.size}; allowed: finite "
                          f"values (drop a diverged seed)", key=name)
    return a


def from_arrays(time, *, train_loss=None, test_loss=None, M=None, Q=None, attrs: Mapping | None = None) -> xr.Dataset:
    """Your own learning curves as the simulation Dataset that ``results.discrepancy``,
    ``plot.plot_curves`` and ``run.compare_datasets`` accept.

    ``time``: the recorded times (1-d, increasing), in the package's gradient-flow time ``t = steps x eta``
    (``conventions.from_pytorch`` gives it for a PyTorch loop). Each curve is per seed on that grid:
    ``train_loss`` / ``test_loss`` ``seeds x times``, ``M`` ``seeds x times x k x kstar`` (``M_ab =
    theta_a . theta*_b / d``), ``Q`` ``seeds x times x k x k``; any subset, the same seeds in each.
    ``attrs`` (e.g. ``d``, ``gamma``, ``batch``) are kept and shown in figure titles. Raises
    ConfigError (one line naming the argument) on a wrong shape, non-finite value or bad time axis.
    """
    from .errors import ConfigError

    t = _own_time(time)
    given = {n: v for n, v in (("train_loss", train_loss), ("test_loss", test_loss), ("M", M), ("Q", Q))
             if v is not None}
    if not given:
        raise ConfigError("from_arrays: no curve given; allowed: any of train_loss=, test_loss=, M=, Q=",
                          key="train_loss")
    per_seed = {n: _own_array(n, v, t.size) for n, v in given.items()}
    seeds = {n: a.shape[0] for n, a in per_seed.items()}
    n_seeds = next(iter(seeds.values()))
    odd = [n for n, s in seeds.items() if s != n_seeds]
    if odd:
        raise ConfigError(f"from_arrays: the curves have different numbers of seeds ({seeds}); allowed: the same "
                          f"seeds in each", key=odd[0])
    if "M" in per_seed and "Q" in per_seed and per_seed["M"].shape[2] != per_seed["Q"].shape[2]:
        raise ConfigError(f"from_arrays: Q has k = {per_seed['Q'].shape[2]}, M has k = {per_seed['M'].shape[2]}; "
                          f"allowed: the same student width k", key="Q")
    if "Q" in per_seed and per_seed["Q"].shape[2] != per_seed["Q"].shape[3]:
        raise ConfigError(f"from_arrays: Q has shape {per_seed['Q'].shape}; allowed: seeds x times x k x k", key="Q")
    a = {"kind": "simulation", "source": "from_arrays", "time_units": TIME_UNITS, **dict(attrs or {})}
    return simulation_dataset(t, np.arange(n_seeds), per_seed, a)
