"""``solve``: the DMFT learning curves of a law's recursion at d = infinity, as a short pipeline.

check the request -> choose the sample process -> plan memory and workers -> run the replicas
(:func:`~.march.march`, in this process or a spawn pool) -> reduce them to means and standard
errors -> build the Dataset.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import xarray as xr

from .. import defaults as _defaults
from .. import parallel
from .._version import __version__
from ..curves import TIME_UNITS, theory_vars
from ..models import classifies, zero_one_error
from ..arguments import SOLVE, checked
from ..errors import ConfigError, Diverged, SolverDiverged
from .applicability import check_estimator
from . import closed, coupled
from .accuracy import Target
from .consistency import review as review_replicas
from .divergence import check_stability, diverged
from .extrapolate import levels, richardson
from .planning import kernel_index, plan_run
from .options import TheoryOptions, deprecated_process_flags
from .processes import SampleProcess, choose_process
from .responses import PathwiseTangents
from .replicas import KERNELS, Reduction, replica, replica_curves, run_replicas
from .reporting import TAIL_RETRY, level_notes, record_accuracy, tail_note, window_note, with_test_error

# the names the consistency check used before replicas.py (kept for it)
_replica, _replica_curves, _Reduction = replica, replica_curves, Reduction



def _check_request(law, t_max: float, process: SampleProcess, paths: int, replicas: int):
    """The law's schedule up to ``t_max``, after checking the horizon and the path counts."""
    if not math.isfinite(t_max):
        raise ConfigError(f"t_max={t_max} is not allowed: must be a finite time >= dt={law.dt}", key="t_max")
    schedule = law.schedule(t_max)
    if schedule.T < 1:
        raise ConfigError(f"t_max={t_max} is not allowed: must be at least one grid step dt={law.dt}", key="t_max")
    if process.monte_carlo and int(replicas) < 2:  # the spread of one replica is no standard error
        raise ConfigError(f"replicas={replicas} is not allowed for a Monte Carlo solve: need replicas >= 2 (the "
                          f"standard error is the spread of independent replicas)", key="replicas")
    if process.monte_carlo and int(paths) < 2 * int(replicas):
        raise ConfigError(f"paths={paths}, replicas={replicas} are not allowed: need paths >= 2 * replicas (paths "
                          f"are split over the replicas)", key="paths")
    return schedule


def _dataset(problem, law, schedule, process, red: Reduction, keep_kernels: bool | int, snap_idx) -> xr.Dataset:
    """Means and standard errors over replicas, the averaged kernels and the snapshots, on ``time``; kernels
    thinned by ``keep_kernels`` (planning.kernel_index) on ``kernel_time``, ``kernel_time2`` (attr
    ``kernel_stride``, as results.thin_kernels writes them)."""
    R = len(red.Q)
    Qr, Mr = np.stack(red.Q), np.stack(red.M)  # (R, T1, k, k), (R, T1, k, ks)
    trr, ter = replica_curves(problem, process, red)
    data = theory_vars({"train_loss": trr, "test_loss": ter, "M": Mr, "Q": Qr})
    if classifies(problem.model):  # each replica's test 0-1 error: its spread is the standard error
        data.update(theory_vars({"test_error": np.stack([zero_one_error(problem.model, q, m) for q, m in zip(Qr, Mr)])}))
    time = schedule.times
    idx = kernel_index(len(time), keep_kernels)
    thin = idx is not None and len(idx) < len(time)
    t1, t2 = ("kernel_time", "kernel_time2") if thin else ("time", "time2")
    if idx is not None:
        for var, _ in KERNELS:
            data[var] = ((t1, t2, "k", "k2"), red.sums[var] / R)
        data["mu"] = (("time", "k", "kstar"), red.sums["mu"] / R)
    if process.monte_carlo:
        data["r_samples"] = (("snap_time", "path", "k"), np.concatenate(red.snaps, axis=1))
    coords = {"time": time}
    if thin:
        coords.update(kernel_time=time[idx], kernel_time2=time[idx])
    if not thin and (idx is not None or process.monte_carlo):
        coords.update(time2=time)
    if process.monte_carlo:
        coords.update(snap_time=time[snap_idx])
    ds = xr.Dataset(data, coords=coords)
    ds["time"].attrs.update(units=TIME_UNITS)
    if thin:
        ds.attrs["kernel_stride"] = int(idx[1] - idx[0])
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
        response_window=float(getattr(getattr(process, "responses", None), "window", None) or 0.0),
        tangent_share=float(getattr(getattr(process, "responses", None), "share", None) or 0.0),
        **(law.lr.attrs() if law.lr is not None else {}),
        cholesky_clip=float(clip),
        memory_estimate_bytes=float(mem),
        sgd_dmft_version=__version__,
    )


