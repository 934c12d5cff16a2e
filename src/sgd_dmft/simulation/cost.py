"""Up-front memory (bytes) and cost (multiply-adds) of a finite-d simulation, like the solver's planning.

Nothing here allocates: the step counts come from :func:`grid_steps`, which bounds a long grid
instead of building it. The estimates (``n = round(delta d)`` samples, widths ``k``, ``k*``):

* memory: the training set ``X`` ``n x d`` doubles (none for online SGD) and its draw (``n k*``
  labels), ``theta``, ``theta*``, ``Z`` and the update (``d (k + k*)`` each, a few of them), the
  per-sample fields ``r = X theta`` and ``F`` (``n k``); a random law's multipliers ``S`` ``n x T``
  (the law recursion draws them for the whole run; a sparse law also keeps its nonzeros); the step
  algorithms' index / fresh-sample chunks (at most ``2e6`` entries per chunk, ``x d`` for online SGD);
  the records ``seeds x records x (k^2 + k k* + 1)``.
* cost per seed: the law recursion ``T x 2 n d k`` (``X theta`` and ``X^T F`` every step); mini-batch
  SGD and reshuffling ``steps x 2 kappa d k`` plus ``records x n d k`` (the train loss); online SGD
  ``steps x kappa d (2 k + k*)`` (fresh samples drawn too); times ``seeds``. Every step costs at least
  ``STEP_OVERHEAD`` and every record ``RECORD_OVERHEAD`` (interpreter and call overheads, measured).

:func:`check_budget` refuses a run whose memory exceeds the budget (:class:`MemoryLimitExceeded`
naming ``simulation.max_memory_gb`` and the keys to lower) or whose cost exceeds ``max_cost``
(:class:`~sgd_dmft.errors.CostLimitExceeded`; the CLI's ``--force`` lifts it). Dense products (``X theta``,
``X^T F``, the train loss's ``X theta``) are BLAS calls that run at about ``DENSE_RATE`` (measured 4.4-5.0e9
multiply-adds/s on 2 cores), so they count ``RATE / DENSE_RATE`` nominal multiply-adds each: the demo's
estimate was 134 s for 12 s taken with every term at ``RATE``.
"""

from __future__ import annotations

import math
from typing import NamedTuple

from ..budget import COST_LIMIT, RATE, grid_steps
from ..errors import CostLimitExceeded, MemoryLimitExceeded

__all__ = ["SimulationPlan", "estimate", "check_budget", "grid_steps", "CHUNK_ENTRIES", "COST_LIMIT"]

BYTES = 8  # float64 / int64
CHUNK_ENTRIES = 2_000_000  # entries of an index / fresh-sample chunk of the step algorithms (algorithms.py)
DENSE_RATE = 4e9  # multiply-adds per second of BLAS matrix-vector products (4.4-5.0e9 measured, 2 cores)
DENSE = RATE / DENSE_RATE  # nominal multiply-adds per dense multiply-add
STEP_OVERHEAD = 500.0  # multiply-add equivalents of one compiled step (~1.5 us)
CACHED_RATE = 1e9  # multiply-adds per second of the compiled steps while the training set fits in cache
CACHE_BYTES = 32 * 2**20  # ... i.e. below this size (measured: d = 1000, n = 2000 batch-1 SGD 1.25 ns per
# multiply-add; d >= 2000 about RATE: the steps' random rows of X come from memory)
RECORD_OVERHEAD = 6e4  # ... of one record (Python level and the population loss, ~200 us measured at d = 200)


class SimulationPlan(NamedTuple):
    """``memory`` (bytes, peak), ``cost`` (multiply-adds, all seeds), ``steps`` (per seed), ``records``."""

    memory: float
    cost: float
    steps: float
    records: float

    def describe(self) -> str:
        """One line: steps, memory and the cost in nominal seconds."""
        return (f"{self.steps:.3g} steps per seed, {self.records:.3g} records, estimated memory "
                f"{self.memory / 2**20:.0f} MiB, cost {self.cost:.3g} multiply-adds (~{self.cost / RATE:.3g} s)")


