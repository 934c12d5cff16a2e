"""Consistency of the replicas of a Monte Carlo solve, and the O(1/P) bias of their kernels.

Every replica is an independent self-consistent march with its own kernel estimates, so a replica
whose estimates run away (an outlier in ``R_F`` feeding ``C_theta``, docs/theory.md section 3b) gives a
curve far outside the spread of the others. :func:`check_replicas` compares, per recorded time and
variable, each replica with the *other* replicas: ``z = |x_i - median_{-i}| / sd_{-i}``, where
``median_{-i}`` and ``sd_{-i}`` exclude replica ``i`` (so one outlier cannot inflate its own yardstick).
For Gaussian replicas ``(x_i - mean_{-i}) / (sd_{-i} sqrt(1 + 1/(R-1)))`` is Student-t with ``R - 2``
degrees of freedom; the threshold is its two-sided ``1 - P_FALSE`` quantile (``P_FALSE = 1e-6`` per
replica, time and variable), at least ``Z_MIN``, and a deviation below ``REL_FLOOR`` of the median is
never flagged. At 8 replicas the threshold is 21.4 spreads; with 3 replicas (t_1, Cauchy tails) only
a blow-up by ~1e5 spreads would be flagged: the check needs about 5 replicas to have power.
At any replica count (two included) a replica whose ``trace Q`` exceeds ``RUNAWAY_RATIO`` times the
median of the others is flagged too: replicas of ``>= MIN_PATHS_PER_REPLICA`` paths estimate the same
``trace Q`` within a few per cent, and a runaway kernel estimate grows geometrically, so a factor 4 is
never noise (the leave-one-out test alone let a replica at 40x the others through at 4 replicas).
A flagged replica raises :class:`~sgd_dmft.errors.SolverDiverged` naming the time, the variable and
the replica; it is never averaged silently.

:func:`kernel_bias` estimates the O(1/P) bias of a replica of ``P`` paths from extra replicas of
``P/2`` paths (bias(P/2) - bias(P) = c/P = bias(P)): ``MonteCarlo(bias_replicas=n)``.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
from scipy.stats import t as student_t

from ..errors import SolverDiverged

P_FALSE = 1e-6  # false-alarm probability per replica, time and variable (Gaussian replicas)
Z_MIN = 8.0  # smallest threshold, in units of the others' standard deviation
REL_FLOOR = 0.2  # deviations below this fraction of |median| are never flagged
MIN_REPLICAS = 3
RUNAWAY_RATIO = 4.0  # a replica's trace Q above this multiple of the others' median: a runaway, at any count


def threshold(R: int) -> float:
    """Threshold on ``z`` for ``R`` replicas (dimensionless, units of the others' standard deviation)."""
    q = float(student_t.ppf(1.0 - P_FALSE / 2, R - 2))
    return max(Z_MIN, q * math.sqrt(1.0 + 1.0 / (R - 1)))


def replica_scores(x: np.ndarray) -> np.ndarray:
    """``z[i, t] = |x_i - median_{-i}| / sd_{-i}`` for curves ``x`` (R, T1); 0 where below the floors."""
    R = x.shape[0]
    z = np.zeros_like(x, dtype=float)
    for i in range(R):
        rest = np.delete(x, i, axis=0)
        with np.errstate(all="ignore"):
            med = np.nanmedian(rest, axis=0)
            sd = np.nanstd(rest, axis=0, ddof=1)
        dev = np.abs(x[i] - med)
        scale = np.maximum(sd, 1e-12 * np.maximum(np.abs(med), 1e-300))
        zi = dev / scale
        zi[dev <= REL_FLOOR * np.abs(med)] = 0.0
        z[i] = np.where(np.isfinite(x[i]), zi, np.inf)
    return z


def check_replicas(curves: dict[str, np.ndarray], times: np.ndarray) -> dict:
    """Raise SolverDiverged if a replica disagrees with the others beyond their spread.

    ``curves``: ``{name: (R, T1)}``; ``times`` (T1,) in units of t. Returns attrs: the largest score
    ``replica_z_max``, its variable and time, and the threshold used (``replica_z_threshold``; NaN and
    no check with fewer than ``MIN_REPLICAS`` replicas).
    """
    R = next(iter(curves.values())).shape[0]
    if "trace_Q" in curves and R >= 2:
        _check_ratio(curves["trace_Q"], times)
    if R < MIN_REPLICAS:
        return dict(replica_z_max=float("nan"), replica_z_threshold=float("nan"))
    thr = threshold(R)
    worst = (0.0, "", 0.0)
    for name, x in curves.items():
        z = replica_scores(x)
        flagged = np.argwhere(z > thr)
        if flagged.size:
            j = int(flagged[:, 1].min())  # the earliest time at which some replica breaks away
            i = int(np.argmax(z[:, j]))
            raise _runaway(i, R, float(times[j]), name, x[i, j], np.median(np.delete(x[:, j], i)),
                           f"{z[i, j]:.3g} standard deviations of the other replicas (threshold {thr:.3g})")
        i, j = np.unravel_index(int(np.argmax(z)), z.shape)
        if z[i, j] > worst[0]:
            worst = (float(z[i, j]), name, float(times[j]))
    return dict(replica_z_max=worst[0], replica_z_variable=worst[1], replica_z_time=worst[2],
                replica_z_threshold=thr)


def _runaway(i: int, R: int, t: float, name: str, value: float, median: float, how: str) -> SolverDiverged:
    return SolverDiverged(
        f"replica {i} of {R} disagrees with the others at t={t:.6g} on {name}: {value:.6g} against median "
        f"{median:.6g}, {how}: a runaway kernel estimate (docs/theory.md section 3b); use more paths per replica "
        f"(fewer replicas; >= 4000 on heavy-tailed labels), a smaller step, or, when large-label samples have "
        f"unstable visits, MonteCarlo(responses=PathwiseTangents(tail=0.01)) (section 3c)")


def _check_ratio(trace_q: np.ndarray, times: np.ndarray) -> None:
    """SolverDiverged at the first time a replica's ``trace Q`` (R, T1) exceeds ``RUNAWAY_RATIO`` times the
    median of the others (or is not finite)."""
    R = trace_q.shape[0]
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all others NaN at a time: nothing to compare there
        others = np.stack([np.nanmedian(np.delete(trace_q, i, axis=0), axis=0) for i in range(R)])
        floor = 1e-12 + 1e-6 * float(np.nanmax(np.abs(others), initial=0.0))  # trace Q near 0: no ratio
        bad = ~(trace_q <= RUNAWAY_RATIO * np.maximum(others, 0.0) + floor) & np.isfinite(others)
    if bad.any():
        j = int(np.argwhere(bad)[:, 1].min())
        key = np.where(np.isfinite(trace_q[:, j]), trace_q[:, j], np.inf)  # a non-finite replica first
        i = int(np.argmax(np.where(bad[:, j], key, -np.inf)))
        raise _runaway(i, R, float(times[j]), "trace_Q", trace_q[i, j], others[i, j],
                       f"more than {RUNAWAY_RATIO:g} times the others' median")


def kernel_bias(big: dict[str, np.ndarray], small: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """O(1/P) bias of replicas of P paths from replicas of P/2 paths: ``{name: (bias (T1,), stderr (T1,))}``.

    ``big``, ``small``: ``{name: (R, T1)}`` curves of replicas with P and P/2 paths. Since
    ``bias(P) ~ c / P``, ``mean(small) - mean(big) = c / P`` estimates ``bias(P)``; its standard error
    combines both replica spreads (one replica: the spread of the big ones, scaled by sqrt 2).
    """
    out = {}
    for name, xb in big.items():
        xs = small[name]
        vb = np.var(xb, axis=0, ddof=1) / xb.shape[0] if xb.shape[0] > 1 else np.zeros(xb.shape[1])
        if xs.shape[0] > 1:
            vs = np.var(xs, axis=0, ddof=1) / xs.shape[0]
        else:  # one small replica: its variance is about twice a big replica's
            vs = 2.0 * vb * xb.shape[0]
        out[name] = (xs.mean(axis=0) - xb.mean(axis=0), np.sqrt(vb + vs))
    return out


def bias_attrs(bias: dict[str, tuple[np.ndarray, np.ndarray]], mean: dict[str, np.ndarray]) -> dict:
    """attrs ``<var>_bias_rel`` (worst |bias| / |mean| over t > 0) and ``<var>_bias_rel_stderr``."""
    out = {}
    for name in ("train_loss", "test_loss"):
        b, se = bias[name]
        m = np.maximum(np.abs(mean[name][1:]), 1e-300)
        j = int(np.argmax(np.abs(b[1:]) / m)) if b.size > 1 else 0
        out[f"{name}_bias_rel"] = float(abs(b[1 + j]) / m[j]) if b.size > 1 else 0.0
        out[f"{name}_bias_rel_stderr"] = float(se[1 + j] / m[j]) if b.size > 1 else 0.0
    return out


def review(ds, red, problem, process, args: tuple, entropy: np.random.SeedSequence) -> None:
    """Check the replicas of a solve (:func:`check_replicas`) and record the result in ``ds.attrs``.

    Called by ``solve`` once the replicas are reduced (``red``: the reduction, per-replica ``Q``
    (T1, k, k), ``M`` (T1, k, ks) and ``train`` (T1,): train minus test loss for Monte Carlo). The
    checked curves are trace Q and |M|: the kernels feed back through them (a runaway shows there
    first), the test loss is a function of them, and they need no population loss. The train-loss
    estimate is not checked: it does not feed back, and one heavy-tailed path (phase retrieval:
    ``l ~ r^4``) can move one replica's value at one time far out, which its standard error shows. With ``MonteCarlo(bias_replicas=n)``, ``n`` extra replicas of
    ``P/2`` paths (``args``: the replica arguments of solve, ``entropy``: its seed) give the O(1/P)
    bias attrs of :func:`bias_attrs`.
    """
    if not process.monte_carlo:
        return
    Q, M = np.stack(red.Q), np.stack(red.M)
    curves = {"trace_Q": np.trace(Q, axis1=2, axis2=3), "norm_M": np.sqrt((M**2).sum(axis=(2, 3)))}
    ds.attrs.update(check_replicas(curves, ds["time"].values))
    n = int(getattr(process, "bias_replicas", 0))
    ds.attrs["kernel_bias"] = "not estimated (MonteCarlo(bias_replicas=n))" if n <= 0 else (
        f"from {n} replicas of P/2 paths: bias(P) = mean(P/2) - mean(P)")
    if n > 0:
        ds.attrs.update(_bias_from_half_replicas(red, problem, process, args, entropy, n))


def _bias_from_half_replicas(red, problem, process, args: tuple, entropy, n: int) -> dict:
    """Run ``n`` replicas of half the paths and compare (see :func:`kernel_bias`)."""
    from .replicas import Reduction, replica, replica_curves

    problem_, law, schedule, proc, P, snap_idx, _keep, blas = args
    seeds = np.random.SeedSequence([int(np.atleast_1d(entropy.entropy)[0]), 104729]).spawn(n)
    small = Reduction()
    for sq in seeds:
        small.add(replica(problem_, law, schedule, proc, max(2, P // 2), snap_idx, False, blas, sq))
    tb, teb = replica_curves(problem, process, red)
    ts, tes = replica_curves(problem, process, small)
    bias = kernel_bias({"train_loss": tb, "test_loss": teb}, {"train_loss": ts, "test_loss": tes})
    return dict(bias_replicas=int(n), bias_paths_per_replica=int(max(2, P // 2)),
                **bias_attrs(bias, {"train_loss": tb.mean(axis=0), "test_loss": teb.mean(axis=0)}))
