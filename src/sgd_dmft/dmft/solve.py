"""``solve``: the DMFT learning curves of a law's recursion at d = infinity, as a short pipeline.

check the request -> choose the sample process -> plan memory and workers -> run the replicas
(:func:`~.march.march`, in this process or a spawn pool) -> reduce them to means and standard
errors -> build the Dataset.
"""

from __future__ import annotations

import math

import numpy as np
import xarray as xr

from .. import __version__
from ..curves import TIME_UNITS, theory_vars
from ..errors import ConfigError
from .applicability import check_estimator
from . import coupled
from .accuracy import Target
from .consistency import review as review_replicas
from .divergence import check_stability, diverged
from .extrapolate import levels, richardson
from .planning import plan_run
from .processes import SampleProcess, choose_process
from .replicas import KERNELS, Reduction, replica, replica_curves, run_replicas

# the names the consistency check used before replicas.py (kept for it)
_replica, _replica_curves, _Reduction = replica, replica_curves, Reduction



def _check_request(law, t_max: float, process: SampleProcess, paths: int, replicas: int):
    """The law's schedule up to ``t_max``, after checking the horizon and the path counts."""
    if not math.isfinite(t_max):
        raise ConfigError(f"t_max={t_max} is not allowed: must be a finite time >= dt={law.dt}", key="t_max")
    schedule = law.schedule(t_max)
    if schedule.T < 1:
        raise ConfigError(f"t_max={t_max} is not allowed: must be at least one grid step dt={law.dt}", key="t_max")
    if process.monte_carlo and (int(replicas) < 1 or int(paths) < 2 * int(replicas)):
        raise ConfigError(f"paths={paths}, replicas={replicas} are not allowed: need replicas >= 1 and "
                          f"paths >= 2 * replicas (paths are split over the replicas)", key="paths")
    return schedule


def _dataset(problem, law, schedule, process, red: Reduction, keep_kernels: bool, snap_idx) -> xr.Dataset:
    """Means and standard errors over replicas, the averaged kernels and the snapshots, on ``time``."""
    R = len(red.Q)
    Qr, Mr = np.stack(red.Q), np.stack(red.M)  # (R, T1, k, k), (R, T1, k, ks)
    trr, ter = replica_curves(problem, process, red)
    data = theory_vars({"train_loss": trr, "test_loss": ter, "M": Mr, "Q": Qr})
    if keep_kernels:
        kd = ("time", "time2", "k", "k2")
        for var, _ in KERNELS:
            data[var] = (kd, red.sums[var] / R)
        data["mu"] = (("time", "k", "kstar"), red.sums["mu"] / R)
    if process.monte_carlo:
        data["r_samples"] = (("snap_time", "path", "k"), np.concatenate(red.snaps, axis=1))
    time = schedule.times
    coords = {"time": time}
    if keep_kernels or process.monte_carlo:
        coords.update(time2=time, snap_time=time[snap_idx])
    ds = xr.Dataset(data, coords=coords)
    ds["time"].attrs.update(units=TIME_UNITS)
    return ds


def _attrs(problem, law, schedule, process, R: int, P: int, W: int, replicas: int, seed: int, clip: float,
           mem: float) -> dict:
    exact = not process.monte_carlo
    return dict(
        kind="theory",
        solver="dmft-forward-march",
        algorithm=law.name,
        dt=float(law.dt),
        gamma=float(getattr(law, "gamma", 0.0)),
        t_max=float(schedule.times[-1]),
        grid_growth=float(law.growth if law.graded else 0.0),
        grid_dt_max=float(law.largest_step if law.graded else law.dt),
        grid_steps=int(schedule.T),
        **problem.attrs(),
        paths=int(0 if exact else P * R),
        replicas=int(R),
        replicas_requested=int(1 if exact else replicas),
        workers=int(W),
        seed=int(seed),
        exact_path=int(exact),
        responses="exact" if exact else process.responses.name,
        tail=float(getattr(getattr(process, "responses", None), "tail", 0.0)),
        cholesky_clip=float(clip),
        memory_estimate_bytes=float(mem),
        sgd_dmft_version=__version__,
    )