def estimate(kind: str, *, n: int, d: int, k: int, kstar: int, seeds: int, batch: int, records: float,
             steps: float, law_random: bool = False, law_sparse: bool = False, nnz_fraction: float = 1.0) -> SimulationPlan:
    """Memory and cost of a simulation of ``kind`` (``"law"``, ``"sgd"``, ``"reshuffle"``, ``"online"``).

    ``records``: record times per seed; ``steps``: algorithm steps per seed (the law recursion: grid
    steps); ``law_random``: the law draws multipliers (not GD); ``law_sparse``, ``nnz_fraction``: a
    sparse law keeps its nonzeros (fraction of ``S`` that is nonzero)."""
    n, d, k, ks = float(n), float(d), float(k), float(kstar)
    fixed = BYTES * (6 * d * (k + ks) + 4 * n * (k + ks + 1))
    rec = BYTES * seeds * records * (k * k + k * ks + 3)
    if kind == "online":
        chunk = max(CHUNK_ENTRIES, batch * d)  # the fresh samples of a chunk of steps, x d
        mem = fixed + BYTES * 3 * chunk + rec
        cost = seeds * steps * (batch * d * (2 * k + ks) + STEP_OVERHEAD)
    elif kind == "law":
        S = BYTES * n * (steps + 1) * (1 + (1.5 * nnz_fraction if law_sparse else 1)) if law_random else 0.0
        mem = fixed + BYTES * n * d * 2 + S + rec  # X, and its scaled copy while drawing
        cost = seeds * (steps * (DENSE * 2 * n * d * k + 20 * STEP_OVERHEAD) + records * RECORD_OVERHEAD)
    else:
        chunk = max(CHUNK_ENTRIES, batch)
        mem = fixed + BYTES * n * d * 2 + BYTES * 3 * chunk + rec
        step = 2 * batch * d * k * (RATE / CACHED_RATE if BYTES * n * d < CACHE_BYTES else 1.0)
        cost = seeds * (steps * (step + STEP_OVERHEAD) + records * (DENSE * n * d * k + RECORD_OVERHEAD))
    return SimulationPlan(float(mem), float(cost), float(steps), float(records))


def check_budget(plan: SimulationPlan, max_memory_gb: float, force: bool = False, max_cost: float = COST_LIMIT,
                 key: str = "simulation.max_memory_gb") -> None:
    """Refuse a plan past the memory budget (always; a NaN budget too) or past ``max_cost`` (unless
    ``force``). ``key``: the budget's name in the message (the API's ``max_memory_gb``)."""
    if not plan.memory <= max_memory_gb * 2**30:
        raise MemoryLimitExceeded(
            f"{key} = {max_memory_gb:g}: the simulation needs about {plan.memory / 2**30:.3g} GiB "
            f"(the n x d training set, n = round(delta d), and the multipliers n x steps); lower simulation.d "
            f"or problem.delta (or dynamics.t_max / raise dynamics.dt for a random law), or raise "
            f"simulation.max_memory_gb")
    if not force and not plan.cost <= max_cost:
        raise CostLimitExceeded(
            f"simulation cost {plan.cost:.3g} multiply-adds (~{_duration(plan.cost / RATE)}; {plan.steps:.3g} steps per "
            f"seed) exceeds the limit {max_cost:.3g} (~{_duration(max_cost / RATE)}): lower dynamics.t_max, "
            f"simulation.d, simulation.seeds or raise dynamics.dt, or pass --force to run it anyway")


def _duration(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "forever"
    for unit, s in (("years", 3.15e7), ("days", 86400.0), ("h", 3600.0), ("min", 60.0)):
        if seconds >= s:
            return f"{seconds / s:.3g} {unit}"
    return f"{seconds:.3g} s"
