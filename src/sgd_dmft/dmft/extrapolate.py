"""Richardson extrapolation to the continuous-time limit ``dt -> 0``, with an error estimate.

The grid recursion at step ``h`` differs from its continuous-time limit at first order (explicit
Euler for GF and the SME; Bernoulli batches of a macroscopic fraction ``h/gamma`` of the samples for
SGD: docs/theory.md section 0). With ``f(h) = f0 + a h + b h^2 + ...`` on every curve
(train/test loss, M, Q), three nested levels of steps ``b``, ``2b``, ``4b`` give

    R1 = 2 f(b) - f(2b)       = f0 - 2 b_2 b^2 + O(b^3)      (returned)
    R0 = 2 f(2b) - f(4b)      = f0 - 8 b_2 b^2 + O(b^3)
    error of R1 ~ (R1 - R0) / 3;  ``<var>_dt_error = |R1 - R0|``  (a safety factor 3)

:func:`levels` chooses ``b``. By default ``b = dt``, the user's own step: the levels cost
``1 + 2^-p + 4^-p`` of the raw recursion whose cost grows like ``T^p`` (1.31x for the Monte Carlo
solver's ``P T^2``, 1.14x for the exact path's ``T^3``), and the raw recursion at ``dt`` comes for free.
``R1`` is then known at the ``2 dt`` points; in between, the first-order correction ``f(dt) - f(2 dt)``
(a smooth O(dt) curve) is interpolated linearly in time, an O(dt^3) error. Where the law cannot live
on ``2 dt`` (SGD needs ``2 dt <= gamma``, reshuffling an integer ``gamma / 2 dt``, an explicit step
past its stability edge), ``b = dt/2`` (the levels ``dt/2, dt, 2 dt``, about 4-9x the raw cost). On a
graded grid the levels are nested: pairs of steps merged (``b = dt``) or every step split in two. Without the ``4b`` level the estimate is the
first-order difference ``|f(b) - f(2b)|``, an overestimate. The safety factor 3 covers the
pre-asymptotic range of the coarsest level (stiff modes with ``4b lambda`` not small). Coupled Monte
Carlo levels run the ``4b`` level only while the first-order correction is past the noise
(coupled.ERROR_LEVEL_SE); after it the estimate is first order (:func:`combine`).
"""

from __future__ import annotations

import warnings
from typing import NamedTuple

import numpy as np
import xarray as xr
from scipy.ndimage import maximum_filter1d

from ..curves import CURVES
from ..errors import ConfigError, Diverged


class Levels(NamedTuple):
    """The grids of a Richardson solve: steps ``b`` (``fine``), ``2b`` (``mid``), ``4b`` (``coarse``,
    None: no error level). ``user``: which of ``fine`` (0, ``b = dt``) or ``mid`` (1, ``b = dt/2``) is
    the user's own grid, whose points are the output's and whose raw recursion is ``<var>_raw``."""

    fine: object
    mid: object
    coarse: object | None
    user: int

    @property
    def user_law(self):
        return self.mid if self.user else self.fine

    def names(self) -> str:
        """``"dt, 2 dt, 4 dt"``-style description of the levels relative to the user's step."""
        steps = ("dt", "2 dt", "4 dt") if self.user == 0 else ("dt/2", "dt", "2 dt")
        return ", ".join(steps[: 2 + (self.coarse is not None)])

    def cost_factor(self, power: float = 2.0) -> float:
        """Cost relative to one raw solve at the user's step, for a cost growing like ``T^power``."""
        scale = 2.0 ** (-power)
        rel = (1.0, scale) if self.user == 0 else (2.0 ** power, 1.0)
        return rel[0] + rel[1] + (rel[1] * scale if self.coarse is not None else 0.0)


def _level(make, problem):
    """The law ``make()`` builds, or None where it cannot live (ConfigError) or is refused up front as
    unstable (an internal level: its warnings are not the user's)."""
    try:
        law = make()
    except ConfigError:
        return None
    if problem is not None:
        from .divergence import check_stability

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                check_stability(problem, law)
            except Diverged:
                return None
    return law


def levels(law, problem=None) -> Levels:
    """The Richardson levels of ``law`` (see the module docstring): ``dt, 2 dt, 4 dt`` where ``2 dt`` is
    allowed and stable, else ``dt/2, dt, 2 dt``. On a graded grid the levels are nested (pairs of steps
    merged / every step split in two), so that every point of the coarser grids is a point of the finer."""
    def step(j: int):
        return law.refined(-j) if law.graded else law.with_step(2.0**j)

    mid = _level(lambda: step(1), problem)
    if mid is not None:
        return Levels(law, mid, _level(lambda: step(2), problem), 0)
    return Levels(step(-1), law, None, 1)


