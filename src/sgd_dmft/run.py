"""Config -> experiment -> theory, simulation or their comparison: what the CLI and the sweeps run.

* :func:`experiment`: a validated :class:`~sgd_dmft.config.Config` as the objects the solvers take
  (the problem, the step-multiplier law, the time horizon).
* :func:`run_theory`: the DMFT solver (``dmft.solve``), or the online ODEs (``online.solve_online``)
  for ``algorithm = "online"``.
* :func:`run_simulation`: the finite-d simulators (``simulate.simulate``).
* :func:`compare`: both, checked finite, and their discrepancy (:func:`compare_datasets`), the
  ``discrepancy.<var>.<stat>`` entries added to both datasets' attributes.

Every result carries ``kind``, ``wall_time_s`` and the configuration (``config_toml`` and flattened
``section.key`` attributes). The computational modules are imported on first use (numba kernels,
scipy), so importing this module is cheap. Nothing here prints: ``announce`` takes a callable (the CLI
passes ``click.echo``) or True for ``print``.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, NamedTuple

import xarray as xr

from .config import Config

if TYPE_CHECKING:
    from .laws import Law
    from .problem import Problem

COMPARED_VARS = ("train_loss", "test_loss")

Announce = bool | Callable[[str], Any] | None


@dataclass(frozen=True)
class Experiment:
    """What a configuration asks to compute, as the solvers' and simulators' arguments."""

    config: Config
    problem: Problem
    law: Law | None  # None for one-pass (online) SGD, which has no step-multiplier law

    @property
    def algorithm(self) -> str:
        return self.config.dynamics["algorithm"]


def experiment(cfg: Config) -> Experiment:
    """The problem and law of a configuration."""
    law = None if cfg.dynamics["algorithm"] == "online" else cfg.make_law()
    return Experiment(config=cfg, problem=cfg.make_problem(), law=law)


class Comparison(NamedTuple):
    theory: xr.Dataset
    simulation: xr.Dataset
    discrepancy: dict[str, dict[str, float]]


# --------------------------------------------------------------------------------------------
def run_theory(cfg: Config, progress: bool = False, announce: Announce = False,
               extrapolate: bool | None = None) -> xr.Dataset:
    """Theory curves for a config (``dmft.solve``, or ``online.solve_online`` for 'online').

    ``announce``: a callable (or True: ``print``) told, before the DMFT run starts, what it will take
    (grid steps, paths, replicas, workers, estimated memory, which limit). ``extrapolate``: overrides
    ``solver.extrapolate`` (``compare`` sets it to match its simulation).
    """
    exp = experiment(cfg)
    dy = cfg.dynamics
    t0 = time.perf_counter()
    if exp.law is None:
        from . import online

        ds = online.solve_online(exp.problem, gamma=dy["gamma"], t_max=dy["t_max"], dt=dy["dt"])
    else:
        ex = cfg.solver["extrapolate"] if extrapolate is None else extrapolate
        ds = _solve_dmft(exp, progress, _announcer(announce), bool(ex and _extrapolable(exp.law)))
    return _add_config_attrs(_stamp(ds, "theory", t0), cfg)


def _extrapolable(law) -> bool:
    """Whether the continuous-time limit applies: a continuous-time law on a uniform grid."""
    return bool(law.continuous_time and not law.graded)


def simulation_is_continuous(cfg: Config) -> bool:
    """True when the configured simulation runs the continuous-time algorithm (true mini-batch SGD,
    true random reshuffling), so that the theory to compare with is the ``dt -> 0`` limit; False when
    it runs the grid recursion itself (gd, gf and sme on the grid, Bernoulli batches, persistent)."""
    alg = cfg.dynamics["algorithm"]
    return (alg == "sgd" and cfg.simulation["batching"] == "uniform") or alg == "reshuffle"


def _limit_note(law, extrapolate: bool) -> str:
    if extrapolate:
        return f"the continuous-time limit (Richardson over dt={law.dt:g}, dt/2 and 2 dt for its error estimate)"
    return f"the raw recursion at the grid step dt={law.dt:g}"


def _announcer(announce: Announce) -> Callable[[str], Any] | None:
    if announce is True:
        return print
    return announce or None


def _solve_dmft(exp: Experiment, progress: bool, say: Callable[[str], Any] | None, extrapolate: bool) -> xr.Dataset:
    from . import dmft

    cfg, law = exp.config, exp.law
    dy, so = cfg.dynamics, cfg.solver
    workers = so["workers"] or min(so["replicas"], os.cpu_count() or 1)
    if say is not None:  # what the run will take, before it starts
        R, P, W, mem = dmft.plan_run(exp.problem, law, dy["t_max"], so["paths"], so["replicas"],
                                     so["max_memory_gb"], True, workers)
        chunked = f" (split from {so['replicas']} to fit solver.max_memory_gb)" if R > so["replicas"] else ""
        levels = " per grid level (3 levels)" if extrapolate and P > 1 else ""
        target = f"; adding replicas to rtol={so['rtol']:g}" if so["rtol"] else ""
        say(f"DMFT {law.name}: {len(law.times(dy['t_max'])) - 1} grid steps, {P * R} paths in "
            f"{R} replicas{chunked}{levels}, up to {W} at a time, estimated memory <= {mem / 2**20:.0f} MiB"
            f"{target}; {_limit_note(law, extrapolate)}")
    return dmft.solve(exp.problem, law, t_max=dy["t_max"], paths=so["paths"], replicas=so["replicas"],
                      seed=so["seed"], max_memory_gb=so["max_memory_gb"], progress=progress, workers=workers,
                      extrapolate=extrapolate, rtol=so["rtol"] or None, max_time_s=so["max_time_s"] or None)


def run_simulation(cfg: Config, progress: bool = False) -> xr.Dataset:
    """Finite-d simulation for a config (``simulate.simulate``); online SGD drops its NaN train loss."""
    from . import simulate as sim_mod

    exp = experiment(cfg)
    dy, sm = cfg.dynamics, cfg.simulation
    if exp.algorithm == "persistent":  # no simulator of its own: the law's recursion
        alg, law, grid = "law", exp.law, {}
    else:
        alg, law, grid = exp.algorithm, None, dict(growth=dy["growth"], dt_max=dy["dt_max"] or None)
    t0 = time.perf_counter()
    ds = sim_mod.simulate(
        exp.problem, alg, t_max=dy["t_max"], dt=dy["dt"], d=sm["d"], gamma=dy["gamma"], batch=sm["batch"],
        batching=sm["batching"], seeds=sm["seeds"], seed=sm["seed"], law=law, progress=progress, **grid,
    )
    _stamp(ds, "simulation", t0)
    if "train_loss" in ds and bool(ds["train_loss"].isnull().all()):
        # online SGD has no training set: the simulator fills train_loss with NaN
        ds = ds.drop_vars("train_loss")
        ds.attrs["train_loss_note"] = "dropped: no training set (online SGD)"
    return _add_config_attrs(ds, cfg)


def _stamp(ds: xr.Dataset, kind: str, t0: float) -> xr.Dataset:
    ds.attrs["wall_time_s"] = round(time.perf_counter() - t0, 3)
    ds.attrs["kind"] = kind
    return ds


def _add_config_attrs(ds: xr.Dataset, cfg: Config) -> xr.Dataset:
    from .results import config_attrs

    ds.attrs.update(config_attrs(cfg))
    return ds


# --------------------------------------------------------------------------------------------
def compare_datasets(theory: xr.Dataset, sim: xr.Dataset) -> dict[str, dict[str, float]]:
    """``{var: discrepancy(theory, sim, var)}`` for the losses present in both."""
    from .results import discrepancy

    return {v: discrepancy(theory, sim, v) for v in COMPARED_VARS if v in theory and v in sim}


def compare(cfg: Config, progress: bool = False, announce: Announce = False) -> Comparison:
    """Theory and simulation of a config, each checked finite (NonFiniteResult), and their discrepancy.

    The theory is the continuous-time limit when the simulation runs the continuous-time algorithm
    (:func:`simulation_is_continuous`), else the raw recursion at ``dt`` (whatever ``solver.extrapolate``
    says); the announcement and the theory's ``extrapolated`` attribute say which. The discrepancy is also stored in both datasets' attributes as ``discrepancy.<var>.<stat>``.
    """
    from .results import check_finite, clean_attrs

    # the theory of the algorithm the simulation runs: the dt -> 0 limit against true mini-batch SGD or
    # reshuffling, the raw grid recursion against a simulation of that recursion
    theory = run_theory(cfg, progress, announce=announce, extrapolate=simulation_is_continuous(cfg))
    check_finite(theory, "theory")
    sim = run_simulation(cfg, progress)
    check_finite(sim, "simulation")
    disc = compare_datasets(theory, sim)
    flat = {f"discrepancy.{v}.{k}": x for v, dd in disc.items() for k, x in dd.items()}
    for ds in (theory, sim):
        ds.attrs.update(clean_attrs(flat))
    return Comparison(theory, sim, disc)
