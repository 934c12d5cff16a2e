"""Memory and cost planning of a solve: the estimates, the split of paths into replicas, the workers.

Replicas are independent marches run one after the other (or a few at a time in processes), so
memory holds the paths of the replicas in flight only (chunking over paths). Memory is the data a run
allocates (bytes; the interpreter and its imports, about 250 MiB per process, come on top); it is
checked against a measured peak (tracemalloc) in tests/test_hostile.py. Cost
(:func:`estimate_cost`) is in multiply-adds, ``RATE`` of them per second nominally; both are computed
without building the grid (:func:`grid_steps` bounds a long one), so absurd requests are refused
before anything is allocated.
"""

from __future__ import annotations

import math
import pickle

import numpy as np

from ..budget import COST_LIMIT, MAX_BUILT_STEPS, RATE, grid_steps  # noqa: F401  (their names here stay)
from ..curves import thinned_times
from ..errors import ConfigError, CostLimitExceeded, MemoryLimitExceeded, SgdDmftError
from ..parallel import cores
from .processes import choose_process

MIN_PATHS_PER_REPLICA = 500


def max_visits(law, T1: int, paths: int | None = None) -> int:
    """The number of active steps of the busiest of ``paths`` paths over ``T1`` grid points (the size
    of the per-path visit stores); ``paths=None``: a bound for any number of paths."""
    if not law.sparse:
        return T1
    # the count is (nearly) Poisson of mean sum dt_m / gamma
    mean = float(np.sum(_visit_probability(law, T1)))
    if paths is None:  # mean + 8 sd + slack
        return int(min(T1, math.ceil(mean + 8 * math.sqrt(mean + 1) + 8)))
    from scipy.stats import poisson

    return int(min(T1, max(1.0, float(poisson.isf(0.5 / max(1, paths), mean)) + 1)))


def store_rows(law, T1: int) -> float:
    """Expected rows per path of the triangular tangent store: ``sum_m P(visit at m) (m + 1)`` over the
    steps ``m < T`` (``P = 1`` for dense laws, ``dt_m / gamma`` for sparse ones); the sum over the
    replica's paths concentrates on ``P`` times it."""
    m = np.arange(T1 - 1)
    return float(np.sum(_visit_probability(law, T1 - 1) * (m + 1))) if law.sparse else float(np.sum(m + 1))


def _visit_probability(law, n: int) -> np.ndarray:
    """``P(S_m != 0)`` for the first ``n`` steps of a sparse law: ``S in {0, gamma}`` with ``E[S_m] = dt_m``,
    ``E[S_m^2] = gamma dt_m``, so ``E[S]^2 / E[S^2] = dt_m / gamma`` (a learning-rate factor, 0 included,
    scales the jump, not the visits: the unscaled moments)."""
    m1, m2 = law.moments_at(law.steps(n))
    return m1**2 / m2


def kernel_index(T1: int, keep: bool | int) -> np.ndarray | None:
    """The indices of the ``T1`` grid times whose two-time kernels a solve keeps: none (``keep`` False),
    all (True), or every ``stride``-th from 0 where there are more than ``keep`` (an int >= 2), so that at
    most ``keep`` are kept per axis (curves.thinned_times, results.thin_kernels' rule)."""
    if isinstance(keep, bool) or keep is None:
        return np.arange(T1) if keep else None
    return thinned_times(T1, keep)