def _interp_time(t: np.ndarray, tk: np.ndarray, vk: np.ndarray, axis: int = 0) -> np.ndarray:
    """Linear interpolation in time of ``vk`` known at ``tk`` (along ``axis``), onto ``t``."""
    v = np.moveaxis(vk, axis, 0)
    flat = v.reshape(len(tk), -1)
    out = np.stack([np.interp(t, tk, flat[:, j]) for j in range(flat.shape[1])], axis=-1)
    return np.moveaxis(out.reshape((len(t),) + v.shape[1:]), 0, axis)


def combine(times_fine: np.ndarray, ff: np.ndarray, fm: np.ndarray, fc: np.ndarray | None, user: int):
    """Per-replica Richardson on curves ``(R, n, ...)``: ``(R1, dt_error)`` on the user's grid.

    ``ff`` on the fine grid (times ``times_fine``), ``fm`` on ``2b`` (the even fine points), ``fc`` on
    ``4b`` or None, possibly on a prefix of the times only (the error level run while it is needed:
    coupled.py). ``R1`` per replica ``(R, n_user, ...)``; ``dt_error = |mean R1 - mean R0|`` at the ``4b``
    times, and past them (or without ``fc``) the first-order ``|mean f(b) - mean f(2b)|`` at the ``2b`` times
    (the larger of each point's and its neighbours', so that a sign change of the correction does not pass
    for a zero error), interpolated in time. The levels are coupled (common random numbers), so the spread
    of ``R1`` over replicas is its standard error, correlations included."""
    nm = fm.shape[1]
    at_mid = slice(0, 2 * nm - 1, 2)
    d = ff[:, at_mid] - fm  # the first-order correction at the 2b points
    r1m = ff[:, at_mid] + d
    tm = times_fine[at_mid]
    if user == 1:
        r1, t_out = r1m, tm
    else:
        r1, t_out = ff + _interp_time(times_fine, tm, d, axis=1), times_fine
    first = _interp_time(t_out, tm, maximum_filter1d(np.abs(d.mean(axis=0)), size=3, axis=0, mode="nearest"))
    if fc is None:
        err = first
    else:
        at_c = slice(0, 2 * fc.shape[1] - 1, 2)
        r0 = 2.0 * fm[:, at_c] - fc
        err = _interp_time(t_out, tm[at_c], np.abs(r1m[:, at_c].mean(axis=0) - r0.mean(axis=0)))
        past = t_out > tm[at_c][-1]  # the error level stopped there: the first-order estimate after it
        err[past] = first[past]
    if user == 0 and nm >= 3:
        err[1 : 2 * nm - 1 : 2] += _midpoint_error(d.mean(axis=0))
    return r1, err


def _midpoint_error(d: np.ndarray) -> np.ndarray:
    """Error of linear interpolation at the midpoints of the points of ``d`` (n, ...), ``n >= 3``:
    ``|second difference| / 8`` of the two neighbouring points, the larger (n - 1, ...)."""
    sec = np.empty_like(d)
    sec[1:-1] = np.abs(d[:-2] - 2.0 * d[1:-1] + d[2:])
    sec[0], sec[-1] = sec[1], sec[-2]
    return np.maximum(sec[:-1], sec[1:]) / 8.0


