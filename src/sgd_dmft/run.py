"""Config -> experiment -> theory, simulation or their comparison: what the CLI and the sweeps run.

* :func:`experiment` (experiment.py): a validated :class:`~sgd_dmft.config.Config` compiled once into the
  objects the solvers take (problem, law, the simulator's algorithm object, the solver's options, the plan);
  :func:`compress` (compression.py) gives a long theory run a graded grid / response window.
* :func:`run_theory`: the DMFT solver (``dmft.solve``), or the online ODEs (``online.solve_online``)
  for ``algorithm = "online"``.
* :func:`run_simulation`: the finite-d simulators (``simulation.simulate`` with the experiment's algorithm object).
* :func:`compare`: both, checked finite, and their discrepancy (:func:`compare_datasets`), the
  ``discrepancy.<var>.<stat>`` entries added to both datasets' attributes.

Every result carries ``kind``, ``wall_time_s`` and the configuration (``config_toml`` and flattened
``section.key`` attributes). The computational modules are imported on first use (numba kernels,
scipy), so importing this module is cheap. Nothing here prints: ``announce`` takes a callable (the CLI
passes ``click.echo``) or True for ``print``.
"""

from __future__ import annotations

import time
from typing import Any, Callable, NamedTuple

import xarray as xr

from .config import Config
from .compression import (COMPRESS_AFTER_S, LONG_GROWTH, LONG_WINDOW, VERY_LONG_S, compress,  # noqa: F401
                          compressed_plan, gd_errors, gd_limit, shared_grid, ungraded_note, window_hint)
from .experiment import Experiment, experiment, record_grid
from .parallel import cores

__all__ = ["Experiment", "experiment", "compress", "run_theory", "run_simulation", "compare", "check_theory",
           "check_simulation", "compare_datasets", "check_discrepancy", "Comparison"]

COMPARED_VARS = ("train_loss", "test_loss")

Announce = bool | Callable[[str], Any] | None


class Comparison(NamedTuple):
    theory: xr.Dataset
    simulation: xr.Dataset
    discrepancy: dict[str, dict[str, float]]


# --------------------------------------------------------------------------------------------
def run_theory(cfg: Config, progress: bool = False, announce: Announce = False,
               extrapolate: bool | None = None, force: bool = False) -> xr.Dataset:
    """Theory curves for a config (``dmft.solve``, or ``online.solve_online`` for 'online').

    ``announce``: a callable (or True: ``print``) told, before the DMFT run starts, what it will take
    (grid steps, paths, replicas, workers, estimated memory and cost, which limit). ``extrapolate``:
    overrides ``solver.extrapolate`` (``compare`` sets it to match its simulation). Refused before
    anything runs (:func:`check_theory`): past the cost limit (CostLimitExceeded, unless ``force``),
    past ``solver.max_memory_gb`` (MemoryLimitExceeded), past a stability condition (SolverDiverged).
    """
    exp = compress(experiment(cfg))
    if extrapolate is not None:
        exp = exp.with_limit(extrapolate)
    exp = gd_limit(exp)  # a compressed GD: its dt -> 0 limit (compression.py)
    check_theory(exp, force=force)
    return _theory(exp, progress, announce)


def _theory(exp: Experiment, progress: bool, announce: Announce) -> xr.Dataset:
    """The theory of a checked experiment (:func:`check_theory`)."""
    cfg = exp.config  # the keys that run (a long run compressed)
    dy = cfg.dynamics
    t0 = time.perf_counter()
    if exp.law is None:
        from . import online

        from .config import lr_schedule

        ds = online.solve_online(exp.problem, gamma=dy["gamma"], times=record_grid(cfg).times(dy["t_max"]),
                                 lr=lr_schedule(dy))
    else:
        ds = _solve_dmft(exp, progress, _announcer(announce))
    return _add_config_attrs(_stamp(ds, "theory", t0), cfg)


def check_theory(exp: Experiment, extrapolate: bool | None = None, force: bool = False) -> float:
    """The theory's up-front checks, before anything is allocated: cost (multiply-adds, returned),
    stability of the explicit steps (docs/theory.md section 5b), and memory (the experiment's plan).
    ``extrapolate``: the limit asked for, where it differs from the experiment's (``Experiment.with_limit``)."""
    from .dmft import divergence, planning

    from .models.population import check_quadrature

    if extrapolate is not None:
        exp = exp.with_limit(extrapolate)
    check_quadrature(exp.problem.model, exp.options.max_memory_gb, "solver.max_memory_gb")
    try:
        planning.check_cost(exp.cost, force)
    except planning.CostLimitExceeded as e:
        hint = window_hint(exp, exp.extrapolate, exp.cost / planning.RATE) or ungraded_note(exp)
        raise planning.CostLimitExceeded(str(e) + (f"; {hint}" if hint else "")) from None
    if exp.law is not None:
        divergence.check_stability(exp.problem, exp.law, exp.config.dynamics["t_max"])
        exp.plan  # noqa: B018 - refused up front, exact path included (the finest level is the largest)
    return exp.cost


