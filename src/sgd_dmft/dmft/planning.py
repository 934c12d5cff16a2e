"""Memory planning of a solve: the estimate, the split of paths into replicas, the workers in flight.

Replicas are independent marches run one after the other (or a few at a time in processes), so
memory holds the paths of the replicas in flight only (chunking over paths).
"""

from __future__ import annotations

import math
import pickle

import numpy as np

from ..errors import MemoryLimitExceeded
from .processes import choose_process

MIN_PATHS_PER_REPLICA = 500


def max_visits(law, T1: int) -> int:
    """Upper bound on the number of active steps of one path over ``T1`` grid points."""
    if not law.sparse:
        return T1
    # sparse laws have S in {0, gamma} with E[S_m] = dt_m, E[S_m^2] = gamma dt_m: active with
    # probability dt_m/gamma. Bound on the maximum over paths of the count: mean + 8 sd + slack.
    m1, m2 = law.moments(T1)
    mean = float(np.sum(m1**2 / m2))
    return int(min(T1, math.ceil(mean + 8 * math.sqrt(mean + 1) + 8)))


def estimate_memory(problem, law, t_max: float, paths: int, replicas: int = 1, keep_kernels: bool = True,
                    process=None) -> float:
    """Peak memory in bytes of one replica of :func:`~sgd_dmft.dmft.solve` (plus the kept kernel sums).

    Per replica: the Cholesky factor ``N^2`` and four kernels ``K^2`` (``K = (T+1) k``, ``N = K + k*``);
    for Monte Carlo, per path: its normals ``N``, multipliers ``T+1``, fields ``K`` (dense history),
    visit values ``visits x k`` and the float32 tangent store ``visits x (T+1) x k^2`` (pathwise
    tangents; visits = T+1 for dense laws, a Binomial bound for sparse ones); with ``keep_kernels``,
    the running sums of the kernels over replicas, ``4 K^2``.
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
        nv = max_visits(law, T1)
        dense = 0 if proc.history.sparse else K
        per_path = 8 * (N + T1 + dense + nv * k) + proc.responses.store_bytes(nv, T1, k)
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
    if not proc.monte_carlo:
        return 1, 1, estimate_memory(problem, law, t_max, 1, 1, keep_kernels, proc)
    R = int(replicas)
    lim = max_memory_gb * 2**30

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
            f"estimated memory {mem / 2**30:.2f} GiB exceeds solver.max_memory_gb={max_memory_gb:g} "
            f"(T={T} steps, {paths // R} paths per replica in {R} replicas, the smallest allowed chunk is "
            f"{MIN_PATHS_PER_REPLICA} paths): lower paths or the number of grid steps (long horizons: a graded "
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
        except Exception:  # a custom model's callables are closures: run the replicas here
            W = 1
    while W > 1:
        mem_w = plan_replicas(problem, law, t_max, P * R, R, math.inf, keep_kernels, W, process)[2]
        if mem_w <= max_memory_gb * 2**30:
            return R, P, W, mem_w
        W -= 1
    return R, P, W, mem