def _solve_raw(problem, law, t_max, proc, paths, replicas, seed, max_memory_gb, snapshots, progress, keep_kernels,
               blas_threads, workers, target: Target | None = None) -> xr.Dataset:
    """The raw recursion on the law's grid: plan, run the replicas, reduce, build the Dataset."""
    schedule = _check_request(law, t_max, proc, paths, replicas)
    check_stability(problem, law, t_max)
    R, P, W, mem = plan_run(problem, law, t_max, int(paths), int(replicas), max_memory_gb, keep_kernels, workers, proc)
    snap_idx = np.unique(np.linspace(0, schedule.T, max(1, snapshots)).round().astype(int))
    entropy = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)
    args = (problem, law, schedule, proc, P, snap_idx, keep_kernels, blas_threads)
    target = target if proc.monte_carlo else None
    red = Reduction()
    W = run_replicas(replica, args, entropy, R, schedule.T, W, progress, f"DMFT {law.name} dt={law.dt:g}", red,
                     target, lambda r: replica_curves(problem, proc, r))
    ds = _dataset(problem, law, schedule, proc, red, keep_kernels, snap_idx)
    seed_attr = seed if not isinstance(seed, np.random.SeedSequence) else np.atleast_1d(seed.entropy)[0]
    ds.attrs.update(_attrs(problem, law, schedule, proc, len(red.Q), P, W, replicas, seed_attr, max(red.clips), mem))
    for v in ("train_loss", "test_loss", "M", "Q"):
        if not np.all(np.isfinite(ds[v].values)):
            raise diverged(law, float(schedule.times[-1]), f"non-finite {v}")
    review_replicas(ds, red, problem, proc, args, entropy)  # runaway replicas raise (consistency.py)
    return ds


def _wants_extrapolation(law, extrapolate: bool | None) -> bool:
    if extrapolate is None:
        return bool(law.continuous_time and not law.graded)
    if extrapolate and not law.continuous_time:
        raise ConfigError(f"extrapolate=True is not allowed for algorithm={law.name}: it is the discrete "
                          f"recursion itself (use laws.GF for gradient flow)", key="extrapolate")
    return bool(extrapolate)


def _solve_coupled(problem, law, t_max, proc, seed, kw, target: Target, lv) -> xr.Dataset:
    """Monte Carlo Richardson on coupled levels (coupled.py): each replica runs h/2, h and 2h on common
    random numbers; the curves are the replica means of the per-replica extrapolant."""
    (lf, sf), (lh, sh), cc = lv
    _check_request(law, t_max, proc, kw["paths"], kw["replicas"])
    check_stability(problem, law, t_max)
    R, P, W, mem = plan_run(problem, lf, float(sh.times[-1]), int(kw["paths"]), int(kw["replicas"]),
                            kw["max_memory_gb"], kw["keep_kernels"], kw["workers"], proc)
    snap_idx = np.unique(np.linspace(0, sh.T, max(1, kw["snapshots"])).round().astype(int))
    entropy = np.random.SeedSequence(seed)
    red = coupled.CoupledReduction(cc is not None)
    steps = sf.T + sh.T + (cc[1].T if cc is not None else 0)
    args = (problem, lv, proc, P, snap_idx, kw["keep_kernels"], kw["blas_threads"])
    W = run_replicas(coupled.replica_coupled, args, entropy, R, steps, W, kw["progress"],
                     f"DMFT {law.name} dt={law.dt:g} (dt/2, dt, 2 dt coupled)", red, target,
                     coupled.target_curves(problem, proc, sh.times))
    ds = _dataset(problem, law, sh, proc, red.raw, kw["keep_kernels"], snap_idx)
    ds.attrs.update(_attrs(problem, law, sh, proc, red.count, P, W, kw["replicas"], seed, max(red.raw.clips), mem))
    review_replicas(ds, red.raw, problem, proc, (problem, law, sh, proc, P, snap_idx, False, kw["blas_threads"]),
                    entropy)
    coupled.apply(ds, problem, proc, red)
    for v in ("train_loss", "test_loss", "M", "Q"):
        if not np.all(np.isfinite(ds[v].values)):
            raise diverged(law, float(sh.times[-1]), f"non-finite {v}")
    ds.attrs.update(
        extrapolated=1,
        extrapolation="Richardson 2 f(dt/2) - f(dt) per replica on coupled levels (common random numbers); "
                      + ("error estimate from 2 dt" if cc is not None else "error estimate f(dt/2) - f(dt)"),
        paths_total=int(P * red.count * (3 if cc is not None else 2)),
        levels="dt, dt/2" + (", 2 dt" if cc is not None else "") + " (coupled)",
    )
    return ds