def _limit_note(exp: Experiment) -> str:
    law = exp.law
    if exp.extrapolate:
        lv = exp.levels
        return (f"the continuous-time limit (Richardson levels {lv.names()} at dt={law.dt:g}, the last for the "
                f"error estimate, run while needed; ~{lv.cost_factor():.2g}x the raw recursion)")
    return f"the raw recursion at the grid step dt={law.dt:g}"


def _announcer(announce: Announce) -> Callable[[str], Any] | None:
    if announce is True:
        return print
    return announce or None


def _say_plan(exp: Experiment, say: Callable[[str], Any]) -> None:
    """What the DMFT run will take, before it starts."""
    from . import dmft

    so, law, (R, P, W, mem, est) = exp.config.solver, exp.law, exp.plan
    capped = (f" (solver.workers = {so['workers']} capped at the {cores()} CPU cores)" if so["workers"] > cores()
              else "")
    chunked = f" (split from {so['replicas']} to fit solver.max_memory_gb)" if R > so["replicas"] else ""
    target = f"; adding replicas to rtol={so['rtol']:g}" if so["rtol"] else ""
    say(f"DMFT {law.name}: {len(law.times(exp.config.dynamics['t_max'])) - 1} grid steps, {P * R} paths in "
        f"{R} replicas{chunked}, up to {W} at a time{capped}, estimated memory <= {mem / 2**20:.0f} MiB, "
        f"estimated time ~{dmft.duration(est)}{target}; {_limit_note(exp)}")
    if exp.compressed:
        say(f"long run, compressed: {exp.compressed}")
    elif est >= COMPRESS_AFTER_S and ungraded_note(exp):
        say(f"long run: {ungraded_note(exp)}")
    resp = getattr(exp.process, "responses", None)
    if getattr(resp, "share", None) is not None and resp.share < 1.0:
        say(f"pathwise tangents on {resp.tangent_paths(P)} of each replica's {P} paths (solver.tangent_share "
            f"{resp.share:g}; R_F's extra noise is in the standard errors)")
    hint = window_hint(exp, exp.extrapolate, est, W)
    if hint:
        say(f"hint: {hint}")
    note = dmft.applicability.expected_stderr_note(exp.problem, dmft.choose_process(exp.problem, law), law)
    if note:
        say(note)


def _solve_dmft(exp: Experiment, progress: bool, say: Callable[[str], Any] | None) -> xr.Dataset:
    from . import dmft

    if say is not None:
        _say_plan(exp, say)
    ds = dmft.solve(exp.problem, exp.law, t_max=exp.config.dynamics["t_max"], options=exp.options,
                    process=exp.given_process, progress=progress)
    ds.attrs["estimated_time_s"] = float(exp.plan.seconds)
    if exp.compressed:
        ds.attrs["compressed"] = exp.compressed
    return gd_errors(ds) if exp.algorithm == "gd" and exp.extrapolate else ds  # (compression.gd_limit)


def run_simulation(cfg: Config, progress: bool = False, announce: Announce = False,
                   force: bool = False) -> xr.Dataset:
    """Finite-d simulation for a config (``simulation.simulate`` with the experiment's algorithm object);
    online SGD drops its NaN train loss.

    Refused before anything runs (:func:`check_simulation`): past ``simulation.max_memory_gb``, past the
    cost limit (unless ``force``), past a stability condition (SimulationDiverged, the solver's rule).
    ``announce`` is told the plan (steps, memory, cost)."""
    exp = experiment(cfg)
    return _simulation(exp, check_simulation(exp, force), progress, announce)


def _simulation(exp: Experiment, plan, progress: bool, announce: Announce) -> xr.Dataset:
    """The simulation of a checked experiment (``plan``: :func:`check_simulation`'s)."""
    from . import simulation as sim_mod

    cfg = exp.config  # (compare: the theory's compressed grid for the records)
    dy, sm = cfg.dynamics, cfg.simulation
    say = _announcer(announce)
    if say is not None:
        say(f"simulation {exp.algorithm}: d={sm['d']}, n={cfg.n}, {sm['seeds']} seeds, {plan.describe()}")
    t0 = time.perf_counter()
    ds = sim_mod.simulate(exp.problem, exp.simulator, t_max=dy["t_max"], d=sm["d"], seeds=sm["seeds"],
                          seed=sm["seed"], grid=exp.record_grid, progress=progress, max_memory_gb=sm["max_memory_gb"])
    # the attributes of a configured run: dt, batch and batching as configured (the law paths: eta = dt)
    ds.attrs.update(dt=float(dy["dt"]), batch=int(sm["batch"]),
                    batching=sm["batching"] if exp.spec.bernoulli else "none")
    if exp.record_grid is None:
        ds.attrs["eta"] = float(dy["dt"])
    _stamp(ds, "simulation", t0)
    if exp.compressed:
        ds.attrs["compressed"] = exp.compressed
    if "train_loss" in ds and bool(ds["train_loss"].isnull().all()):
        # online SGD has no training set: the simulator fills train_loss with NaN
        ds = ds.drop_vars("train_loss")
        ds.attrs["train_loss_note"] = "dropped: no training set (online SGD)"
    return _add_config_attrs(ds, cfg)


