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
from ..errors import CostLimitExceeded, MemoryLimitExceeded, SgdDmftError
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
    ``E[S_m^2] = gamma dt_m``, so ``E[S]^2 / E[S^2] = dt_m / gamma``."""
    m1, m2 = law.moments(n)
    return m1**2 / m2


def estimate_memory(problem, law, t_max: float, paths: int, replicas: int = 1, keep_kernels: bool = True,
                    process=None) -> float:
    """Peak memory in bytes of one replica of :func:`~sgd_dmft.dmft.solve` (plus the kept kernel sums).

    Per replica: the Cholesky factor ``N^2`` and four kernels ``K^2`` (``K = (T+1) k``, ``N = K + k*``);
    for Monte Carlo, per path (8-byte words): its normals ``N``, label noise, multipliers ``T+1``, fields
    ``K`` (dense history), visit times ``visits`` and values ``visits x k``, the step's temporaries
    (``12 k``: fields, gradients, losses; visits = T+1 for dense laws, the busiest path's count for
    sparse ones, :func:`max_visits`) and the float32 tangent store, triangular (:func:`store_rows`
    rows of ``k^2``, its ``visits + 1`` offsets and the ``T+1``-byte visit mask; pathwise tangents);
    with ``keep_kernels``, the running sums of the kernels over replicas, ``4 K^2``. The exact path keeps ``5 (T+1)^2`` second moments. Bytes.
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
        store = proc.responses.store_bytes(store_rows(law, T1), k)
        if store:  # and its row offsets (nv + 1 words) and the visit mask they are built from (T1 bytes)
            store += 8 * (nv + 1) + T1
        per_path = 8 * (N + 1 + T1 + dense + nv * (k + 1) + 2 + 12 * k) + store
        mc = P * per_path
    return float(det + mc + (8 * 4 * K * K if keep_kernels else 0))


def plan_replicas(problem, law, t_max: float, paths: int, replicas: int, max_memory_gb: float,
                  keep_kernels: bool = True, workers: int = 1, process=None) -> tuple[int, int, float]:
    """``(replicas, paths_per_replica, memory_bytes)`` of a run: chunking over paths.

    When ``paths / replicas`` paths do not fit in ``max_memory_gb``, the paths are split into more
    (smaller) replicas, down to ``MIN_PATHS_PER_REPLICA`` per replica (below that the O(1/P) bias of a
    replica's self-consistent kernels becomes visible); the total stays ``paths``. Raises
    :class:`~sgd_dmft.errors.MemoryLimitExceeded` when even that does not fit.
    """
    proc = choose_process(problem, law, process)
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
        return min(max(1, workers), R) * (one + kept) + kept

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
             keep_kernels: bool = True, workers: int = 1, process=None) -> tuple[int, int, int, float]:
    """``(replicas, paths_per_replica, workers, memory_bytes)`` of a solve.

    The replicas (hence the results) do not depend on ``workers``: they are planned for one replica at
    a time (:func:`plan_replicas`), then as many run at once as the memory budget allows (at most
    ``workers``; 1 for a model that cannot be sent to another process, e.g. a custom one).
    """
    R, P, mem = plan_replicas(problem, law, t_max, int(paths), int(replicas), max_memory_gb, keep_kernels,
                              process=process)
    W = min(max(1, int(workers)), R)
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


def estimate_cost(problem, law, t_max: float, paths: int, replicas: int, process=None, levels: float = 1.0) -> float:
    """Multiply-adds of a solve, without building the grid: per replica the kernels ``(T+1)^3 k^3``
    and a per-step overhead, per path ``(T+1) (N + visits (T+1) k^2)`` (fields from the Cholesky factor,
    tangents); the exact path ``(T+1)^3``. ``levels``: the Richardson levels' cost relative to one
    (1 + 8 + 1/4 for dt, dt/2, 2 dt)."""
    proc = choose_process(problem, law, process)
    T1 = grid_steps(law, t_max) + 1
    k, ks = problem.k, problem.kstar
    if not proc.monte_carlo:
        return float(levels * 20.0 * T1**3)
    K = T1 * k
    nv = T1 if (not law.sparse or T1 > MAX_BUILT_STEPS) else max_visits(law, int(T1), max(1, paths // max(1, replicas)))
    per_replica = K**3 + 3e5 * T1  # + the march's per-step overhead (~1 ms)
    per_path = T1 * (ks + K + nv * T1 * k * k)
    return float(levels * (replicas * per_replica + paths * per_path))


def check_cost(cost: float, force: bool = False, limit: float = COST_LIMIT) -> None:
    """Refuse ``cost`` (multiply-adds) past ``limit`` unless ``force`` (CostLimitExceeded naming the keys)."""
    if force or cost <= limit:
        return
    raise CostLimitExceeded(
        f"solver cost {cost:.3g} multiply-adds (~{cost / RATE / 3600:.3g} h at {RATE:.0e}/s) exceeds the limit "
        f"{limit:.3g} (~{limit / RATE / 3600:.3g} h; cost ~ paths x T^2 + replicas x T^3): lower solver.paths, "
        f"solver.replicas or dynamics.t_max (or raise dynamics.dt), or pass --force to run it anyway")
