"""``simulate(problem, algorithm, ...)``: run an algorithm object over seeds and return the curve Dataset.

Each seed value ``s`` draws its own instance (teacher, initialisation, training set; instance.py)
and runs the algorithm from ``theta_0`` with its own rng; ``test_loss`` is the exact population loss
of the current ``theta`` for the drawn teacher, ``population_loss(model, Q, M, S*)`` with the
empirical ``S* = theta*^T theta* / d``. The Dataset follows the simulation schema of curves.py.
"""

from __future__ import annotations

import contextlib
import numbers
from typing import TYPE_CHECKING, Sequence

import numpy as np

from .. import defaults as _defaults
from ..curves import simulation_dataset
from .. import arguments
from ..errors import ConfigError
from ..grid import TimeGrid
from ..models import population_loss, zero_one_error
from ..progress import enabled as progress_enabled
from . import cost
from .algorithms import Algorithm
from .instance import Instance, make_instance, n_samples, seed_rngs
from .recorder import Recorder

if TYPE_CHECKING:
    import xarray as xr

    from ..models import Problem


def simulate(problem: Problem, algorithm: Algorithm, *, t_max: float, d: int,
             seeds: int | Sequence[int] = _defaults.SEEDS, seed: int = _defaults.SEED, grid: TimeGrid | None = None,
             progress: bool = False, max_memory_gb: float = _defaults.MAX_MEMORY_GB) -> xr.Dataset:
    """Finite-d simulation of ``algorithm`` on ``problem`` (algorithms.py has the recursions).

    Parameters
    ----------
    problem: model, delta, ridge and initialisation.
    algorithm: :class:`LawRecursion`, :class:`MiniBatchSGD`, :class:`Reshuffling` or :class:`OnlineSGD`.
    t_max: last record time (gradient-flow time; the grid point nearest to it).
    d: dimension (``n = round(delta d)`` training samples).
    seeds: number of seeds (values ``0 .. seeds-1``) or explicit seed values.
    seed: base seed; seed value ``s`` uses ``SeedSequence([seed, s])``.
    grid: the record grid (:class:`~sgd_dmft.grid.TimeGrid`); LawRecursion records on ``law.grid``
        (pass None), the others need one.
    progress: tqdm bar over seeds x steps (progress.enabled: True shows it, None when stderr is a terminal).
    max_memory_gb: the run's memory estimate (cost.py) past it is refused before anything is allocated
        (:class:`~sgd_dmft.errors.MemoryLimitExceeded`; ``inf``: no budget).

    Returns an xarray Dataset with ``train_loss``, ``test_loss`` (seed, time), ``M`` (seed, time, k,
    kstar), ``Q`` (seed, time, k, k2). Raises :class:`~sgd_dmft.errors.ConfigError` on invalid input and
    :class:`~sgd_dmft.errors.SimulationDiverged` on blow-up.
    """
    record_grid, n, seed_values = _check(problem, algorithm, t_max, d, seeds, grid)
    seed = arguments.integer("seed", seed, 0)
    _check_memory(problem, algorithm, record_grid, float(t_max), int(d), n, len(seed_values), max_memory_gb)
    times = record_grid.times(t_max)
    show = progress_enabled(progress)
    total = algorithm.n_steps(times, n) * len(seed_values) if show else 0
    with _progress_bar(show, total, f"simulate {algorithm.name} d={d}") as pbar:
        per_seed = _run_seeds(problem, algorithm, times, d, seed_values, seed, pbar)
    attrs = _attrs(problem, algorithm, record_grid, times, d, n, seed)
    return simulation_dataset(times, seed_values, per_seed, attrs)


def run_seed(problem: Problem, algorithm: Algorithm, times: np.ndarray, d: int, s: int, seed: int = 0,
             pbar=None) -> tuple[Recorder, np.ndarray, Instance]:
    """Run seed value ``s`` (base seed ``seed``) on the record grid ``times`` ``(R,)``.

    Returns ``(recorder, final theta (d, k), instance)``; the instance is drawn with the first rng of
    ``SeedSequence([seed, s]).spawn(2)``, the algorithm runs with the second.
    """
    data_rng, alg_rng = seed_rngs(seed, s)
    inst = make_instance(problem, d, data_rng, with_data=algorithm.with_data)
    rec, theta = algorithm.run(problem, inst, times, alg_rng, pbar)
    return rec, theta, inst


def _run_seeds(problem, algorithm, times, d, seed_values, seed, pbar) -> dict[str, np.ndarray]:
    """Per-seed curves ``{train_loss, test_loss: (S, R), M: (S, R, k, k*), Q: (S, R, k, k)}``, and for a
    classifier ``test_error`` (S, R): the test 0-1 error of the seed's overlaps and teacher (exact for Gaussian
    inputs: :func:`~sgd_dmft.models.zero_one_error`, the theory's function)."""
    model = problem.model
    k, ks, S_, R = model.k, model.kstar, len(seed_values), len(times)
    train, test, err = np.empty((S_, R)), np.empty((S_, R)), np.empty((S_, R))
    Qa, Ma = np.empty((S_, R, k, k)), np.empty((S_, R, k, ks))
    for j, s in enumerate(seed_values):
        rec, _, inst = run_seed(problem, algorithm, times, d, s, seed, pbar)
        Sstar = inst.theta_star.T @ inst.theta_star / d
        train[j], Qa[j], Ma[j] = rec.train, rec.Q, rec.M
        test[j] = population_loss(model, rec.Q, rec.M, Sstar)
        e = zero_one_error(model, rec.Q, rec.M, Sstar)
        err[j] = np.nan if e is None else e
    out = {"train_loss": train, "test_loss": test, "M": Ma, "Q": Qa}
    return out if np.isnan(err).all() else {**out, "test_error": err}