def _on_grid(ds: xr.Dataset, var: str, times: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(values, stderr)`` of ``var`` at ``times`` (grid points of ``ds``, matched to rounding)."""
    t = ds["time"].values
    idx = np.rint(np.interp(times, t, np.arange(len(t)))).astype(int)
    if not np.allclose(t[idx], times, rtol=0, atol=1e-9 * max(1.0, float(times[-1]))):
        raise ValueError(f"extrapolation: times {times[:3]}... are not on the grid {t[:3]}...")
    return ds[var].values[idx], ds[var + "_stderr"].values[idx]


def richardson(lv: Levels, fine: xr.Dataset, mid: xr.Dataset, coarse: xr.Dataset | None) -> xr.Dataset:
    """Independent levels (datasets of one solve each): the extrapolated dataset on the user's grid,
    ``R1`` with standard errors (``4 se_fine^2 + se_mid^2``: independent Monte Carlo; zero on the exact
    path) and ``<var>_dt_error``; kernels, samples and ``<var>_raw`` curves from the user's level."""
    raw = mid if lv.user else fine
    out = raw.copy()
    tf = fine["time"].values
    tm = tf[::2][: len(mid["time"])]
    for var in CURVES:
        ff, sf = fine[var].values, fine[var + "_stderr"].values
        fm, sm = _on_grid(mid, var, tm)
        fc = None if coarse is None else _on_grid(coarse, var, tm[::2][: len(coarse["time"])])[0]
        r1, err = combine(tf, ff[None], fm[None], None if fc is None else fc[None], lv.user)
        if lv.user:
            se = np.sqrt(4.0 * sf[::2][: len(tm)] ** 2 + sm**2)
        else:  # R1 = f(b) + interpolated (f(b) - f(2b)): 2 f(b) - f(2b) at the 2b points
            se = np.sqrt(4.0 * sf**2 + _interp_time(tf, tm, sm**2))
        dims = raw[var].dims
        out[var] = (dims, r1[0])
        out[var + "_stderr"] = (dims, se)
        out[var + "_dt_error"] = (dims, err)
        if var in ("train_loss", "test_loss"):
            out[var + "_raw"] = (dims, raw[var].values)
            out[var + "_raw_stderr"] = (dims, raw[var + "_stderr"].values)
    return out


# ------------------------------------------------------------------------------------------------
# Coupled levels (common random numbers): one replica runs b, 2b and 4b on shared randomness
# ------------------------------------------------------------------------------------------------
def coarsen_inputs(inputs, law_fine, k: int, ks: int, rng: np.random.Generator):
    """A Monte Carlo replica's inputs on the grid ``2 dt`` built from those on ``dt``, or None.

    Multipliers by ``law_fine.coarsen`` (exact in law); normals: the rows of ``r*`` are shared, and the
    field blocks (one per step, the innovations of the sampled Gaussian field) are coupled
    (:func:`couples_by_index`) either by index, coarse block ``m`` = fine block ``m`` (GF and GD: a smooth
    field, whose ``m``-th innovation is about the same mode, value, slope, curvature, ..., on either grid),
    or by time, coarse block 0 = fine block 0 and coarse block ``m >= 1`` = ``(fine 2m-1 + fine 2m) / sqrt 2``
    (jumps or noise: the innovations of the same time interval). Either way they are i.i.d. standard
    normals again, so the coarse replica has exactly its own law. Label noise is shared.
    """
    from .processes import Inputs

    Z, eps, S = inputs
    Sc = law_fine.coarsen(S, rng)
    if Sc is None:
        return None
    P = Z.shape[1]
    Zb = Z[ks:].reshape(-1, k, P)
    T = min(Sc.shape[1] - 1, (len(Zb) - 1) // 2)  # (normals cut short: as many coarse blocks as they give)
    if couples_by_index(law_fine):  # r* and the first T + 1 field blocks: a prefix, as truncate_inputs
        return Inputs(Z[: ks + (T + 1) * k], eps, Sc)
    Zc = np.empty((ks + (T + 1) * k, P))
    Zc[:ks] = Z[:ks]
    Zcb = Zc[ks:].reshape(T + 1, k, P)
    Zcb[0] = Zb[0]
    Zcb[1:] = (Zb[1 : 2 * T : 2] + Zb[2 : 2 * T + 1 : 2]) * (1.0 / np.sqrt(2.0))
    return Inputs(Zc, eps, Sc)


def couples_by_index(law) -> bool:
    """Whether :func:`coarsen_inputs` couples the levels' field innovations by index (deterministic laws:
    GF, GD) rather than by time. Measured on logistic GF (delta 2, ridge 0.1, dt 0.1, 1000 paths): the
    replica spread of the first-order correction ``f(dt) - f(2 dt)`` of the train loss falls from 0.07-0.22 %
    of the loss to 0.01-0.05 % (a graded grid to t = 60: 0.24 % -> 0.10 %); on SGD it grows (0.26 % -> 0.77 %
    at t = 5), so stochastic laws keep the coupling by time."""
    return bool(law.deterministic)


def truncate_inputs(inputs, T: int, k: int, ks: int):
    """The inputs of the first ``T`` steps (a grid ending earlier)."""
    from .processes import Inputs

    Z, eps, S = inputs
    return Inputs(Z[: ks + (T + 1) * k], eps, S[:, : T + 1])
