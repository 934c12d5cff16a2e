"""The string-named interface of the finite-d simulators (kept for existing callers and the CLI).

``simulate(problem, "sgd", t_max=, dt=, d=, gamma=, batch=, batching=, seeds=, ...)`` maps the name
to an algorithm object of :mod:`sgd_dmft.simulation` and calls
:func:`sgd_dmft.simulation.simulate`; new code should use that directly. The names:

``"gd"`` / ``"gf"``: ``LawRecursion(laws.GD(dt))`` (gf = gd at a small dt); ``"sme"``:
``LawRecursion(laws.SME(dt, gamma))``; ``"sgd"`` with ``batching="bernoulli"``:
``LawRecursion(laws.SGD(dt, gamma))``; ``"law"`` with ``law=``: ``LawRecursion(law)``; ``"sgd"``
(``batching="uniform"``): ``MiniBatchSGD(gamma, batch)``; ``"reshuffle"``:
``Reshuffling(gamma, batch)``; ``"online"``: ``OnlineSGD(gamma, batch)``. The step algorithms record
on ``TimeGrid(dt, growth, dt_max)``; the law paths step and record on the law's grid.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Sequence

from . import defaults as _defaults
from . import laws as _laws
from .errors import ConfigError, SimulationDiverged, did_you_mean
from .grid import TimeGrid
from .laws import Law
from .simulation import (Q_MAX, Algorithm, Instance, LawRecursion, MiniBatchSGD, OnlineSGD, ReshuffleStream,
                         Reshuffling, instance_for_seed, law_step, make_instance, n_samples, reshuffle_record_steps,
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

ALGORITHMS = ("gf", "gd", "sgd", "sme", "reshuffle", "online", "law")
BATCHINGS = ("uniform", "bernoulli")


def simulate(problem: Problem, algorithm: str, *, t_max: float, dt: float, d: int, gamma: float = _defaults.GAMMA,
             batch: int = _defaults.BATCH, batching: str = _defaults.BATCHING,
             seeds: int | Sequence[int] = _defaults.SEEDS, seed: int = _defaults.SEED,
             law: Law | None = None, progress: bool = False, growth: float = 0.0,
             dt_max: float | None = None, lr: _laws.LRSchedule | None = None,
             max_memory_gb: float = _defaults.MAX_MEMORY_GB) -> xr.Dataset:
    """Finite-d simulation of the named ``algorithm`` (``gf | gd | sgd | sme | reshuffle | online | law``).

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
    ds.attrs.update(dt=float(dt), batch=int(batch), batching=batching if algorithm == "sgd" else "none")
    if isinstance(alg, LawRecursion):
        ds.attrs["eta"] = float(dt)
    return ds


def algorithm_for(algorithm: str, *, dt: float, gamma: float = _defaults.GAMMA, batch: int = _defaults.BATCH,
                  batching: str = _defaults.BATCHING,
                  law: Law | None = None, growth: float = 0.0, dt_max: float | None = None,
                  lr: _laws.LRSchedule | None = None) -> tuple[Algorithm, TimeGrid | None]:
    """The algorithm object and record grid (None: the law's) of a named call of :func:`simulate`."""
    if algorithm not in ALGORITHMS:
        raise ConfigError(f"algorithm={algorithm!r} is not allowed: must be one of {ALGORITHMS}"
                          f"{did_you_mean(algorithm, ALGORITHMS)}", key="algorithm")
    if batching not in BATCHINGS:
        raise ConfigError(f"batching={batching!r} is not allowed: must be one of {BATCHINGS}"
                          f"{did_you_mean(batching, BATCHINGS)}", key="batching")
    if lr is not None and algorithm == "law":
        raise ConfigError("lr is not allowed with algorithm='law': give the law its own (Law(..., lr=))", key="lr")
    named_law = _named_law(algorithm, batching, dt, gamma, law, dict(growth=float(growth), dt_max=dt_max, lr=lr))
    if named_law is not None:  # sme / bernoulli sgd: the law's gamma is gamma; gd / law: report gamma as given
        return LawRecursion(named_law, gamma=None if algorithm in ("sme", "sgd") else gamma, name=algorithm), None
    cls = {"sgd": MiniBatchSGD, "reshuffle": Reshuffling, "online": OnlineSGD}[algorithm]
    return cls(gamma, batch, lr=lr), TimeGrid(dt, growth, dt_max)


def _named_law(algorithm: str, batching: str, dt: float, gamma: float, law: Law | None, grid: dict) -> Law | None:
    """The law a named law path runs (None for the step algorithms)."""
    if algorithm == "law":
        if law is None:
            raise ConfigError("law=None is not allowed with algorithm='law': pass a sgd_dmft.laws.Law", key="law")
        if not math.isclose(law.dt, dt, rel_tol=1e-9):
            raise ConfigError(f"dt={dt} is not allowed: differs from law.dt={law.dt}", key="dt")
        if grid["growth"] != 0.0:
            raise ConfigError(f"growth={grid['growth']} is not allowed with algorithm='law': the law carries its "
                              f"grid", key="growth")
        return law
    if law is not None:
        raise ConfigError(f"law={law!r} is not allowed with algorithm={algorithm!r}: only with algorithm='law'",
                          key="law")
    if algorithm in ("gd", "gf"):
        return _laws.GD(dt, **grid)
    if algorithm == "sme":
        return _laws.SME(dt, gamma, **grid)
    if algorithm == "sgd" and batching == "bernoulli":
        return _laws.SGD(dt, gamma, **grid)
    return None
