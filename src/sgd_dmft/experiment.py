"""The configuration compiled once: a typed, frozen :class:`Experiment` that run.py and the CLI consume.

:func:`experiment` reads a validated :class:`~sgd_dmft.config.Config` once into its resolved parts:

* ``problem`` (the model checked once, at construction) and ``law`` (None for one-pass SGD);
* ``simulator``: the algorithm object of :mod:`sgd_dmft.simulation` the simulation runs, with its record grid
  (``record_grid``; None: the law's) -- :func:`simulator` is the one answer to "which algorithm does this
  config simulate?", and ``Experiment.continuous`` to "is that the continuous-time algorithm?";
* ``options``: the solver's :class:`~sgd_dmft.dmft.options.TheoryOptions` (paths, replicas, seed, workers, the
  limit as ``Richardson()`` / ``Raw()``, ...) -- :func:`wants_limit` is the one answer to "extrapolate or raw?";
* the plan, computed once on first use: ``process`` (the sample process), ``levels`` (the Richardson levels),
  ``cost`` (multiply-adds of a one-core solve, the cost limit's unit) and ``plan`` (:class:`Plan`: replicas,
  paths per replica, workers, memory, estimated wall time).

A value read from the config keeps its key: errors of these parts name ``section.key`` (:func:`keyed`). Importing this module
is cheap (the solver and the simulators are imported when an experiment is compiled).
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, replace
from functools import cached_property
from typing import TYPE_CHECKING, Any, NamedTuple

from . import algorithms
from .config import Config, law_args
from .errors import ConfigError
from .grid import TimeGrid
from .parallel import cores
from .results import KERNEL_POINTS  # a run keeps its two-time kernels on at most this many times per axis

if TYPE_CHECKING:
    from .dmft.options import TheoryOptions
    from .laws import Law
    from .models import Problem
    from .simulation import Algorithm

__all__ = ["Experiment", "Plan", "experiment", "simulator", "wants_limit", "record_grid"]


class Plan(NamedTuple):
    """What a DMFT run will take: ``replicas`` (after chunking to fit the memory budget) of
    ``paths_per_replica`` paths, ``workers`` at a time, ``memory`` bytes, ``seconds`` of wall time (estimated on
    those workers)."""

    replicas: int
    paths_per_replica: int
    workers: int
    memory: float
    seconds: float


# the config key each argument of the simulator's and the solver's objects is read from
CONFIG_KEYS = {"gamma": "dynamics.gamma", "batch": "simulation.batch", "lr": "dynamics.lr_schedule",
               "law": "dynamics.algorithm", "grid": "dynamics.dt", "paths": "solver.paths",
               "replicas": "solver.replicas", "seed": "solver.seed", "max_memory_gb": "solver.max_memory_gb",
               "workers": "solver.workers", "rtol": "solver.rtol", "max_time_s": "solver.max_time_s",
               "tail": "solver.tail", "response_window": "solver.response_window", "share": "solver.tangent_share"}


@contextmanager
def keyed():
    """An object's ConfigError (naming its argument) as one naming the config key the value was read from."""
    try:
        yield
    except ConfigError as e:
        key = CONFIG_KEYS.get(e.key or "")
        if key is None:
            raise
        raise ConfigError(f"{key}: {e}", key=key) from None


def record_grid(cfg: Config) -> TimeGrid:
    """The record grid of ``[dynamics]`` (``dynamics.dt``, ``growth``, ``dt_max``; 0 = no cap)."""
    dy = cfg.dynamics
    return TimeGrid(dy["dt"], dy["growth"], dy["dt_max"] or None)


def wants_limit(law: Law | None, cfg: Config, asked: bool) -> bool:
    """Extrapolate or raw: the continuous-time limit where it is ``asked`` (``solver.extrapolate``, or the
    comparison's simulation) and the law has one -- a continuous-time law on a uniform grid, or on a graded
    one unless ``solver.extrapolate_graded = false``; else the raw recursion at ``dt``."""
    if not asked or law is None or not law.continuous_time:
        return False
    return bool(cfg.solver["extrapolate_graded"] or not law.graded)


def simulator(cfg: Config, law: Law | None) -> tuple[Algorithm, TimeGrid | None]:
    """Which algorithm a config simulates, and its record grid (None: the law's own): the registry's answer
    (:meth:`algorithms.AlgorithmSpec.simulator`): a step algorithm (true mini-batch SGD, reshuffling, online
    SGD) with ``dynamics.gamma``, ``simulation.batch`` and the learning-rate schedule, recording on the config's
    grid, or the recursion of ``law`` (gd, gf, sme, Bernoulli sgd, persistent)."""
    return algorithms.spec(cfg.dynamics["algorithm"]).simulator(law_args(cfg.dynamics, cfg.simulation), law)


def theory_options(cfg: Config, extrapolate: bool) -> TheoryOptions:
    """The solver options of ``[solver]`` (workers: ``solver.workers``, 0 = one per replica, capped at the CPU
    cores), with the limit ``extrapolate`` (:func:`wants_limit`'s answer)."""
    from .dmft.options import Raw, Richardson, TheoryOptions

    so = cfg.solver
    return TheoryOptions(
        paths=so["paths"], replicas=so["replicas"], seed=so["seed"], max_memory_gb=so["max_memory_gb"],
        workers=min(so["workers"] or min(so["replicas"], cores()), cores()),
        extrapolate=Richardson() if extrapolate else Raw(), rtol=so["rtol"] or None,
        max_time_s=so["max_time_s"] or None, response_window=so["response_window"] or None,
        keep_kernels=KERNEL_POINTS)