def _solve_raw(problem, law, t_max, proc, paths, replicas, seed, max_memory_gb, snapshots, progress, keep_kernels,
               blas_threads, workers, target: Target | None = None, pool: parallel.Pool | None = None) -> xr.Dataset:
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
                     target, lambda r: replica_curves(problem, proc, r), pool)
    ds = _dataset(problem, law, schedule, proc, red, keep_kernels, snap_idx)
    seed_attr = seed if not isinstance(seed, np.random.SeedSequence) else np.atleast_1d(seed.entropy)[0]
    ds.attrs.update(_attrs(problem, law, schedule, proc, len(red.Q), P, W, replicas, seed_attr, max(red.clips), mem))
    for v in ("train_loss", "test_loss", "M", "Q"):
        if not np.all(np.isfinite(ds[v].values)):
            raise diverged(law, float(schedule.times[-1]), f"non-finite {v}")
    review_replicas(ds, red, problem, proc, args, entropy)  # runaway replicas raise (consistency.py)
    window_note(ds, red)
    return ds


def _wants_extrapolation(law, extrapolate: bool | None) -> bool:
    if extrapolate is None:
        return bool(law.continuous_time)
    if extrapolate and not law.continuous_time:
        raise ConfigError(f"extrapolate=True is not allowed for algorithm={law.name}: it is the discrete "
                          f"recursion itself (use laws.GF for gradient flow)", key="extrapolate")
    return bool(extrapolate)


def _trim(ds: xr.Dataset, T: int) -> xr.Dataset:
    """The first ``T + 1`` times of a dataset whose levels ran a few steps past the user's grid."""
    sel = {"time": slice(0, T + 1)}
    if "time2" in ds.dims:
        sel["time2"] = slice(0, T + 1)
    if "kernel_time" in ds.dims:  # thinned kernels: those up to the user's last time
        n = int(np.searchsorted(ds.kernel_time.values, ds.time.values[T], side="right"))
        sel.update(kernel_time=slice(0, n), kernel_time2=slice(0, n))
    return ds.isel(sel)


def _solve_coupled(problem, law, t_max, proc, seed, kw, target: Target, cp) -> xr.Dataset:
    """Monte Carlo Richardson on coupled levels (coupled.py): each replica runs b, 2b and 4b on common
    random numbers; the curves are the replica means of the per-replica extrapolant."""
    lv, sf, sraw = cp.levels, cp.schedules[0], cp.raw_schedule
    _check_request(law, t_max, proc, kw["paths"], kw["replicas"])
    check_stability(problem, law, t_max)
    R, P, W, mem = plan_run(problem, lv.fine, float(sf.times[-1]), int(kw["paths"]), int(kw["replicas"]),
                            kw["max_memory_gb"], kw["keep_kernels"], kw["workers"], proc)
    snap_idx = np.unique(np.linspace(0, cp.T_user, max(1, kw["snapshots"])).round().astype(int))
    entropy = np.random.SeedSequence(seed)
    red = coupled.CoupledReduction(cp)
    first = coupled.NAMES[:2]  # fine and mid; the error level after them (_error_level)
    args = (problem, cp, proc, P, snap_idx, kw["keep_kernels"], kw["blas_threads"], first, None)
    W = run_replicas(coupled.replica_coupled, args, entropy, R, cp.steps(first), W, kw["progress"],
                     f"DMFT {law.name} dt={law.dt:g} ({lv.names()} coupled)", red, target,
                     coupled.target_curves(problem, proc, sf.times), kw["pool"])
    W = max(W, _error_level(problem, cp, proc, P, snap_idx, kw, red, seed, W))
    ds = _dataset(problem, law, sraw, proc, red.raw, kw["keep_kernels"], snap_idx)
    ds.attrs.update(_attrs(problem, law, law.schedule(t_max), proc, red.count, P, W, kw["replicas"], seed,
                           max(red.raw.clips), mem))
    review_replicas(ds, red.raw, problem, proc, (problem, law, sraw, proc, P, snap_idx, False, kw["blas_threads"]),
                    entropy)
    window_note(ds, red.raw)
    coupled.apply(ds, problem, proc, red, sf.times)
    if cp.padded:
        ds = _trim(ds, cp.T_user)
    for v in ("train_loss", "test_loss", "M", "Q"):
        if not np.all(np.isfinite(ds[v].values)):
            raise diverged(law, float(ds.time.values[-1]), f"non-finite {v}")
    ds.attrs.update(level_notes(lv, red.failed, True, red.error_until))
    ds.attrs["paths_total"] = int(P * red.count * sum(1 for n in red.levels if red.level(n) is not None))
    return ds


