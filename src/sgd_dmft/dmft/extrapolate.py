"""Richardson extrapolation to the continuous-time limit ``dt -> 0``, with an error estimate.

The grid recursion at step ``h`` differs from its continuous-time limit at first order (explicit
Euler for GF and the SME; Bernoulli batches of a macroscopic fraction ``h/gamma`` of the samples for
SGD: docs/theory.md section 0). With ``f(h) = f0 + a h + b h^2 + ...`` on every curve
(train/test loss, M, Q at the grid times of ``h``):

    R1 = 2 f(h/2) - f(h)      = f0 - b h^2 / 2 + O(h^3)      (returned)
    R0 = 2 f(h) - f(2h)       = f0 - 2 b h^2 + O(h^3)
    error of R1 ~ (R1 - R0) / 3;  ``<var>_dt_error = |R1 - R0|``  (a safety factor 3)

The safety factor covers the pre-asymptotic range of the coarsest level (stiff modes with
``2h lambda`` not small): measured on linear GF (delta 3, dt 0.01 .. 0.05) the true error was 1.8-2x
``|R1 - R0| / 3``, on linear SGD (gamma 0.5 .. 1.5, dt 0.01) 0.9-1x. ``f(2h)`` costs a fraction of the other two solves; where the law cannot live on ``2h`` (SGD needs
``2h <= gamma``, reshuffling an integer ``gamma / 2h``) the estimate falls back to the first-order
difference ``|f(h/2) - f(h)|``, an overestimate. The levels are independent Monte Carlo runs, so
``se(R1)^2 = 4 se(f(h/2))^2 + se(f(h))^2``; for the exact path all of it is deterministic.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from ..curves import CURVES
from ..errors import ConfigError


def levels(law):
    """``(law at h/2, law at 2h or None)``: on a uniform grid the steps scaled (``with_step``), on a
    graded one the nested grids (``refined``: each step split in two, consecutive pairs merged), so
    that every point of the user's grid is a point of the fine one and the mesh function is halved."""
    def step(j: int):
        return law.refined(j) if law.graded else law.with_step(2.0 ** -j)

    fine = step(1)
    try:
        coarse = step(-1)
    except ConfigError:
        coarse = None
    return fine, coarse


def _on_grid(ds: xr.Dataset, var: str, times: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(values, stderr)`` of ``var`` at ``times`` (grid points of ``ds``, matched to rounding)."""
    t = ds["time"].values
    idx = np.rint(np.interp(times, t, np.arange(len(t)))).astype(int)
    if not np.allclose(t[idx], times, rtol=0, atol=1e-9 * max(1.0, float(times[-1]))):
        raise ValueError(f"extrapolation: times {times[:3]}... are not on the grid {t[:3]}...")
    return ds[var].values[idx], ds[var + "_stderr"].values[idx]


def richardson(raw: xr.Dataset, fine: xr.Dataset, coarse: xr.Dataset | None) -> xr.Dataset:
    """The extrapolated dataset: curves ``R1`` with standard errors and ``<var>_dt_error`` on the
    times of ``raw`` (the user's grid); kernels, samples and ``<var>_raw`` curves from ``raw``."""
    out = raw.copy()
    times = raw["time"].values
    for var in CURVES:
        f1, s1 = raw[var].values, raw[var + "_stderr"].values
        f2, s2 = _on_grid(fine, var, times)
        r1 = 2.0 * f2 - f1
        se = np.sqrt(4.0 * s2**2 + s1**2)
        err = np.abs(f2 - f1)
        if coarse is not None:
            tc = coarse["time"].values
            fc, _ = _on_grid(coarse, var, tc[tc <= times[-1] + 1e-12])
            even = np.arange(0, len(times), 2)[: len(fc)]
            r0 = 2.0 * f1[even] - fc
            e0 = np.abs(r1[even] - r0)
            err = _interp_time(times, times[even], e0)
        dims = raw[var].dims
        out[var] = (dims, r1)
        out[var + "_stderr"] = (dims, se)
        out[var + "_dt_error"] = (dims, err)
        if var in ("train_loss", "test_loss"):
            out[var + "_raw"] = (dims, f1)
            out[var + "_raw_stderr"] = (dims, s1)
    return out


def _interp_time(t: np.ndarray, tk: np.ndarray, vk: np.ndarray) -> np.ndarray:
    """Linear interpolation in time of ``vk`` (len(tk), ...) known at ``tk``, onto ``t``."""
    flat = vk.reshape(len(tk), -1)
    out = np.stack([np.interp(t, tk, flat[:, j]) for j in range(flat.shape[1])], axis=-1)
    return out.reshape((len(t),) + vk.shape[1:])


# ------------------------------------------------------------------------------------------------
# Coupled levels (common random numbers): one replica runs h/2, h and 2h on shared randomness
# ------------------------------------------------------------------------------------------------
def coarsen_inputs(inputs, law_fine, k: int, ks: int, rng: np.random.Generator):
    """A Monte Carlo replica's inputs on the grid ``2 dt`` built from those on ``dt``, or None.

    Multipliers by ``law_fine.coarsen`` (exact in law); normals: the rows of ``r*`` are shared, the
    coarse field block 0 is the fine block 0 and coarse block ``m >= 1`` is ``(fine 2m-1 + fine 2m) /
    sqrt 2``: i.i.d. standard normals again, so the coarse replica has exactly its own law, with the
    innovations of the same time interval. Label noise is shared.
    """
    from .processes import Inputs

    Z, eps, S = inputs
    Sc = law_fine.coarsen(S, rng)
    if Sc is None:
        return None
    T = Sc.shape[1] - 1
    P = Z.shape[1]
    Zb = Z[ks:].reshape(-1, k, P)
    Zc = np.empty((ks + (T + 1) * k, P))
    Zc[:ks] = Z[:ks]
    Zcb = Zc[ks:].reshape(T + 1, k, P)
    Zcb[0] = Zb[0]
    Zcb[1:] = (Zb[1 : 2 * T : 2] + Zb[2 : 2 * T + 1 : 2]) * (1.0 / np.sqrt(2.0))
    return Inputs(Zc, eps, Sc)


def truncate_inputs(inputs, T: int, k: int, ks: int):
    """The inputs of the first ``T`` steps (a grid ending earlier)."""
    from .processes import Inputs

    Z, eps, S = inputs
    return Inputs(Z[: ks + (T + 1) * k], eps, S[:, : T + 1])


def combine(times: np.ndarray, f1: np.ndarray, f2: np.ndarray, fc: np.ndarray | None):
    """Per-replica Richardson on curves ``(R, T+1, ...)``: ``(R1 per replica, dt_error)``.

    ``f1`` on the user's grid h, ``f2`` on h/2 (``2T + 1`` points), ``fc`` on 2h (``T // 2 + 1`` points)
    or None. ``dt_error = |mean R1 - mean R0|`` at the 2h times, interpolated in time (or the first-order
    ``|mean f(h/2) - mean f(h)|`` without the 2h level). The replicas are coupled (common random
    numbers), so the spread of ``R1`` over replicas is its standard error, correlations included."""
    r1 = 2.0 * f2[:, ::2] - f1
    if fc is None:
        return r1, np.abs((f2[:, ::2] - f1).mean(axis=0))
    even = np.arange(fc.shape[1]) * 2
    r0 = 2.0 * f1[:, even] - fc
    err = np.abs(r1[:, even].mean(axis=0) - r0.mean(axis=0))
    return r1, _interp_time(times, times[even], err)