def _solve_extrapolated(problem, law, t_max, proc, seed, kw, target: Target) -> xr.Dataset:
    """Monte Carlo on coupled levels where the law allows it (:func:`_solve_coupled`), else three
    independent solves (h, h/2 and, where allowed, 2h) combined by :func:`richardson`.

    With a target ``rtol`` on the extrapolated curves ``2 f(h/2) - f(h)`` (variance ``4 V_fine + V_raw``):
    the raw level aims at ``rtol / sqrt 2`` and the fine one at ``rtol / (2 sqrt 2)``; the time budget is
    shared in proportion to their expected cost (1 : 8 : 1/4 for h, h/2, 2h)."""
    if proc.monte_carlo:
        lv = coupled.coupled_levels(law, t_max, problem)
        if lv is not None:
            return _solve_coupled(problem, law, t_max, proc, seed, kw, target, lv)
    fine_law, coarse_law = levels(law)
    raw = _solve_raw(problem, law, t_max, proc, seed=seed, **kw, target=target.scaled(2**-0.5, 1 / 9.25))
    lite = {**kw, "keep_kernels": False}
    fine = _solve_raw(problem, fine_law, t_max, proc, seed=np.random.SeedSequence([seed, 1]), **lite,
                      target=target.scaled(2**-1.5, 8 / 8.25))
    coarse = None
    if coarse_law is not None and len(coarse_law.times(t_max)) > 2 and coupled._stable(problem, coarse_law):
        coarse = _solve_raw(problem, coarse_law, t_max, proc, seed=np.random.SeedSequence([seed, 2]), **lite,
                            target=target.share(1.0))
    ds = richardson(raw, fine, coarse)
    levels_used = [raw] + [fine] + ([coarse] if coarse is not None else [])
    ds.attrs.update(
        extrapolated=1,
        extrapolation=f"Richardson 2 f(dt/2) - f(dt); error estimate from "
                      f"{'2 dt' if coarse is not None else 'f(dt/2) - f(dt) (first order, an overestimate)'}",
        paths_total=int(sum(d.attrs["paths"] for d in levels_used)),
        replicas_fine=int(fine.attrs["replicas"]),
        levels="dt, dt/2" + (", 2 dt" if coarse is not None else ""),
    )
    return ds


def _record_accuracy(ds: xr.Dataset, target: Target, rtol: float | None, max_time_s: float | None) -> None:
    """attrs ``rtol_achieved`` (worst relative s.e. of train/test loss over t > 0) and, with a target,
    ``rtol``, ``rtol_met``, ``max_time_s``."""
    worst = 0.0
    for v in ("train_loss", "test_loss"):
        m, se = ds[v].values[1:], ds[v + "_stderr"].values[1:]
        if m.size:
            worst = max(worst, float(np.max(np.abs(se) / np.maximum(np.abs(m), 1e-300))))
    ds.attrs["rtol_achieved"] = worst
    if rtol is not None:
        ds.attrs.update(rtol=float(rtol), rtol_met=int(worst <= rtol))
    if max_time_s is not None:
        ds.attrs["max_time_s"] = float(max_time_s)