def estimate_memory(problem, law, t_max: float, paths: int, replicas: int = 1, keep_kernels: bool | int = True,
                    process=None) -> float:
    """Peak memory in bytes of one replica of :func:`~sgd_dmft.dmft.solve` (plus the kept kernel sums).

    Per replica: the Cholesky factor ``N^2`` and four kernels ``K^2`` (``K = (T+1) k``, ``N = K + k*``);
    for Monte Carlo, per path (8-byte words): its normals ``N``, label noise, multipliers ``T+1``, fields
    ``K`` (dense history), visit times ``visits`` and values ``visits x k``, the step's temporaries
    (``12 k``: fields, gradients, losses; visits = T+1 for dense laws, the busiest path's count for
    sparse ones, :func:`max_visits`) and the float32 tangent store, triangular (:func:`store_rows`
    rows of ``k^2``, its ``visits + 1`` offsets and the ``T+1``-byte visit mask; pathwise tangents; with a
    ``window``, :func:`window_store`: a ring of slots of the window's rows; on the paths that carry tangents,
    ``PathwiseTangents.tangent_paths``);
    with ``keep_kernels``, the running sums of the kernels over replicas, ``4 K^2`` (on the kept times,
    :func:`kernel_index`). The exact path keeps ``5 (T+1)^2`` second moments. Bytes.
    """
    proc = choose_process(problem, law, process)
    k, ks = problem.k, problem.kstar
    T1 = len(law.times(t_max))
    K = T1 * k
    N = ks + (K if proc.monte_carlo else 0)
    det = 8 * (N * N + 4 * K * K)
    if not proc.monte_carlo:
        mc = 8 * 5 * T1 * T1
    else:
        P = max(1, paths // max(1, replicas))
        nv = max_visits(law, T1, P)
        dense = 0 if proc.history.sparse else K
        window = getattr(proc.responses, "window", None)
        if window is not None:  # a ring of V slots of `width` rows, their bases
            V, width = window_store(law, t_max, P, window)
            store = proc.responses.store_bytes(V * width, k) + 8 * V
        else:
            store = proc.responses.store_bytes(store_rows(law, T1), k)
            if store:  # and its row offsets (nv + 1 words) and the visit mask they are built from (T1 bytes)
                store += 8 * (nv + 1) + T1
        mc = P * 8 * (N + 1 + T1 + dense + nv * (k + 1) + 2 + 12 * k) + proc.responses.tangent_paths(P) * store
    kept = kernel_index(T1, keep_kernels)
    Kk = 0 if kept is None else len(kept) * k
    return float(det + mc + 8 * 4 * Kk * Kk)


def plan_replicas(problem, law, t_max: float, paths: int, replicas: int, max_memory_gb: float,
                  keep_kernels: bool | int = True, workers: int = 1, process=None) -> tuple[int, int, float]:
    """``(replicas, paths_per_replica, memory_bytes)`` of a run: chunking over paths.

    When ``paths / replicas`` paths do not fit in ``max_memory_gb``, the paths are split into more
    (smaller) replicas, down to ``MIN_PATHS_PER_REPLICA`` per replica (below that the O(1/P) bias of a
    replica's self-consistent kernels becomes visible); the total stays ``paths``. Raises
    :class:`~sgd_dmft.errors.MemoryLimitExceeded` when even that does not fit.
    """
    proc = choose_process(problem, law, process)
    if not max_memory_gb > 0:  # NaN would switch every comparison below off
        raise ConfigError(f"max_memory_gb={max_memory_gb!r} is not allowed: must be a number > 0", key="max_memory_gb")
    lim = max_memory_gb * 2**30
    if not proc.monte_carlo:
        mem = estimate_memory(problem, law, t_max, 1, 1, keep_kernels, proc)
        if mem > lim:
            raise MemoryLimitExceeded(
                f"solver.max_memory_gb = {max_memory_gb:g}: the exact path needs about {mem / 2**30:.3g} GiB "
                f"(T={len(law.times(t_max)) - 1} steps, memory ~ T^2): lower dynamics.t_max or raise dynamics.dt "
                f"(long horizons: a graded grid, dynamics.growth / dt_max), or raise solver.max_memory_gb")
        return 1, 1, mem
    R = int(replicas)

    def mem_of(R: int) -> float:  # `workers` replicas in flight, plus the running kernel sums
        one = estimate_memory(problem, law, t_max, paths, R, False, proc)
        kept = estimate_memory(problem, law, t_max, paths, R, keep_kernels, proc) - one
        W = min(max(1, workers), R)
        if W == 1:  # the march, its summarised kernels, the running sums
            return one + 2 * kept
        # in a worker the summarised kernels are pickled (a second copy); the parent holds the sums, the
        # bytes received and their unpickled copy (measured: logistic SGD T = 5000, 2 workers, 9.3 GB peak
        # over all processes where W (one + kept) + kept said 6.1 GB)
        return W * (one + 2 * kept) + 3 * kept

    mem = mem_of(R)
    while mem > lim and paths // (R + 1) >= MIN_PATHS_PER_REPLICA:
        R = max(R + 1, int(math.ceil(R * mem / lim)))  # the per-path part scales ~ 1/R
        R = min(R, paths // MIN_PATHS_PER_REPLICA)
        mem = mem_of(R)
    if mem > lim:
        T = len(law.times(t_max)) - 1
        raise MemoryLimitExceeded(
            f"solver.max_memory_gb = {max_memory_gb:g}: estimated memory {mem / 2**30:.2f} GiB exceeds it "
            f"(T={T} steps, {paths // R} paths per replica in {R} replicas, the smallest allowed chunk is "
            f"{MIN_PATHS_PER_REPLICA} paths): lower solver.paths or the number of grid steps (long horizons: a graded "
            f"grid, dynamics.growth / dt_max), or raise max_memory_gb")
    return R, max(1, paths // R), mem


def plan_run(problem, law, t_max: float, paths: int, replicas: int, max_memory_gb: float,
             keep_kernels: bool | int = True, workers: int = 1, process=None) -> tuple[int, int, int, float]:
    """``(replicas, paths_per_replica, workers, memory_bytes)`` of a solve.

    The replicas (hence the results) do not depend on ``workers``: they are planned for one replica at
    a time (:func:`plan_replicas`), then as many run at once as the memory budget allows (at most
    ``workers`` and the CPU cores, ``parallel.cores``, with a RuntimeWarning past them; 1 for a model that
    cannot be sent to another process, e.g. a custom one).
    """
    R, P, mem = plan_replicas(problem, law, t_max, int(paths), int(replicas), max_memory_gb, keep_kernels,
                              process=process)
    if int(workers) > cores():
        import warnings

        warnings.warn(f"workers={workers}: capped at the {cores()} CPU cores of this machine (more processes than "
                      f"cores add memory and slow every replica)", RuntimeWarning, stacklevel=3)
    W = min(max(1, int(workers)), R, cores())
    if W > 1:
        try:
            pickle.dumps((problem, law, process))
        except Exception as e:  # e.g. a custom model's callables are closures: run the replicas here
            import warnings

            warnings.warn(f"workers={W}: the problem does not pickle ({type(e).__name__}: {e}); the replicas run in "
                          f"this process (define the model's callables at module level to run them in workers)",
                          RuntimeWarning, stacklevel=3)
            W = 1
    while W > 1:
        mem_w = plan_replicas(problem, law, t_max, P * R, R, math.inf, keep_kernels, W, process)[2]
        if mem_w <= max_memory_gb * 2**30:
            return R, P, W, mem_w
        W -= 1
    return R, P, W, mem


PARALLEL_EFFICIENCY = 0.8  # speed-up per worker of replicas in processes (2 cores: 1.6x measured at T = 4128)
CACHE_ROWS = 2000  # rows of the Cholesky factor past which its triangular solve is memory bound
CACHE_WORDS = 2e6  # words of the normals Z in use past which the field draw is memory bound

# Seconds per unit of work of each part of one replica's march, measured on the 2-core development
# machine (numba + OpenBLAS, one BLAS thread), each from a cProfile of the function doing that part; `make
# bench` prints estimated / measured wall time for every row (benchmarks/bench_horizon.py, cost-model). The units are counted the way
# the code does the work (:func:`work`).
SECONDS_PER = dict(
    step=2.0e-4,  # Python and LAPACK overhead of one grid step (eigh of a k x k block, small products)
    path_step=3.5e-7,  # per path and step, times k: model calls, the control variate, draws
    coordinate=2.2e-10,  # per word read by the coordinate step: C once and R's triangle twice, 2 (m k)^2
    cholesky=3.5e-10,  # per multiply-add of the triangular solve of the field's row, k (m k)^2 / 2
    cholesky_large=6.8e-10,  # the same past CACHE_ROWS rows of L (memory bound: T = 4128 measured)
    fields=3.1e-10,  # per multiply-add of the field draw L @ Z, k (m k) P
    fields_large=4.7e-10,  # the same once Z's rows in use pass CACHE_WORDS words
    history=2.0e-9,  # per path, stored visit and k^2: the memory term of r and the row of C_F (sparse laws)
    history_dense=3.1e-10,  # the same for dense laws: two BLAS products per step, k (m k) P each
    tangents=6.3e-10,  # per multiply-add of the tangent kernels (k = 1, sparse laws): per stored row, per updating path
    tangents_dense=2.6e-10,  # the same for dense laws (k = 1: every step a visit, contiguous vectorised loops)
    tangents_block=1.3e-9,  # the same for k > 1 (k^3 per row, the general block kernel)
    tangents_window=8.7e-10,  # windowed tangents (a ring of slots per path; k^3 per row)
    exact=4.0e-10,  # exact path: per word of its four O(m^2) products and its triangular solve
)


def work(problem, law, t_max: float, paths_per_replica: int, process=None) -> dict[str, float]:
    """Units of work of one replica (:data:`SECONDS_PER` gives their cost), counted without building a
    long grid: ``m`` runs over the ``T + 1`` grid points, a path is visited at step m with probability
    ``q_m`` (1 for dense laws) and its tangent store then holds ``sum_{u < m} q_u (u + 1)`` rows."""
    proc = choose_process(problem, law, process)
    T1 = grid_steps(law, t_max) + 1
    k, P = problem.k, float(paths_per_replica)
    if T1 <= MAX_BUILT_STEPS:
        m = np.arange(int(T1), dtype=float)
        q = _visit_probability(law, int(T1)) if law.sparse else np.ones(int(T1))
    else:  # a bound: a long uniform-like grid of the law's first step
        m = np.linspace(0.0, T1, 4096)
        q = np.full(len(m), (_visit_probability(law, 1)[0] if law.sparse else 1.0))
    dm = T1 / len(m)  # weight of a sample point (1 on a built grid)
    S = lambda x: float(np.sum(x) * dm)  # noqa: E731
    out = dict(step=float(T1))
    if not proc.monte_carlo:
        out["exact"] = S(4.5 * m**2)
        return out
    visits = np.cumsum(q) - q  # expected visits before m
    rows = np.cumsum(q * (m + 1)) - q * (m + 1)  # expected rows of the tangent store before m
    n_win = m + 1
    window = getattr(proc.responses, "window", None)
    if window is not None:  # the rows of the visits in [lo_m, m), each from lo_m on
        lo = _window_lo(law, t_max, len(m), window).astype(float)
        at = lambda c: np.interp(lo, m, c)  # noqa: E731  (a cumulative sum at lo_m)
        rows = np.maximum(0.0, (rows - at(rows)) - lo * (visits - at(visits)))
        n_win = m + 1 - lo
    big = m * k > CACHE_ROWS
    wide = m * k * P > CACHE_WORDS
    out.update(path_step=P * k * T1, coordinate=S(2.0 * (m * k) ** 2), cholesky=S(k**3 * m**2 / 2.0 * ~big),
               cholesky_large=S(k**3 * m**2 / 2.0 * big), fields=S(P * k * k * m * ~wide),
               fields_large=S(P * k * k * m * wide))
    if proc.history.sparse:
        out["history"] = S(2.0 * P * k * k * visits)
    else:
        out["history_dense"] = S(2.0 * P * k * k * m)
    resp = proc.responses
    if resp.name == "pathwise":
        upd = np.ones_like(q) if resp.rao_blackwell else q
        kind = "tangents_block" if k > 1 else ("tangents" if law.sparse else "tangents_dense")
        kind = "tangents_window" if window is not None else kind
        out[kind] = S(resp.tangent_paths(int(P)) * upd * k**3 * (rows + n_win))
    else:  # integration by parts: E[h z^T] (like the field draw) and a triangular solve per step
        out["fields"] += S(P * k * k * m)
        out["cholesky"] += S(k**3 * m**2 / 2.0)
    return out


def _window_lo(law, t_max: float, n: int, window: float) -> np.ndarray:
    """``lo_m`` (float) of a tangent window on ``n`` sample points of the grid (responses.window_starts;
    on a grid too long to build, ``window / dt`` steps back at the law's first step)."""
    T1 = grid_steps(law, t_max) + 1
    if T1 <= MAX_BUILT_STEPS and n == T1:
        from .responses import window_starts

        return window_starts(law.times(t_max), window)
    m = np.linspace(0.0, T1, n)
    return np.maximum(0.0, m - window / float(law.dt))


def window_store(law, t_max: float, P: int, window: float) -> tuple[int, int]:
    """``(V, width)`` of a windowed tangent store (responses._Windowed): ring slots per path (the busiest
    of ``P`` paths' visits in a window, a Poisson quantile, + 1) and rows per slot (steps in a window)."""
    times = law.times(t_max)
    from .responses import window_starts, window_width

    lo = window_starts(times, window)
    width = window_width(lo)
    if not law.sparse:
        return width + 1, width
    q = _visit_probability(law, len(times))
    c = np.concatenate([[0.0], np.cumsum(q)])
    mean = float(np.max(c[1:] - c[lo]))
    from scipy.stats import poisson

    return int(min(width, poisson.isf(0.5 / max(1, P), mean) + 1)) + 1, width


def estimate_seconds(problem, law, t_max: float, paths: int, replicas: int, process=None,
                     extrapolate: bool = False, workers: int = 1, keep_kernels: bool = True) -> float:
    """Wall seconds of a solve: ``replicas`` replicas of ``paths / replicas`` paths, each :func:`work`
    priced by :data:`SECONDS_PER`; with ``extrapolate``, the sum over the Richardson levels the solver
    runs (extrapolate.levels: ``dt, 2 dt, 4 dt``, or ``dt/2, dt, 2 dt``; the ``4 dt`` level counted whole, which
    coupled Monte Carlo levels run only while needed, coupled.ERROR_LEVEL_SE: an upper bound). ``workers``: replicas run that many
    at a time (at most one per CPU), at ``PARALLEL_EFFICIENCY`` (the memory-bound kernels share the bus).
    Without kernels and a named process, a closed form's time where one answers (closed.py)."""
    from . import closed
    from .extrapolate import levels

    if process is None and not keep_kernels:
        fast = closed.estimate_seconds(problem, law, t_max, extrapolate)
        if fast is not None:
            return fast

    P = max(1, int(paths) // max(1, int(replicas)))
    R = 1 if not choose_process(problem, law, process).monte_carlo else max(1, int(replicas))
    laws_ = [law]
    if extrapolate:
        lv = levels(law, problem)
        laws_ = [x for x in (lv.fine, lv.mid, lv.coarse) if x is not None]
    total = 0.0
    for lw in laws_:
        w = work(problem, lw, t_max, P, process)
        total += sum(SECONDS_PER[name] * units for name, units in w.items())
    W = min(max(1, int(workers)), R, cores())
    return R * total / (1.0 if W == 1 else W * PARALLEL_EFFICIENCY)


def estimate_cost(problem, law, t_max: float, paths: int, replicas: int, process=None,
                  extrapolate: bool = False) -> float:
    """Cost of a solve in nominal multiply-adds: :func:`estimate_seconds` times ``RATE`` (the unit of the
    cost limit shared with the simulators, budget.py)."""
    return float(RATE * estimate_seconds(problem, law, t_max, paths, replicas, process, extrapolate))


def check_cost(cost: float, force: bool = False, limit: float = COST_LIMIT) -> None:
    """Refuse ``cost`` (multiply-adds) past ``limit`` unless ``force`` (CostLimitExceeded naming the keys)."""
    if force or cost <= limit:
        return
    raise CostLimitExceeded(
        f"solver cost ~{duration(cost / RATE)} (estimated from measured kernel rates) exceeds the limit "
        f"~{duration(limit / RATE)} (cost ~ paths x T^2 + replicas x T^3 in the grid steps T): lower solver.paths, "
        f"solver.replicas or dynamics.t_max (or raise dynamics.dt), or pass --force to run it anyway")


def duration(seconds: float) -> str:
    """``"42 s"``, ``"12 min"``, ``"2.7 h"``."""
    if seconds < 120:
        return f"{seconds:.3g} s"
    if seconds < 7200:
        return f"{seconds / 60:.3g} min"
    return f"{seconds / 3600:.3g} h"
