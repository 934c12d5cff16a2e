"""Theory against simulation: means and standard errors, the largest gap in combined standard errors
(:func:`discrepancy`), the power of a comparison (:func:`seeds_needed`, :func:`power_statement`) and
whether a theory curve is accurate enough to judge by (``reliable``).

Re-exported by :mod:`sgd_dmft.results` (the names' earlier home).
"""

from __future__ import annotations

import math
import warnings
from typing import Any, Mapping

import numpy as np
import xarray as xr

from .curves import REL_ACCURACY, mean_stderr_da

__all__ = ["SEED_DIM", "TIME_DIM", "REL_SE_MAX", "DETECT_Z", "REL_ACCURACY", "sim_mean_stderr",
           "theory_mean_stderr", "discrepancy", "seeds_needed", "power_statement"]

SEED_DIM = "seed"
TIME_DIM = "time"
REL_SE_MAX = 0.5  # a theory standard error above this fraction of the curve makes its z meaningless


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
           "z_t": z_t, "df": float(df[j]), **_reliability(tm_i, tse_i, sm, var, _dt_error_on(theory, sm, var), se),
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


DT_OVER_SE = 1.0  # a dt error above this many combined standard errors: the z could show it, ``reliable`` False


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
    return _worst(rel)


def _worst(r: np.ndarray) -> tuple[float, int]:
    """The largest entry of ``r`` (times x entries) and its time index; ``(0, 0)`` when empty."""
    if not r.size:
        return 0.0, 0
    return float(np.max(r)), int(np.unravel_index(int(np.argmax(r)), r.shape)[0])


def _reliability(tm: xr.DataArray, tse: xr.DataArray, sm: xr.DataArray, var: str,
                 tdt: xr.DataArray | None = None, combined: xr.DataArray | None = None) -> dict[str, Any]:
    """Whether the theory is accurate enough for its z to mean anything: ``theory_rel_se`` (and
    ``theory_rel_dt_error``) is the largest ``se_theory(t)`` (dt error) ``/ max(|theory(t)|, |mean_sim(t)|,
    1e-3 max_t |theory|)``, ``theory_dt_over_se`` the largest dt error in combined standard errors
    (``combined``, on the compared times). Above ``REL_ACCURACY`` (0.1), or a dt error above ``DT_OVER_SE`` (1)
    combined standard errors (a z could then be the dt error, not a gap), ``reliable`` is False,
    ``unreliable`` says where and a RuntimeWarning says it; above ``REL_SE_MAX`` (0.5) ``refused`` is True
    (``run.compare`` refuses the comparison, CLI exit 3: an exploded standard error cannot pass for agreement)."""
    a, b = xr.broadcast(tm, sm)
    worst, it = _relative(tse, a, b)
    worst_dt, it_dt = _relative(tdt, a, b) if tdt is not None else (0.0, 0)
    over, io = _over_se(tdt, combined)
    out: dict[str, Any] = {"theory_rel_se": worst, "theory_rel_dt_error": worst_dt, "theory_dt_over_se": over,
                           "reliable": bool(worst <= REL_ACCURACY and worst_dt <= REL_ACCURACY and over <= DT_OVER_SE),
                           "refused": bool(worst > REL_SE_MAX)}
    if not out["reliable"]:
        if max(worst, worst_dt) > REL_ACCURACY or out["refused"]:
            what, val, i = ("standard error", worst, it) if worst >= worst_dt else ("dt error", worst_dt, it_dt)
            why = (f"is {val:.3g} of the curve (> {REL_SE_MAX if out['refused'] else REL_ACCURACY:g}): "
                   + ("no z statistic can be trusted" if out["refused"] else
                      "the comparison has little power; raise solver.paths or lower dynamics.dt"))
        else:
            what, i = "dt error", io
            why = (f"is {over:.3g} combined standard errors (> {DT_OVER_SE:g}): a z of that size could be the dt "
                   f"error, not a gap; lower dynamics.dt")
        out["unreliable"] = f"the theory's {what} of {var} at t={float(tm[TIME_DIM].values[i]):.4g} {why}"
        warnings.warn(f"discrepancy: {out['unreliable']}", RuntimeWarning, stacklevel=3)
    return out


def _over_se(tdt: xr.DataArray | None, combined: xr.DataArray | None) -> tuple[float, int]:
    """The largest dt error in combined standard errors and its time index ((0, 0) without either)."""
    if tdt is None or combined is None:
        return 0.0, 0
    e, c = xr.broadcast(np.abs(tdt), combined)
    E = np.asarray(e.transpose(TIME_DIM, ...).values, dtype=float)
    C = np.asarray(c.transpose(TIME_DIM, ...).values, dtype=float).reshape(E.shape)
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.where(C > 0, E / np.where(C > 0, C, 1.0), np.where(E > 0, np.inf, 0.0))
    return _worst(np.nan_to_num(r.reshape(E.shape[0], -1), nan=0.0))