MAX_SEEDS = 10**6  # seeds of one call (config.py: simulation.seeds)


def _check(problem, algorithm, t_max, d, seeds, grid) -> tuple[TimeGrid, int, list[int]]:
    """simulate's own checks (the algorithm and the law check themselves): ``(record grid, n, seeds)``."""
    arguments.problem(problem)
    if not isinstance(algorithm, Algorithm):
        raise ConfigError(f"algorithm={algorithm!r} is not allowed: must be a LawRecursion, MiniBatchSGD, "
                          f"Reshuffling or OnlineSGD object (string names: sgd_dmft.simulate.simulate)",
                          key="algorithm")
    arguments.number("t_max", t_max, 0.0)
    arguments.integer("d", d, 1)
    n = n_samples(problem, d)
    if n < 1:
        raise ConfigError(f"d={d} is not allowed: n = round(delta d) = {n} must be >= 1", key="d")
    algorithm.check(n)
    if isinstance(seeds, numbers.Integral) and not isinstance(seeds, bool):
        seed_values = list(range(arguments.integer("seeds", seeds, 1, MAX_SEEDS)))
    elif isinstance(seeds, (list, tuple, range, np.ndarray)):
        seed_values = [arguments.integer("seeds", s, 0) for s in np.asarray(seeds, dtype=object).ravel()]
    else:
        raise ConfigError(f"seeds={seeds!r} is not allowed: must be a number of seeds or a list of seed values "
                          f"(integers >= 0)", key="seeds")
    if not seed_values:
        raise ConfigError(f"seeds={seeds!r} is not allowed: must give at least one seed value", key="seeds")
    return algorithm.record_grid(grid), n, seed_values


def _check_memory(problem, algorithm, grid: TimeGrid, t_max: float, d: int, n: int, seeds: int,
                  max_memory_gb) -> None:
    """Refuse a run whose memory estimate (cost.estimate, the CLI's) exceeds ``max_memory_gb``, before
    the record grid or the training set is built (MemoryLimitExceeded)."""
    budget = arguments.number("max_memory_gb", max_memory_gb, 0.0, lo_open=True, finite=False)
    model, law = problem.model, getattr(algorithm, "law", None)
    if law is not None:
        steps = cost.grid_steps(law, t_max)
        random_law = not law.deterministic
        plan = cost.estimate("law", n=n, d=d, k=model.k, kstar=model.kstar, seeds=seeds, batch=1, records=steps + 1,
                             steps=steps, law_random=random_law, law_sparse=bool(random_law and law.sparse),
                             nnz_fraction=min(1.0, law.dt / (law.jump_size or law.dt)))
    else:
        kind = "sgd" if algorithm.with_data else "online"
        plan = cost.estimate(kind, n=n, d=d, k=model.k, kstar=model.kstar, seeds=seeds, batch=algorithm.batch,
                             records=cost.grid_steps(grid, t_max) + 1,
                             steps=t_max * n / (algorithm.gamma * algorithm.batch))
    cost.check_budget(plan, budget, force=True, key="max_memory_gb")


@contextlib.contextmanager
def _progress_bar(show: bool, total: int, desc: str):
    if not show:
        yield None
        return
    from tqdm.auto import tqdm

    pbar = tqdm(total=total, desc=desc, unit="step")
    try:
        yield pbar
    finally:
        pbar.close()


def _attrs(problem, algorithm, grid, times, d, n, seed) -> dict:
    """The Dataset attributes (netCDF-safe: int, float, str)."""
    model = problem.model
    own = algorithm.attrs(n)
    attrs = {
        "kind": "simulation", "algorithm": algorithm.name, "d": int(d), "n": int(n),
        "delta": float(problem.delta), "gamma": own.pop("gamma"), "dt": float(grid.dt),
        "t_max": float(times[-1]), "grid_growth": float(grid.growth), "batch": own.pop("batch"),
        "batching": own.pop("batching"), "eta": own.pop("eta"), "ridge": float(problem.ridge),
        "init_scale": float(problem.init_scale), "init_overlap": float(problem.init_overlap),
        "model": model.name, "k": int(model.k), "kstar": int(model.kstar), "noise": float(model.noise),
        "activation": str(model.meta.get("activation", "")), "law": own.pop("law"), "base_seed": int(seed),
        "train_loss_note": "mean over the n training samples of loss(r_i, y_i), penalty excluded"
        if algorithm.with_data else "NaN: online SGD has no training set",
    }
    attrs.update(own)
    attrs.update({k: v for k, v in problem.attrs().items() if k in ("init_direction", "init_noise", "init_q", "init_m")})
    return attrs