def check_simulation(exp: Experiment, force: bool = False):
    """The simulation's up-front checks: memory and cost (simulation/cost.py; returns the plan) and the
    stability conditions of the algorithm it runs (dmft/divergence.py)."""
    from .dmft import divergence
    from .models.population import check_quadrature
    from .simulation import cost

    cfg, sim = exp.config, exp.simulator
    t_max, sm = cfg.dynamics["t_max"], cfg.simulation
    model, n = exp.problem.model, cfg.n
    law_path = exp.record_grid is None  # the law's own recursion, on the law's grid
    if law_path:
        steps = cost.grid_steps(exp.law, t_max)
        records, kind = steps + 1, "law"
    else:
        records = cost.grid_steps(exp.record_grid, t_max) + 1
        steps = t_max / sim.eta(n)
        kind = "sgd" if sim.with_data else "online"
    random_law = law_path and not exp.law.deterministic
    plan = cost.estimate(kind, n=n, d=sm["d"], k=model.k, kstar=model.kstar, seeds=sm["seeds"], batch=sm["batch"],
                         records=records, steps=steps, law_random=random_law,
                         law_sparse=bool(random_law and exp.law.sparse),
                         nnz_fraction=min(1.0, cfg.dynamics["dt"] / cfg.dynamics["gamma"]))
    cost.check_budget(plan, sm["max_memory_gb"], force)
    check_quadrature(model, sm["max_memory_gb"], "simulation.max_memory_gb")
    if exp.law is not None:
        eta = None if law_path else sim.eta(n)
        divergence.check_simulation_stability(exp.problem, exp.law, t_max, step_of_ridge=eta)
    return plan


def _stamp(ds: xr.Dataset, kind: str, t0: float) -> xr.Dataset:
    ds.attrs["wall_time_s"] = round(time.perf_counter() - t0, 3)
    ds.attrs["kind"] = kind
    return ds


def _add_config_attrs(ds: xr.Dataset, cfg: Config) -> xr.Dataset:
    from .results import config_attrs

    ds.attrs.update(config_attrs(cfg))
    return ds


# --------------------------------------------------------------------------------------------
def check_discrepancy(disc: dict[str, dict[str, Any]]) -> None:
    """Raise :class:`~sgd_dmft.errors.Diverged` when a z statistic cannot be trusted: the theory's standard
    error is not small against the curve (``results.discrepancy``'s ``reliable`` flag), e.g. one replica
    blew up and its spread now makes any gap look like agreement."""
    from .errors import Diverged

    for v, dd in disc.items():
        if dd.get("refused", False):
            raise Diverged(f"compare: {v} is not a meaningful comparison: {dd['unreliable']} (results.discrepancy); "
                           f"the theory is too noisy or a replica ran away: raise solver.paths or lower the step")


def compare_datasets(theory: xr.Dataset, sim: xr.Dataset) -> dict[str, dict[str, float]]:
    """``{var: discrepancy(theory, sim, var)}`` for the losses present in both."""
    from .results import discrepancy

    return {v: discrepancy(theory, sim, v) for v in COMPARED_VARS if v in theory and v in sim}


def compare(cfg: Config, progress: bool = False, announce: Announce = False, force: bool = False) -> Comparison:
    """Theory and simulation of a config, each checked finite (NonFiniteResult), and their discrepancy.

    The theory is the continuous-time limit when the simulation runs the continuous-time algorithm
    (``Experiment.continuous``), else the raw recursion at ``dt`` (whatever ``solver.extrapolate`` says); the
    announcement and the theory's ``extrapolated`` attribute say which. The discrepancy is also stored in both
    datasets' attributes as ``discrepancy.<var>.<stat>``. The experiment is compiled once: one law, one model
    check, one stability check and one plan for both sides.
    """
    from .results import check_finite, clean_attrs

    # the theory of the algorithm the simulation runs: the dt -> 0 limit against true mini-batch SGD or
    # reshuffling, the raw grid recursion against a simulation of that recursion
    exp = compress(experiment(cfg))  # a long run: the simulation records on the theory's compressed grid
    exp = exp.with_limit(exp.continuous)
    plan = check_simulation(exp, force)  # both refused before either runs
    check_theory(exp, force=force)
    theory = _theory(exp, progress, announce)
    check_finite(theory, "theory")
    sim = _simulation(exp, plan, progress, announce)
    check_finite(sim, "simulation")
    disc = compare_datasets(theory, sim)
    check_discrepancy(disc)
    flat = {f"discrepancy.{v}.{k}": x for v, dd in disc.items() for k, x in dd.items()}
    for ds in (theory, sim):
        ds.attrs.update(clean_attrs(flat))
    return Comparison(theory, sim, disc)