@dataclass(frozen=True)
class Experiment:
    """What a configuration asks to compute, compiled once (see the module docstring)."""

    config: Config
    problem: Problem
    law: Law | None  # None for one-pass (online) SGD, which has no step-multiplier law
    simulator: Algorithm
    record_grid: TimeGrid | None  # the simulation's record grid (None: the law's)
    options: TheoryOptions
    compressed: str = ""  # what solver.compress = 'auto' set for a long run ('' when nothing)

    @property
    def algorithm(self) -> str:
        """The configured algorithm's name (``dynamics.algorithm``)."""
        return self.config.dynamics["algorithm"]

    @property
    def spec(self) -> algorithms.AlgorithmSpec:
        """The configured algorithm's entry of the registry (algorithms.py)."""
        return algorithms.spec(self.algorithm)

    @property
    def extrapolate(self) -> bool:
        """Whether the theory is the ``dt -> 0`` limit (Richardson) rather than the raw recursion."""
        return bool(self.options.richardson)

    @property
    def continuous(self) -> bool:
        """Whether the simulation runs the continuous-time algorithm (true mini-batch SGD, true reshuffling),
        so that the theory to compare with is the ``dt -> 0`` limit; False where it runs a grid recursion."""
        return self.spec.simulates_limit(self.config.simulation["batching"])

    def with_limit(self, asked: bool) -> Experiment:
        """This experiment with the limit ``asked`` for (:func:`wants_limit`; the plan is computed anew)."""
        want = wants_limit(self.law, self.config, asked)
        if want == self.extrapolate:
            return self
        with keyed():
            return replace(self, options=theory_options(self.config, want))

    # ---- the plan, computed once (the DMFT side; not for the online ODEs) ----
    @cached_property
    def process(self) -> Any:
        """The sample process the solve runs (the solver's choice, with ``solver.tail``,
        ``solver.response_window`` and ``solver.tangent_share``)."""
        from . import dmft

        so, window = self.config.solver, self.options.response_window
        return dmft.choose_process(self.problem, self.law, None, "auto", None, so["tail"], window,
                                   so["tangent_share"] or None)

    @property
    def given_process(self) -> Any:
        """The process handed to ``solve(process=)``: :attr:`process` where ``solver.tail`` or
        ``solver.tangent_share`` chose the estimator, else None, the solver's own choice (the same process, retried
        with a tail where its tangents diverge)."""
        return self.process if self.config.solver["tail"] or self.config.solver["tangent_share"] else None

    @cached_property
    def levels(self) -> Any:
        """The Richardson levels of the law (extrapolate.levels), or None for the raw recursion."""
        from . import dmft

        return dmft.levels(self.law, self.problem) if self.extrapolate else None

    @cached_property
    def cost(self) -> float:
        """The cost of the solve in multiply-adds (its one-core wall time times ``planning.RATE``)."""
        from .dmft import planning

        if self.law is None:  # the online ODEs: a fixed-step integration over t_max / dt steps
            return planning.grid_steps(record_grid(self.config), self.config.dynamics["t_max"]) * 1e4 * self.problem.k ** 2
        o = self.options
        return planning.estimate_cost(self.problem, self.law, self.config.dynamics["t_max"], o.paths, o.replicas,
                                      self.process, extrapolate=self.extrapolate)

    @cached_property
    def plan(self) -> Plan:
        """Replicas, paths per replica, workers and memory of the finest level (MemoryLimitExceeded past
        ``solver.max_memory_gb``), and the estimated wall time on those workers."""
        from . import dmft

        o, t_max = self.options, self.config.dynamics["t_max"]
        finest = self.levels.fine if self.levels is not None else self.law
        R, P, W, mem = dmft.plan_run(self.problem, finest, t_max, o.paths, o.replicas, o.max_memory_gb,
                                     o.keep_kernels, o.workers, self.process)
        est = dmft.estimate_seconds(self.problem, self.law, t_max, o.paths, o.replicas, self.process,
                                    extrapolate=self.extrapolate, workers=W)
        return Plan(R, P, W, mem, est)


def experiment(cfg: Config, problem: Problem | None = None, extrapolate: bool | None = None) -> Experiment:
    """The experiment of a configuration, as configured (run.compress compresses a long one): ``problem``
    reused where given (a config that differs only in [dynamics] / [solver] keys); ``extrapolate``: the limit
    asked for (default ``solver.extrapolate``; :func:`wants_limit` decides)."""
    law = None if algorithms.spec(cfg.dynamics["algorithm"]).law is None else cfg.make_law()  # validation's law
    problem = cfg.make_problem() if problem is None else problem
    asked = cfg.solver["extrapolate"] if extrapolate is None else extrapolate
    with keyed():
        sim, grid = simulator(cfg, law)
        options = theory_options(cfg, wants_limit(law, cfg, asked))
    return Experiment(config=cfg, problem=problem, law=law, simulator=sim, record_grid=grid, options=options)
