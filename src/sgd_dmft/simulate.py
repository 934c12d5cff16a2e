"""The string-named interface of the finite-d simulators (kept for existing callers and the CLI).

``simulate(problem, "sgd", t_max=, dt=, d=, gamma=, batch=, batching=, seeds=, ...)`` maps the name
to an algorithm object of :mod:`sgd_dmft.simulation` and calls
:func:`sgd_dmft.simulation.simulate`; new code should use that directly. The names:

the registry of :mod:`sgd_dmft.algorithms` (one place for every name): ``"gd"`` / ``"gf"``:
``LawRecursion(laws.GD(dt))`` / ``LawRecursion(laws.GF(dt))`` (the same recursion); ``"sme"``:
``LawRecursion(laws.SME(dt, gamma))``; ``"sgd"`` with ``batching="bernoulli"``:
``LawRecursion(laws.SGD(dt, gamma))``; ``"persistent"``: ``LawRecursion(laws.Persistent(dt, 0.5, 1.0))``;
``"sgd"`` (``batching="uniform"``): ``MiniBatchSGD(gamma, batch)``; ``"reshuffle"``:
``Reshuffling(gamma, batch)``; ``"online"``: ``OnlineSGD(gamma, batch)``; and ``"law"`` with ``law=``:
``LawRecursion(law)``. The step algorithms record on ``TimeGrid(dt, growth, dt_max)``; the law paths step
and record on the law's grid.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Sequence

from . import algorithms
from . import defaults as _defaults
from . import laws as _laws
from .errors import ConfigError, SimulationDiverged, did_you_mean
from .grid import TimeGrid
from .laws import Law
from .simulation import (Q_MAX, Algorithm, Instance, LawRecursion, ReshuffleStream,
                         instance_for_seed, law_step, make_instance, n_samples, reshuffle_record_steps,
                         run_seed, sgd_step, uniform_batches)
from .simulation import simulate as _simulate

if TYPE_CHECKING:
    import xarray as xr

    from .models import Problem

__all__ = [
    "simulate", "algorithm_for", "n_samples", "SimulationDiverged", "instance_for_seed", "make_instance",
    "Instance", "law_step", "sgd_step", "uniform_batches", "ReshuffleStream", "reshuffle_record_steps",
    "run_seed", "ALGORITHMS", "BATCHINGS", "Q_MAX",
]

ALGORITHMS = algorithms.names() + ("law",)  # the built-in names (algorithm_for reads the registry: any registered)
BATCHINGS = ("uniform", "bernoulli")


def simulate(problem: Problem, algorithm: str, *, t_max: float, dt: float, d: int, gamma: float = _defaults.GAMMA,
             batch: int = _defaults.BATCH, batching: str = _defaults.BATCHING,
             seeds: int | Sequence[int] = _defaults.SEEDS, seed: int = _defaults.SEED,
             law: Law | None = None, progress: bool = False, growth: float = 0.0,
             dt_max: float | None = None, lr: _laws.LRSchedule | None = None,
             max_memory_gb: float = _defaults.MAX_MEMORY_GB) -> xr.Dataset:
    """Finite-d simulation of the named ``algorithm`` (``gf | gd | sgd | sme | reshuffle | online | persistent |
    law``, or a registered one).

    ``t_max``, ``dt``: records at ``t_m = m dt`` up to t_max (gradient-flow time); for the law paths
    ``dt`` is also the step of the recursion. ``gamma``: SGD step scale (``eta = gamma kappa / n``); for
    sme / bernoulli sgd the law's gamma. ``batch``: kappa (sgd uniform, reshuffle, online).
    ``batching``: ``uniform`` (true mini-batch SGD) or ``bernoulli`` (``laws.SGD(dt, gamma)``).
    ``law``: the multiplier law for ``algorithm="law"`` (it carries its own grid). ``growth``,
    ``dt_max``: a graded grid (:class:`~sgd_dmft.grid.TimeGrid`). ``lr``: a learning-rate schedule
    (:class:`~sgd_dmft.laws.LRSchedule`; the law's own for ``"law"``). ``seeds``, ``seed``, ``d``,
    ``progress``, ``max_memory_gb`` (a run whose memory estimate exceeds it is refused up front):
    as :func:`sgd_dmft.simulation.simulate`, which has the Dataset layout.
    """
    alg, grid = algorithm_for(algorithm, dt=dt, gamma=gamma, batch=batch, batching=batching, law=law,
                              growth=growth, dt_max=dt_max, lr=lr)
    ds = _simulate(problem, alg, t_max=t_max, d=d, seeds=seeds, seed=seed, grid=grid, progress=progress,
                   max_memory_gb=max_memory_gb)
    # the attributes of the named call: the arguments as given
    bernoulli = algorithm != "law" and algorithms.spec(algorithm).bernoulli  # (the batching is sgd's choice)
    ds.attrs.update(dt=float(dt), batch=int(batch), batching=batching if bernoulli else "none")
    if isinstance(alg, LawRecursion):
        ds.attrs["eta"] = float(dt)
    return ds


def algorithm_for(algorithm: str, *, dt: float, gamma: float = _defaults.GAMMA, batch: int = _defaults.BATCH,
                  batching: str = _defaults.BATCHING,
                  law: Law | None = None, growth: float = 0.0, dt_max: float | None = None,
                  lr: _laws.LRSchedule | None = None) -> tuple[Algorithm, TimeGrid | None]:
    """The algorithm object and record grid (None: the law's) of a named call of :func:`simulate`: the
    registry's (:meth:`sgd_dmft.algorithms.AlgorithmSpec.simulator`), or the recursion of ``law`` for ``"law"``."""
    names = algorithms.names() + ("law",)
    if algorithm not in names:
        raise ConfigError(f"algorithm={algorithm!r} is not allowed: must be one of {names}"
                          f"{did_you_mean(algorithm, names)}", key="algorithm")
    if batching not in BATCHINGS:
        raise ConfigError(f"batching={batching!r} is not allowed: must be one of {BATCHINGS}"
                          f"{did_you_mean(batching, BATCHINGS)}", key="batching")
    if algorithm == "law":
        if lr is not None:
            raise ConfigError("lr is not allowed with algorithm='law': give the law its own (Law(..., lr=))", key="lr")
        return LawRecursion(_given_law(law, dt, growth), gamma=gamma, name="law"), None
    if law is not None:
        raise ConfigError(f"law={law!r} is not allowed with algorithm={algorithm!r}: only with algorithm='law'",
                          key="law")
    args = algorithms.LawArgs(dt, gamma, growth=float(growth), dt_max=dt_max, lr=lr, batch=batch, batching=batching)
    return algorithms.spec(algorithm).simulator(args)


def _given_law(law: Law | None, dt: float, growth: float) -> Law:
    """The law of ``algorithm="law"``, checked against the call's ``dt`` and ``growth``."""
    if law is None:
        raise ConfigError("law=None is not allowed with algorithm='law': pass a sgd_dmft.laws.Law", key="law")
    if not math.isclose(law.dt, dt, rel_tol=1e-9):
        raise ConfigError(f"dt={dt} is not allowed: differs from law.dt={law.dt}", key="dt")
    if growth != 0.0:
        raise ConfigError(f"growth={growth} is not allowed with algorithm='law': the law carries its grid", key="growth")
    return law
