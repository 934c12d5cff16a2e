"""Richardson extrapolation on coupled Monte Carlo levels (common random numbers).

A coupled replica runs the grids ``h/2``, ``h`` and ``2h`` on shared randomness: the inputs of the
finest level are drawn as usual and the coarser ones derived from them exactly in law
(:func:`~.extrapolate.coarsen_inputs`: pair sums / unions of the multipliers, ``(z_{2m-1} + z_{2m}) /
sqrt 2`` for the normals, the same labels). Each level is then an exact replica of its own law, so
each level's mean is unbiased as before, but the levels' Monte Carlo errors are strongly
correlated, and the per-replica extrapolant ``R1 = 2 f(h/2) - f(h)`` has a variance far below the
``4 V(h/2) + V(h)`` of independent levels. Its standard error is the spread of ``R1`` over the
replicas (correlations included). Laws without an exact coupling (``Law.coarsen`` None: graded
grids) use independent levels (solve.py).
"""

from __future__ import annotations

import numpy as np
from threadpoolctl import threadpool_limits

from ..curves import CURVES, mean_stderr
from .extrapolate import coarsen_inputs, combine, levels, truncate_inputs
from .march import march
from .processes import MonteCarlo
from .replicas import Reduction, replica_curves, summarize

_PROBE = np.zeros((1, 5))


def coupled_levels(law, t_max: float, problem=None):
    """``((law_h/2, schedule), (law, schedule), (law_2h, schedule) or None)``, or None when the law
    has no exact coupling. The fine grid ends where the user's grid ends (``2T`` steps of ``h/2``);
    the ``2h`` grid at the last even point."""
    fine_law, coarse_law = levels(law)
    rng = np.random.default_rng(0)
    if fine_law.coarsen(_PROBE, rng) is None:
        return None
    sh = law.schedule(t_max)
    sf = fine_law.schedule(float(sh.times[-1]))
    if sf.T != 2 * sh.T:
        return None
    cc = None
    Tc = sh.T // 2
    if coarse_law is not None and Tc >= 1 and law.coarsen(_PROBE, rng) is not None and _stable(problem, coarse_law):
        sc = coarse_law.schedule(float(sh.times[2 * Tc]))
        cc = (coarse_law, sc) if sc.T == Tc else None
    return (fine_law, sf), (law, sh), cc


def _stable(problem, law) -> bool:
    """Whether the ``2h`` level passes the up-front stability checks (an explicit step twice as long
    may not: then the error estimate falls back to the first-order difference)."""
    if problem is None:
        return True
    from ..errors import Diverged
    from .divergence import check_stability

    try:
        check_stability(problem, law)
    except Diverged:
        return False
    return True


def replica_coupled(problem, lv, process, P: int, snap_idx, keep_kernels: bool, blas_threads,
                    seq: np.random.SeedSequence, pbar=None) -> dict:
    """One coupled replica: ``{"fine", "raw", "coarse"}`` summaries (runs in a worker process too)."""
    rng = np.random.default_rng(seq)
    (lf, sf), (lh, sh), cc = lv
    k, ks = problem.k, problem.kstar
    one = np.array([0])
    inp_f = MonteCarlo.draw(problem, sf, P, rng, lf)
    inp_h = coarsen_inputs(inp_f, lf, k, ks, rng)
    out = {}
    with threadpool_limits(limits=blas_threads, user_api="blas"):
        out["fine"] = summarize(*march(problem, lf, sf, process, P, rng, one, pbar, inp_f), problem, False)
        out["raw"] = summarize(*march(problem, lh, sh, process, P, rng, snap_idx, pbar, inp_h), problem, keep_kernels)
        if cc is not None:
            lc, sc = cc
            inp_c = coarsen_inputs(truncate_inputs(inp_h, 2 * sc.T, k, ks), lh, k, ks, rng)
            out["coarse"] = summarize(*march(problem, lc, sc, process, P, rng, one, pbar, inp_c), problem, False)
    return out


class CoupledReduction:
    """One :class:`~.replicas.Reduction` per level, filled replica by replica."""

    def __init__(self, with_coarse: bool):
        self.raw, self.fine = Reduction(), Reduction()
        self.coarse = Reduction() if with_coarse else None

    @property
    def count(self) -> int:
        return self.raw.count

    def add(self, rep: dict) -> None:
        self.raw.add(rep["raw"])
        self.fine.add(rep["fine"])
        if self.coarse is not None:
            self.coarse.add(rep["coarse"])


def extrapolated_curves(problem, process, red: CoupledReduction, times: np.ndarray) -> dict[str, tuple]:
    """``{var: (R1 per replica (R, T+1, ...), dt_error (T+1, ...))}`` for train/test loss, M, Q."""
    levels_ = [red.raw, red.fine] + ([red.coarse] if red.coarse is not None else [])
    per = {}
    losses = [replica_curves(problem, process, r) for r in levels_]
    for j, var in enumerate(("train_loss", "test_loss")):
        per[var] = [c[j] for c in losses]
    for var in ("M", "Q"):
        per[var] = [np.stack(getattr(r, var)) for r in levels_]
    out = {}
    for var in CURVES:
        f = per[var]
        out[var] = combine(times, f[0], f[1], f[2] if len(f) > 2 else None)
    return out


def target_curves(problem, process, times):
    """``curves(red)`` for the accuracy target: the per-replica extrapolated train and test loss."""
    def curves(red: CoupledReduction):
        c = extrapolated_curves(problem, process, red, times)
        return c["train_loss"][0], c["test_loss"][0]
    return curves


def apply(ds, problem, process, red: CoupledReduction) -> None:
    """Replace the curves of the raw-level dataset ``ds`` by the extrapolated ones, in place:
    ``<var>`` and ``<var>_stderr`` from the per-replica ``R1``, ``<var>_dt_error``, and the raw
    train/test loss as ``<var>_raw`` / ``<var>_raw_stderr``."""
    times = ds["time"].values
    for var, (r1, err) in extrapolated_curves(problem, process, red, times).items():
        dims = ds[var].dims
        if var in ("train_loss", "test_loss"):
            ds[var + "_raw"] = (dims, ds[var].values.copy())
            ds[var + "_raw_stderr"] = (dims, ds[var + "_stderr"].values.copy())
        mean, se = mean_stderr(r1)
        ds[var] = (dims, mean)
        ds[var + "_stderr"] = (dims, se)
        ds[var + "_dt_error"] = (dims, err)
