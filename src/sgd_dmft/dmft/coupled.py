"""Richardson extrapolation on coupled Monte Carlo levels (common random numbers).

A coupled replica runs the grids ``b``, ``2b`` and ``4b`` (extrapolate.levels) on shared randomness: the
inputs of the finest level are drawn as usual and the coarser ones derived from them exactly in law
(:func:`~.extrapolate.coarsen_inputs`: pair sums / unions of the multipliers, ``(z_{2m-1} + z_{2m}) /
sqrt 2`` for the normals, the same labels). Each level is then an exact replica of its own law, so
each level's mean is unbiased as before, but the levels' Monte Carlo errors are strongly
correlated, and the per-replica extrapolant ``R1 = 2 f(b) - f(2b)`` has a variance far below the
``4 V(b) + V(2b)`` of independent levels. Its standard error is the spread of ``R1`` over the
replicas (correlations included). Laws without an exact coupling (``Law.coarsen`` None) use
independent levels (driver.py).

The levels other than the user's are internal: one that diverges (an explicit step twice or four
times the user's past its edge, a jump map that escapes) never fails the run. Its replicas report
it, the reduction drops the level, and the solve falls back (no ``4b`` level: the first-order error
estimate; no ``2b`` level: the raw recursion, said in the attrs and a warning).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ..curves import CURVES, mean_stderr
from ..errors import Diverged
from .extrapolate import Levels, coarsen_inputs, combine, levels, truncate_inputs
from .march import march
from .processes import MonteCarlo
from .replicas import Reduction, blas_limits, replica_curves, summarize

_PROBE = np.zeros((1, 5))
NAMES = ("fine", "mid", "coarse")
# The 4b (error) level runs up to the last time where the first-order correction |f(b) - f(2b)| of a curve
# passes this many standard errors of R1 significantly (needs_error_level; after it, that correction is the
# stated dt error): a level whose estimate would be below the Monte Carlo noise (mostly noise itself) is not
# paid for.
ERROR_LEVEL_SE = 0.5
ERROR_LEVEL_WHOLE = 0.9  # an error level needed over this share of its steps runs to the end


class Coupled(NamedTuple):
    """The levels of a coupled solve with their schedules (``None`` for an absent coarse level) and
    the user's grid: ``T_user`` steps; the user's level may run a few steps past it (``padded``) so that
    the ``2b`` / ``4b`` grids end on its last point."""

    levels: Levels
    schedules: tuple
    T_user: int

    @property
    def user(self) -> int:
        return self.levels.user

    @property
    def raw_schedule(self):
        return self.schedules[self.user]

    @property
    def padded(self) -> bool:
        return self.raw_schedule.T != self.T_user

    def steps(self, names: tuple[str, ...] = NAMES) -> int:
        """Grid steps of the levels ``names`` (all by default): one replica's work, in progress-bar units."""
        return sum(s.T for n, s in zip(NAMES, self.schedules) if s is not None and n in names)

    def error_level(self, T: int) -> "Coupled":
        """These levels with the ``4b`` (error) level cut to its first ``T`` steps."""
        sf, sm, sc = self.schedules
        return self._replace(schedules=(sf, sm, sc.prefix(T)))