def _error_level(problem, cp, proc, P: int, snap_idx, kw, red, seed, W: int) -> int:
    """The ``4b`` level of the coupled replicas of ``red`` (the same seeds, so coupled to their fine and mid
    levels), over the steps :func:`coupled.error_level_steps` asks for; ``red.error_until``: its last time
    where it stops before the end (0: not run)."""
    T = coupled.error_level_steps(problem, proc, red, cp)
    sc = cp.schedules[2]
    red.error_until = None if sc is None or T == sc.T else float(sc.times[T])
    if not T:
        return 0
    ecp = cp.error_level(T)
    args = (problem, ecp, proc, P, snap_idx, False, kw["blas_threads"], coupled.NAMES[2:], red.z_states)
    return run_replicas(coupled.replica_coupled, args, np.random.SeedSequence(seed), red.count, T, W,
                        kw["progress"], f"DMFT error level 4 dt (to t = {sc.times[T]:g})", red, pool=kw["pool"])


def _internal(problem, law, horizon, proc, seed, kw, target):
    """An internal level's raw solve (no kernels), or its failure message."""
    try:
        return _solve_raw(problem, law, horizon, proc, seed=seed, **{**kw, "keep_kernels": False}, target=target), None
    except Diverged as e:
        return None, str(e)


def _solve_extrapolated(problem, law, t_max, proc, seed, kw, target: Target) -> xr.Dataset:
    """Monte Carlo on coupled levels where the law allows it (:func:`_solve_coupled`), else independent
    solves on the levels (extrapolate.levels: dt, 2 dt, 4 dt or dt/2, dt, 2 dt) combined by
    :func:`richardson`.

    With a target ``rtol`` on the extrapolated curves ``2 f(b) - f(2b)`` (variance ``4 V_b + V_2b``): the
    ``2b`` level aims at ``rtol / sqrt 2`` and the ``b`` one at ``rtol / (2 sqrt 2)``; the time budget is
    shared in proportion to their expected cost (``P T^2``)."""
    if proc.monte_carlo:
        cp = coupled.coupled_levels(law, t_max, problem)
        if cp is not None:
            return _solve_coupled(problem, law, t_max, proc, seed, kw, target, cp)
    lv = levels(law, problem)
    sh = law.schedule(t_max)
    horizon = coupled.padded_horizon(lv, sh)
    cost = (1.0, 0.25, 0.0625) if lv.user == 0 else (4.0, 1.0, 0.25)
    share = [c / sum(cost) for c in cost]
    seeds = {lv.user: seed, 1 - lv.user: np.random.SeedSequence([seed, 1])}
    failed = {}
    if lv.user == 0:
        fine = _solve_raw(problem, lv.fine, horizon, proc, seed=seed, **kw, target=target.scaled(2**-1.5, share[0]))
    else:
        fine, failed["fine"] = _internal(problem, lv.fine, horizon, proc, seeds[0], kw, target.scaled(2**-1.5, share[0]))
    tf = fine.time.values if fine is not None else None
    h_mid = float(tf[(len(tf) - 1) // 2 * 2]) if tf is not None else float(sh.times[-1])
    if lv.user == 1:
        mid = _solve_raw(problem, lv.mid, h_mid, proc, seed=seed, **kw, target=target.scaled(2**-0.5, share[1]))
    else:
        mid, failed["mid"] = _internal(problem, lv.mid, h_mid, proc, seeds[1], kw, target.scaled(2**-0.5, share[1]))
    coarse = None
    if lv.coarse is not None and fine is not None and mid is not None and len(tf) > 8:
        coarse, failed["coarse"] = _internal(problem, lv.coarse, float(tf[(len(tf) - 1) // 4 * 4]), proc,
                                             np.random.SeedSequence([seed, 2]), kw, target.share(share[2]))
    failed = {k: v for k, v in failed.items() if v is not None}
    if coarse is None and "coarse" not in failed:  # too short a grid for the 4b level
        lv = lv._replace(coarse=None)
    ds = richardson(lv, fine, mid, coarse) if fine is not None and mid is not None else (mid if fine is None else fine)
    ds = _trim(ds, sh.T) if len(ds.time) > sh.T + 1 else ds
    ds.attrs.update(level_notes(lv, failed, False))
    ds.attrs.update(t_max=float(sh.times[-1]), grid_steps=int(sh.T),
                    paths_total=int(sum(d.attrs["paths"] for d in (fine, mid, coarse) if d is not None)))
    if fine is not None and lv.user == 1:
        ds.attrs["replicas_fine"] = int(fine.attrs["replicas"])
    return ds


def _solve_march(problem, law, t_max, proc, seed, kw, target, extrapolate) -> xr.Dataset:
    if _wants_extrapolation(law, extrapolate):
        return _solve_extrapolated(problem, law, t_max, proc, seed, kw, target)
    ds = _solve_raw(problem, law, t_max, proc, seed=seed, **kw, target=target)
    ds.attrs["extrapolated"] = 0
    return ds


def _solve_or_retry(problem, law, t_max, proc, chosen: bool, seed, kw, target, extrapolate) -> xr.Dataset:
    """The march; where it diverged with the solver's ``chosen`` pathwise tangents on every path, once more
    with tail paths (:func:`_tail_process`): the tangents, not the dynamics, may have run away (section 3c).
    Where the retry diverges too, the first run's error is raised (it says where the user's run failed; the
    retry's, e.g. integration by parts amplifying noise on a deterministic law, is a note on it)."""
    try:
        return _solve_march(problem, law, t_max, proc, seed, kw, target, extrapolate)
    except SolverDiverged as e:
        retry = _tail_process(proc) if chosen else None
        if retry is None:
            raise
        try:
            ds = _solve_march(problem, law, t_max, retry, seed, kw, target, extrapolate)
        except SolverDiverged as again:
            e.add_note(f"(solved again with integration by parts on the tail paths, tail={TAIL_RETRY:g}: that "
                       f"diverged too: {str(again).splitlines()[0][:200]})")
            raise e from None
        tail_note(ds, e)
        return ds


def _tail_process(proc) -> SampleProcess | None:
    """The process of the retry after a SolverDiverged: pathwise tangents with ``tail = TAIL_RETRY`` (the same
    estimand: integration by parts on the paths of the largest ``|r*|``, whose chaotic visit maps make tangents
    grow exponentially, docs/theory.md section 3c), where the failed solve used tangents on every path."""
    resp = getattr(proc, "responses", None)
    if not (proc.monte_carlo and isinstance(resp, PathwiseTangents) and resp.tail == 0.0):
        return None
    return replace(proc, responses=replace(resp, tail=TAIL_RETRY))


def _closed_form(problem, law, t_max, proc, extrapolate) -> xr.Dataset | None:
    """Closed forms first (closed.py): the linear model's exact curves where they answer the request."""
    if proc.monte_carlo:
        return None
    schedule = _check_request(law, t_max, proc, 0, 1)
    check_stability(problem, law, t_max)
    ds = closed.dataset(problem, law, schedule, _wants_extrapolation(law, extrapolate))
    if ds is not None:
        ds.attrs.update(rtol_achieved=0.0, sgd_dmft_version=__version__)
    return ds




@checked(SOLVE)  # ConfigError naming an invalid argument (arguments.py); replicas >= 2: _check_request
def solve(problem, law, *, t_max: float, paths: int = _defaults.PATHS, replicas: int = _defaults.REPLICAS,
          seed: int = _defaults.SEED, max_memory_gb: float = _defaults.MAX_MEMORY_GB, snapshots: int = 5,
          progress: bool = False, keep_kernels: bool | int = True, rao_blackwell: bool | None = None,
          blas_threads: int | None = 1, responses: str = "auto", workers: int = 1, process: SampleProcess | None = None,
          extrapolate: bool | None = None, rtol: float | None = None, max_time_s: float | None = None,
          tail: float = 0.0, response_window: float | None = None, options: TheoryOptions | None = None) -> xr.Dataset:
    """DMFT learning curves of the recursion driven by ``law`` at d = infinity (docs/theory.md).

    problem: model, delta, ridge, initialisation (docs/conventions.md). law: the step-multiplier law (laws.py)
    and its time grid. t_max: horizon in gradient-flow time (an SGD epoch lasts gamma). paths: Monte Carlo paths in total, split over ``replicas`` independent
    replicas whose spread gives the standard errors (ignored by the exact path: square loss, linear
    student, i.i.d. multipliers). process: ``ExactLinearPath()`` or ``MonteCarlo(history=, responses=)``;
    None: the exact path where it applies, else Monte Carlo with ``responses`` (``"pathwise"`` tangents,
    ``"stein"`` Gaussian integration by parts for kinks, ``"auto"`` by ``model.smooth``), with
    ``response_window`` (tangents kept over that much time of the past, ``R_F[t, s] = 0`` beyond: work and
    memory linear in the horizon; the error it causes: attr ``response_window_error``, warned past 0.5 %).
    extrapolate: the ``dt -> 0`` limit (levels dt, 2 dt, 4 dt: extrapolate.py; ``<var>_dt_error``, ``_raw``);
    None: for continuous-time laws; False: the raw recursion at dt. rtol, max_time_s: add replicas until
    the worst relative s.e. of train/test loss over t > 0 is <= rtol or the time is spent.
    max_memory_gb: paths split into more replicas to fit, or refused up front (MemoryLimitExceeded). workers:
    replicas in spawn processes (same numbers). blas_threads: BLAS threads in the march (1: fastest on 2 cores).
    Closed forms first (closed.py): the linear model's GD / GF / SGD-limit curves without kernels, process.
    keep_kernels: kernels on every time (True), none (False), or at most this many times per axis (an int >= 2:
    every stride-th time on ``kernel_time``, ``kernel_time2``, attr ``kernel_stride``; replicas send only those).

    Returns an xarray.Dataset on ``time`` (T+1 points): ``train_loss``, ``test_loss``, ``M`` (time, k,
    kstar), ``Q`` (time, k, k2), each with ``<name>_stderr``; the kernels ``C_theta``, ``R_theta``, ``C_F``,
    ``R_F`` (time, time2, k, k2) and ``mu``; ``r_samples`` (snap_time, path, k); diagnostics in attrs.
    Raises SolverDiverged on a blow-up (naming the time) and for a linear model past gamma = 2.

    options: these options as one :class:`~.options.TheoryOptions` (the limit ``Richardson()`` / ``Raw()``).
    Deprecated (SgdDmftDeprecationWarning): ``responses``, ``rao_blackwell``, ``tail``, the estimator of the
    solver's Monte Carlo choice: pass the process, ``MonteCarlo(responses=GaussianIBP())`` or
    ``MonteCarlo(responses=PathwiseTangents(rao_blackwell=, tail=))`` (docs/theory.md section 3c for the tail)."""
    o = TheoryOptions.merge(options, {k: v for k, v in locals().items() if k in TheoryOptions.FIELDS})
    deprecated_process_flags(responses, rao_blackwell, tail)
    proc = choose_process(problem, law, process, responses, rao_blackwell, tail, o.response_window)
    check_estimator(problem, proc)  # pathwise tangents on a kinked model: refused (applicability.py)
    closed_ds = _closed_form(problem, law, t_max, proc, o.richardson) if process is None and not o.keep_kernels else None
    if closed_ds is not None:
        return with_test_error(closed_ds, problem)
    target = Target.make(o.rtol, o.max_time_s, o.max_memory_gb)
    with parallel.Pool(o.workers) as pool:  # one set of workers for every level and batch (parallel.Pool)
        kw = dict(paths=o.paths, replicas=o.replicas, max_memory_gb=o.max_memory_gb, snapshots=o.snapshots,
                  progress=progress, keep_kernels=o.keep_kernels, blas_threads=o.blas_threads, workers=o.workers,
                  pool=pool)
        ds = _solve_or_retry(problem, law, t_max, proc, process is None, o.seed, kw, target, o.richardson)
    record_accuracy(ds, target, o.rtol, o.max_time_s)
    return with_test_error(ds, problem)