def solve(
    problem,
    law,
    *,
    t_max: float,
    paths: int = 4000,
    replicas: int = 4,
    seed: int = 0,
    max_memory_gb: float = 8.0,
    snapshots: int = 5,
    progress: bool = False,
    keep_kernels: bool = True,
    rao_blackwell: bool | None = None,
    blas_threads: int | None = 1,
    responses: str = "auto",
    workers: int = 1,
    process: SampleProcess | None = None,
    extrapolate: bool | None = None,
    rtol: float | None = None,
    max_time_s: float | None = None,
    tail: float = 0.0,
) -> xr.Dataset:
    """DMFT learning curves of the recursion driven by ``law`` at d = infinity (docs/theory.md).

    problem: model, delta, ridge, initialisation (docs/conventions.md). law: the step-multiplier law
    (laws.py), which fixes the time grid (uniform or graded). t_max: horizon in gradient-flow time (an
    SGD epoch lasts gamma). paths: Monte Carlo paths in total, split over ``replicas`` independent
    replicas whose spread gives the standard errors (ignored by the exact path: square loss, linear
    student, i.i.d. multipliers). process: ``ExactLinearPath()`` or ``MonteCarlo(history=, responses=)``;
    None: the exact path where it applies, else Monte Carlo with ``responses`` (``"pathwise"`` tangents,
    ``"stein"`` Gaussian integration by parts for kinks, ``"auto"`` by ``model.smooth``) and
    ``rao_blackwell`` (default: on for dense i.i.d. laws) and ``tail`` (pathwise tangents: the mass of
    large ``|r*|`` whose paths use integration by parts at fixed r*, docs/theory.md section 3c).
    extrapolate: the ``dt -> 0`` limit (Richardson over dt, dt/2, 2 dt; ``<var>_dt_error``, ``<var>_raw``);
    None: for continuous-time laws (GF, SGD, SME, reshuffling, persistent) on uniform grids; False: the raw recursion at dt. rtol, max_time_s: add
    replicas until the worst relative s.e. of train/test loss over t > 0 is <= rtol or the time is spent.
    max_memory_gb: paths are split into more replicas (>= ``MIN_PATHS_PER_REPLICA``) to fit, or the run
    is refused up front (MemoryLimitExceeded). workers: replicas in spawn processes (same numbers).
    blas_threads: BLAS threads inside the march (1 is fastest on 2 cores).

    Returns an xarray.Dataset on ``time`` (T+1 points): ``train_loss``, ``test_loss``, ``M`` (time, k,
    kstar), ``Q`` (time, k, k2), each with ``<name>_stderr``; the kernels ``C_theta``, ``R_theta``, ``C_F``,
    ``R_F`` (time, time2, k, k2) and ``mu``; ``r_samples`` (snap_time, path, k); diagnostics in attrs.
    Raises SolverDiverged on a blow-up (naming the time) and for a linear model past gamma = 2.
    """
    proc = choose_process(problem, law, process, responses, rao_blackwell, tail)
    check_estimator(problem, proc)  # pathwise tangents on a kinked model: refused (applicability.py)
    target = Target.make(rtol, max_time_s)
    kw = dict(paths=paths, replicas=replicas, max_memory_gb=max_memory_gb, snapshots=snapshots, progress=progress,
              keep_kernels=keep_kernels, blas_threads=blas_threads, workers=workers)
    if _wants_extrapolation(law, extrapolate):
        ds = _solve_extrapolated(problem, law, t_max, proc, seed, kw, target)
    else:
        ds = _solve_raw(problem, law, t_max, proc, seed=seed, **kw, target=target)
        ds.attrs["extrapolated"] = 0
    _record_accuracy(ds, target, rtol, max_time_s)
    return ds