def padded_horizon(lv: Levels, sh) -> float:
    """The horizon the levels run to: the user's grid end, or (``b = dt``) the next point where the
    ``2b`` (``4b``) grid has a point, so that every output time lies between extrapolated points."""
    step = 4 if lv.coarse is not None else 2
    T = -(-sh.T // step) * step
    if lv.user or T == sh.T:
        return float(sh.times[-1])
    if not lv.fine.graded:
        return float(T * lv.fine.dt)
    t = float(sh.times[-1])
    return float(lv.fine.times(t + 4.0 * lv.fine.grid.step_at(t))[T])


def coupled_levels(law, t_max: float, problem=None) -> Coupled | None:
    """The coupled levels of a solve, or None when the law has no exact coupling."""
    lv = levels(law, problem)
    rng = np.random.default_rng(0)
    if lv.fine.coarsen(_PROBE, rng) is None:
        return None
    sh = law.schedule(t_max)
    sf = lv.fine.schedule(padded_horizon(lv, sh))
    sm = lv.mid.schedule(float(sf.times[sf.T // 2 * 2]))
    if sm.T != sf.T // 2 or (lv.user and sm.T != sh.T) or (not lv.user and sf.T < sh.T):
        return None
    sc = None
    Tc = sm.T // 2
    if lv.coarse is not None and Tc >= 1 and lv.mid.coarsen(_PROBE, rng) is not None:
        sc = lv.coarse.schedule(float(sm.times[2 * Tc]))
        sc = sc if sc.T == Tc else None
    if sc is None:
        lv = lv._replace(coarse=None)
    return Coupled(lv, (sf, sm, sc), sh.T)


def replica_coupled(problem, cp: Coupled, process, P: int, snap_idx, keep_kernels: bool | int, blas_threads,
                    names: tuple[str, ...], after_z: dict | None, seq: np.random.SeedSequence, pbar=None) -> dict:
    """One coupled replica: the summaries of the levels ``names`` (of ``"fine", "mid", "coarse"``; runs in a
    worker process too); an internal level that diverges is ``None`` with its message in ``"failed"``. The
    inputs of each level derive from ``seq`` alone (the marches draw nothing), so the error level run later
    for the same ``seq`` is coupled to the fine and mid levels run before. A first pass without the ``4b``
    level returns the generator's state after the normals (``"z_state"``); the error level, given those
    states by ``seq.spawn_key`` (``after_z``), draws only the normals its levels use (the same inputs)."""
    rng = np.random.default_rng(seq)
    lv, (sf, sm, sc) = cp.levels, cp.schedules
    k, ks = problem.k, problem.kstar
    one = np.array([0])
    later = sc is not None and "coarse" not in names  # the error level may run later for this seq
    states = [] if later else None
    rows = ks + (4 * sc.T + 1) * k if sc is not None and names == NAMES[2:] else None  # what the 4b level reads
    inp = {"fine": MonteCarlo.draw(problem, sf, P, rng, lv.fine, rows, (after_z or {}).get(seq.spawn_key), states)}
    inp["mid"] = coarsen_inputs(truncate_inputs(inp["fine"], 2 * sm.T, k, ks), lv.fine, k, ks, rng)
    if sc is not None and "coarse" in names:
        inp["coarse"] = coarsen_inputs(truncate_inputs(inp["mid"], 2 * sc.T, k, ks), lv.mid, k, ks, rng)
    out = {"failed": {}, "z_state": (seq.spawn_key, states[0]) if later else None}
    with blas_limits(blas_threads):
        for j, (name, law, sched) in enumerate(zip(NAMES, lv, (sf, sm, sc))):
            if sched is None or name not in names:
                continue
            user = j == lv.user
            try:
                res = march(problem, law, sched, process, P, rng, snap_idx if user else one, pbar, inp[name])
            except Diverged as e:
                if user:
                    raise
                out[name], out["failed"][name] = None, str(e)
                continue
            out[name] = summarize(*res, problem, keep_kernels if user else False)
    return out


class CoupledReduction:
    """One :class:`~.replicas.Reduction` per level, filled replica by replica; a level that failed in
    any replica is dropped (``failed[name]``: the first message)."""

    def __init__(self, cp: Coupled):
        self.user = cp.user
        self.levels = {name: Reduction() for name, s in zip(NAMES, cp.schedules) if s is not None}
        self.failed: dict[str, str] = {}
        self.z_states: dict[tuple, dict] = {}  # the first pass's generator states after the normals, by spawn key
        self.error_until: float | None = None  # the 4b level's last time (0: not run; None: no such level)

    @property
    def raw(self) -> Reduction:
        return self.levels[NAMES[self.user]]

    @property
    def count(self) -> int:
        return self.raw.count

    def level(self, name: str) -> Reduction | None:
        red = None if name in self.failed else self.levels.get(name)
        return red if red is not None and red.count else None

    def add(self, rep: dict) -> None:
        if rep.get("z_state") is not None:
            key, state = rep["z_state"]
            self.z_states[key] = state
        for name, msg in rep["failed"].items():
            self.failed.setdefault(name, msg)
        for name, red in self.levels.items():
            if rep.get(name) is not None:
                red.add(rep[name])


def _level_curves(problem, process, red: CoupledReduction) -> dict[str, list]:
    """``{var: [fine, mid, coarse]}``: each level's per-replica curves ``(R, n_level, ...)``, None where absent."""
    per: dict[str, list] = {var: [] for var in CURVES}
    for name in NAMES:
        r = red.level(name)
        if r is None:
            for var in CURVES:
                per[var].append(None)
            continue
        tr, te = replica_curves(problem, process, r)
        per["train_loss"].append(tr)
        per["test_loss"].append(te)
        for var in ("M", "Q"):
            per[var].append(np.stack(getattr(r, var)))
    return per


def needs_error_level(f: np.ndarray, m: np.ndarray) -> np.ndarray:
    """At each ``2b`` point (bool, ``(n_mid,)``): whether the first-order correction ``d = f(b) - f(2b)`` of
    the per-replica curves ``f`` ``(R, n_fine, ...)`` and ``m`` ``(R, n_mid, ...)`` passes
    :data:`ERROR_LEVEL_SE` standard errors of ``R1 = f(b) + d`` significantly (by two standard errors of
    ``mean d``: a correction within the noise of its own estimate is no reason for a level whose estimate
    is noisier still), in any component."""
    nm, R = m.shape[1], len(m)
    d = f[:, 0 : 2 * nm - 1 : 2] - m
    se = (f[:, 0 : 2 * nm - 1 : 2] + d).std(axis=0, ddof=1) / np.sqrt(R)
    se_d = d.std(axis=0, ddof=1) / np.sqrt(R)
    return (np.abs(d.mean(axis=0)) > ERROR_LEVEL_SE * se + 2.0 * se_d).reshape(nm, -1).any(axis=1)


def error_level_steps(problem, process, red: CoupledReduction, cp: Coupled) -> int:
    """Steps of the ``4b`` grid the error level has to run, from the fine and mid levels (``red``): up to
    the last ``2b`` point where a curve :func:`needs_error_level`, and two steps on (all of them past
    :data:`ERROR_LEVEL_WHOLE` of its grid); 0 where none does."""
    sc = cp.schedules[2]
    if sc is None or red.level("fine") is None or red.level("mid") is None:
        return 0
    last = -1
    for f, m, _ in _level_curves(problem, process, red).values():
        big = needs_error_level(f, m)
        last = max(last, int(np.flatnonzero(big)[-1]) if big.any() else -1)
    T = 0 if last < 0 else min(sc.T, last // 2 + 3)
    return sc.T if T >= ERROR_LEVEL_WHOLE * sc.T else T  # (the rest would save little: the estimate of the end)


def extrapolated_curves(problem, process, red: CoupledReduction, times_fine: np.ndarray) -> dict[str, tuple]:
    """``{var: (R1 per replica (R, n, ...), dt_error (n, ...))}`` for train/test loss, M, Q on the user's
    grid (``n`` its points, padding included); without a ``2b`` level, the user's raw level and NaN."""
    per = _level_curves(problem, process, red)
    fine_ok = red.level("fine") is not None
    out = {}
    for var in CURVES:
        f, m, c = per[var]
        if not fine_ok or red.level("mid") is None:  # fall back to the user's raw level
            raw = m if red.user == 1 else f
            out[var] = (raw, np.full(raw.shape[1:], np.nan))
        else:
            out[var] = combine(times_fine, f, m, c, red.user)
    return out


def target_curves(problem, process, times_fine):
    """``curves(red)`` for the accuracy target: the per-replica extrapolated train and test loss."""
    def curves(red: CoupledReduction):
        c = extrapolated_curves(problem, process, red, times_fine)
        return c["train_loss"][0], c["test_loss"][0]
    return curves


def apply(ds, problem, process, red: CoupledReduction, times_fine: np.ndarray) -> None:
    """Replace the curves of the user's-level dataset ``ds`` by the extrapolated ones, in place:
    ``<var>`` and ``<var>_stderr`` from the per-replica ``R1``, ``<var>_dt_error``, and the raw
    train/test loss as ``<var>_raw`` / ``<var>_raw_stderr`` (one ``update``: an assignment each cost a merge
    of the whole dataset, ~1 ms, a tenth of a tiny solve's extra time)."""
    new = {}
    for var, (r1, err) in extrapolated_curves(problem, process, red, times_fine).items():
        dims = ds[var].dims
        if var in ("train_loss", "test_loss"):
            new[var + "_raw"] = (dims, ds[var].values.copy())
            new[var + "_raw_stderr"] = (dims, ds[var + "_stderr"].values.copy())
        mean, se = mean_stderr(r1)
        new[var] = (dims, mean)
        new[var + "_stderr"] = (dims, se)
        if np.all(np.isfinite(err)):  # NaN: no 2b level (the raw recursion is returned, without an estimate)
            new[var + "_dt_error"] = (dims, err)
    ds.update(new)
