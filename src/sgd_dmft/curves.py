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
DIMS = {"train_loss": ("time",), "test_loss": ("time",), "M": ("time", "k", "kstar"), "Q": ("time", "k", "k2")}
TIME_UNITS = "t = steps x eta (gradient-flow time; one epoch = gamma)"


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
    return ds
