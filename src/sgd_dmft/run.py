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

import time
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Callable, NamedTuple

import xarray as xr

from .config import Config
from .errors import ConfigError
from .parallel import cores
from .results import KERNEL_POINTS  # a run keeps its two-time kernels on at most this many times per axis

if TYPE_CHECKING:
    from .laws import Law
    from .models import Problem

COMPARED_VARS = ("train_loss", "test_loss")

Announce = bool | Callable[[str], Any] | None


@dataclass(frozen=True)
class Experiment:
    """What a configuration asks to compute, as the solvers' and simulators' arguments."""

    config: Config
    problem: Problem
    law: Law | None  # None for one-pass (online) SGD, which has no step-multiplier law
    compressed: str = ""  # what solver.compress = 'auto' set for a long run ('' when nothing)

    @property
    def algorithm(self) -> str:
        return self.config.dynamics["algorithm"]


def experiment(cfg: Config) -> Experiment:
    """The problem and law of a configuration (as configured: a theory run compresses a long one,
    :func:`compress`)."""
    law = None if cfg.dynamics["algorithm"] == "online" else cfg.make_law()
    return Experiment(config=cfg, problem=cfg.make_problem(), law=law)


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
    return _theory(compress(experiment(cfg)), progress, announce, extrapolate, force)


def _theory(exp: Experiment, progress: bool, announce: Announce, extrapolate: bool | None, force: bool) -> xr.Dataset:
    cfg = exp.config  # the keys that run (a long run compressed)
    dy = cfg.dynamics
    ex = cfg.solver["extrapolate"] if extrapolate is None else extrapolate
    check_theory(exp, bool(ex and exp.law is not None and extrapolable(exp.law, cfg)), force)
    t0 = time.perf_counter()
    if exp.law is None:
        from . import online

        from .config import lr_schedule

        ds = online.solve_online(exp.problem, gamma=dy["gamma"], times=cfg_grid(cfg).times(dy["t_max"]),
                                 lr=lr_schedule(dy))
    else:
        ds = _solve_dmft(exp, progress, _announcer(announce), bool(ex and extrapolable(exp.law, cfg)))
    return _add_config_attrs(_stamp(ds, "theory", t0), cfg)


def extrapolation_levels(law, problem=None):
    """The Richardson levels a solve of ``law`` runs (dmft/extrapolate.py)."""
    from . import dmft

    return dmft.levels(law, problem)


def check_theory(exp: Experiment, extrapolate: bool, force: bool = False) -> float:
    """The theory's up-front checks, before anything is allocated: cost (multiply-adds, returned),
    stability of the explicit steps (docs/theory.md section 5b), and memory (the solver's planning)."""
    from .dmft import divergence, planning

    from .models.population import check_quadrature

    cfg, law = exp.config, exp.law
    dy, so = cfg.dynamics, cfg.solver
    check_quadrature(exp.problem.model, so["max_memory_gb"], "solver.max_memory_gb")
    proc = None if law is None else _process(exp)
    if law is None:  # the online ODEs: a fixed-step integration over t_max / dt steps
        cost = planning.grid_steps(cfg_grid(cfg), dy["t_max"]) * 1e4 * exp.problem.k ** 2
    else:
        cost = planning.estimate_cost(exp.problem, law, dy["t_max"], so["paths"], so["replicas"], proc,
                                      extrapolate=extrapolate)
    try:
        planning.check_cost(cost, force)
    except planning.CostLimitExceeded as e:
        hint = window_hint(exp, extrapolate, cost / planning.RATE)
        raise planning.CostLimitExceeded(str(e) + (f"; {hint}" if hint else "")) from None
    if law is not None:
        divergence.check_stability(exp.problem, law, dy["t_max"])
        finest = extrapolation_levels(law, exp.problem).fine if extrapolate else law
        # refused up front, exact path included (the finest level is the largest)
        planning.plan_replicas(exp.problem, finest, dy["t_max"], so["paths"], so["replicas"], so["max_memory_gb"],
                               KERNEL_POINTS, process=proc)
    return cost


COMPRESS_AFTER_S = 60.0  # solver.compress = 'auto': runs estimated past a minute on one core are compressed
LONG_GROWTH = 0.02  # the graded grid of a long run: steps growing 2 % of t up to gamma / 4 (the horizon bench)
LONG_WINDOW = 30.0  # ... and, if still long, tangents over this much past (time units; docs/theory.md 4d)


def compress(exp: Experiment) -> Experiment:
    """``solver.compress = 'auto'``: a run estimated past :data:`COMPRESS_AFTER_S` on one core (the
    whole past on the config's grid) is run on :func:`compressed_plan`'s keys where that at least halves
    the estimate; ``exp.compressed`` says what was set and why. Keys the user set (a graded grid, a
    response window) are kept; 'off', a short run or the online ODEs are returned as they are."""
    cfg = exp.config
    if exp.law is None or cfg.solver["compress"] != "auto":
        return exp
    extrapolate = bool(cfg.solver["extrapolate"] and extrapolable(exp.law, cfg))
    seconds = _seconds(exp, exp.law, cfg.solver["response_window"] or None, extrapolate)
    if seconds < COMPRESS_AFTER_S:
        return exp
    over, est = compressed_plan(exp, extrapolate, seconds)
    if not over:
        return exp
    from .dmft import duration

    keys = ", ".join(f"{k} = {v:g}" for k, v in over.items())
    note = f"{keys} (solver.compress = auto: ~{duration(est)} on one core instead of ~{duration(seconds)})"
    return replace(experiment(cfg.with_overrides(over)), compressed=note)


def shared_grid(configs: list[Config]) -> list[Config]:
    """The points of a sweep on one time grid: where :func:`compress` grades any point's grid, every point
    left on a uniform grid with ``solver.compress = 'auto'`` gets the same graded grid (:data:`LONG_GROWTH`,
    the smallest of the points' caps), so that their curves share their times; each point then keeps its
    own response-window decision. Points whose law cannot be graded are left as they are."""
    caps = [e.config.dynamics["dt_max"] for c in configs
            if (e := compress(experiment(c))).compressed and e.law.graded and not c.dynamics["growth"]]
    if not caps:
        return configs
    out = []
    for c in configs:
        if c.solver["compress"] != "auto" or c.dynamics["growth"] or c.dynamics["algorithm"] == "online":
            out.append(c)
            continue
        try:
            out.append(c.with_overrides({"dynamics.growth": LONG_GROWTH, "dynamics.dt_max": min(caps)}))
        except ConfigError:  # (a law whose grid must stay uniform)
            out.append(c)
    return out


def _seconds(exp: Experiment, law, window: float | None, extrapolate: bool, workers: int = 1) -> float:
    """The estimated wall time of the config's solve of ``law`` with tangents over ``window``."""
    from . import dmft

    so = exp.config.solver
    proc = dmft.choose_process(exp.problem, law, None, "auto", None, so["tail"], window)
    return dmft.estimate_seconds(exp.problem, law, exp.config.dynamics["t_max"], so["paths"], so["replicas"], proc,
                                 extrapolate=extrapolate, workers=workers)


def compressed_plan(exp: Experiment, extrapolate: bool, seconds: float, workers: int = 1) -> tuple[dict, float]:
    """For a run estimated at ``seconds`` (on ``workers``): the config overrides of a compressed past and
    their estimate, or ``({}, seconds)`` where they do not halve it. A graded grid for SGD-type laws on a
    uniform one (steps growing :data:`LONG_GROWTH` of t up to gamma / 4: the nested Richardson levels
    exist), then, where still long, a response window of :data:`LONG_WINDOW` (its error is stated and
    warned about). Only keys left at 0 are set."""
    cfg, law = exp.config, exp.law
    so = cfg.solver
    if law is None:
        return {}, seconds
    over, est = {}, seconds
    gamma = getattr(law, "jump_size", None)
    graded_ok = not extrapolate or so["extrapolate_graded"]  # a graded grid keeps the dt -> 0 limit
    if not law.graded and gamma and gamma / 4 > law.dt and graded_ok:
        try:
            law = replace(law, growth=LONG_GROWTH, dt_max=gamma / 4)
        except ConfigError:  # a law whose grid must stay uniform (reshuffling's epochs)
            pass
        else:
            over = {"dynamics.growth": LONG_GROWTH, "dynamics.dt_max": gamma / 4}
            est = _seconds(exp, law, so["response_window"] or None, extrapolate, workers)
    if not so["response_window"] and est >= COMPRESS_AFTER_S:
        windowed = _seconds(exp, law, LONG_WINDOW, extrapolate, workers)
        if windowed < est:  # (the sample process has a window: pathwise tangents)
            over["solver.response_window"], est = LONG_WINDOW, windowed
    return (over, est) if over and est <= 0.5 * seconds else ({}, seconds)


def window_hint(exp: Experiment, extrapolate: bool, seconds: float, workers: int = 1) -> str:
    """For a long run estimated at ``seconds`` on ``workers`` that was not compressed (``solver.compress =
    'off'``, or keys set by the user): the keys of :func:`compressed_plan` and what they would take."""
    from . import dmft

    if exp.law is None or seconds < COMPRESS_AFTER_S:
        return ""
    over, est = compressed_plan(exp, extrapolate, seconds, workers)
    if not over:
        return ""
    keys = ", ".join(f"{k} = {v:g}" for k, v in over.items())
    return (f"{keys} (a graded grid / tangents over that much past, the error stated and warned about; "
            f"docs/theory.md 4d) would take ~{dmft.duration(est)}")


def _process(exp: Experiment):
    """The sample process a solve of the config runs (the solver's choice, with solver.tail and
    solver.response_window)."""
    from . import dmft

    so = exp.config.solver
    return dmft.choose_process(exp.problem, exp.law, None, "auto", None, so["tail"], so["response_window"] or None)


def cfg_grid(cfg: Config):
    """The record grid of ``[dynamics]`` (a :class:`~sgd_dmft.grid.TimeGrid`)."""
    from .grid import TimeGrid

    dy = cfg.dynamics
    return TimeGrid(dy["dt"], dy["growth"], dy["dt_max"] or None)


def extrapolable(law, cfg: Config | None = None) -> bool:
    """Whether the continuous-time limit is asked for: a continuous-time law on a uniform grid, or on a
    graded one unless ``solver.extrapolate_graded = false``."""
    graded_ok = bool(cfg is None or cfg.solver.get("extrapolate_graded", True))
    return bool(law.continuous_time and (graded_ok or not law.graded))


def simulation_is_continuous(cfg: Config) -> bool:
    """True when the configured simulation runs the continuous-time algorithm (true mini-batch SGD,
    true random reshuffling), so that the theory to compare with is the ``dt -> 0`` limit; False when
    it runs the grid recursion itself (gd, gf and sme on the grid, Bernoulli batches, persistent)."""
    alg = cfg.dynamics["algorithm"]
    return (alg == "sgd" and cfg.simulation["batching"] == "uniform") or alg == "reshuffle"


def _limit_note(law, extrapolate: bool, problem=None) -> str:
    if extrapolate:
        lv = extrapolation_levels(law, problem)
        return (f"the continuous-time limit (Richardson levels {lv.names()} at dt={law.dt:g}, the last for the "
                f"error estimate; ~{lv.cost_factor():.2g}x the raw recursion)")
    return f"the raw recursion at the grid step dt={law.dt:g}"


def _announcer(announce: Announce) -> Callable[[str], Any] | None:
    if announce is True:
        return print
    return announce or None


def _solve_dmft(exp: Experiment, progress: bool, say: Callable[[str], Any] | None, extrapolate: bool) -> xr.Dataset:
    from . import dmft

    cfg, law = exp.config, exp.law
    dy, so = cfg.dynamics, cfg.solver
    workers = so["workers"] or min(so["replicas"], cores())
    capped = f" (solver.workers = {workers} capped at the {cores()} CPU cores)" if workers > cores() else ""
    workers = min(workers, cores())
    proc = _process(exp)
    finest = extrapolation_levels(law, exp.problem).fine if extrapolate else law
    R, P, W, mem = dmft.plan_run(exp.problem, finest, dy["t_max"], so["paths"], so["replicas"], so["max_memory_gb"],
                                 KERNEL_POINTS, workers, proc)
    est = dmft.estimate_seconds(exp.problem, law, dy["t_max"], so["paths"], so["replicas"], proc,
                                extrapolate=extrapolate, workers=W)  # the workers the memory budget allows
    if say is not None:  # what the run will take, before it starts
        chunked = f" (split from {so['replicas']} to fit solver.max_memory_gb)" if R > so["replicas"] else ""
        target = f"; adding replicas to rtol={so['rtol']:g}" if so["rtol"] else ""
        say(f"DMFT {law.name}: {len(law.times(dy['t_max'])) - 1} grid steps, {P * R} paths in "
            f"{R} replicas{chunked}, up to {W} at a time{capped}, estimated memory <= {mem / 2**20:.0f} MiB, "
            f"estimated time ~{dmft.duration(est)}{target}; {_limit_note(law, extrapolate, exp.problem)}")
        if exp.compressed:
            say(f"long run, compressed: {exp.compressed}")
        hint = window_hint(exp, extrapolate, est, W)
        if hint:
            say(f"hint: {hint}")
        note = dmft.applicability.expected_stderr_note(exp.problem, dmft.choose_process(exp.problem, law), law)
        if note:
            say(note)
    ds = dmft.solve(exp.problem, law, t_max=dy["t_max"], paths=so["paths"], replicas=so["replicas"],
                    seed=so["seed"], max_memory_gb=so["max_memory_gb"], progress=progress, workers=workers,
                    extrapolate=extrapolate, rtol=so["rtol"] or None, max_time_s=so["max_time_s"] or None,
                    tail=so["tail"], response_window=so["response_window"] or None, keep_kernels=KERNEL_POINTS)
    ds.attrs["estimated_time_s"] = float(est)
    if exp.compressed:
        ds.attrs["compressed"] = exp.compressed
    return ds


def run_simulation(cfg: Config, progress: bool = False, announce: Announce = False,
                   force: bool = False) -> xr.Dataset:
    """Finite-d simulation for a config (``simulate.simulate``); online SGD drops its NaN train loss.

    Refused before anything runs (:func:`check_simulation`): past ``simulation.max_memory_gb``, past the
    cost limit (unless ``force``), past a stability condition (SimulationDiverged, the solver's rule).
    ``announce`` is told the plan (steps, memory, cost)."""
    return _simulation(experiment(cfg), progress, announce, force)


def _simulation(exp: Experiment, progress: bool, announce: Announce, force: bool) -> xr.Dataset:
    from . import simulate as sim_mod

    cfg = exp.config  # (compare: the theory's compressed grid for the records)
    plan = check_simulation(exp, force)
    say = _announcer(announce)
    if say is not None:
        say(f"simulation {exp.algorithm}: d={cfg.simulation['d']}, n={cfg.n}, {cfg.simulation['seeds']} seeds, "
            f"{plan.describe()}")
    dy, sm = cfg.dynamics, cfg.simulation
    if exp.algorithm == "persistent":  # no simulator of its own: the law's recursion
        alg, law, grid = "law", exp.law, {}
    else:
        alg, law, grid = exp.algorithm, None, dict(growth=dy["growth"], dt_max=dy["dt_max"] or None)
        from .config import lr_schedule

        lr = lr_schedule(dy)
        if lr is not None:  # a learning-rate schedule (online: no law carries it)
            grid["lr"] = lr
    t0 = time.perf_counter()
    ds = sim_mod.simulate(
        exp.problem, alg, t_max=dy["t_max"], dt=dy["dt"], d=sm["d"], gamma=dy["gamma"], batch=sm["batch"],
        batching=sm["batching"], seeds=sm["seeds"], seed=sm["seed"], law=law, progress=progress, **grid,
    )
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
    from .simulation import cost

    cfg = exp.config
    dy, sm = cfg.dynamics, cfg.simulation
    alg, model, n, d = exp.algorithm, exp.problem.model, cfg.n, sm["d"]
    law_path = alg in ("gd", "gf", "sme", "persistent") or (alg == "sgd" and sm["batching"] == "bernoulli")
    if law_path:
        steps = cost.grid_steps(exp.law, dy["t_max"])
        records = steps + 1
        kind = "law"
    else:
        records = cost.grid_steps(cfg_grid(cfg), dy["t_max"]) + 1
        steps = dy["t_max"] * n / (dy["gamma"] * sm["batch"])
        kind = "online" if alg == "online" else "sgd"
    random_law = law_path and not exp.law.deterministic
    plan = cost.estimate(kind, n=n, d=d, k=model.k, kstar=model.kstar, seeds=sm["seeds"], batch=sm["batch"],
                         records=records, steps=steps, law_random=random_law,
                         law_sparse=bool(random_law and exp.law.sparse),
                         nnz_fraction=min(1.0, dy["dt"] / dy["gamma"]))
    cost.check_budget(plan, sm["max_memory_gb"], force)
    from .models.population import check_quadrature

    check_quadrature(model, sm["max_memory_gb"], "simulation.max_memory_gb")
    if exp.law is not None:
        eta = None if law_path else dy["gamma"] * sm["batch"] / n
        divergence.check_simulation_stability(exp.problem, exp.law, dy["t_max"], step_of_ridge=eta)
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
    (:func:`simulation_is_continuous`), else the raw recursion at ``dt`` (whatever ``solver.extrapolate``
    says); the announcement and the theory's ``extrapolated`` attribute say which. The discrepancy is also stored in both datasets' attributes as ``discrepancy.<var>.<stat>``.
    """
    from .results import check_finite, clean_attrs

    # the theory of the algorithm the simulation runs: the dt -> 0 limit against true mini-batch SGD or
    # reshuffling, the raw grid recursion against a simulation of that recursion
    exp = compress(experiment(cfg))  # a long run: the simulation records on the theory's compressed grid
    continuous = simulation_is_continuous(cfg)
    check_simulation(exp, force)  # both refused before either runs
    check_theory(exp, bool(continuous and exp.law is not None and extrapolable(exp.law, exp.config)), force)
    theory = _theory(exp, progress, announce, continuous, force)
    check_finite(theory, "theory")
    sim = _simulation(exp, progress, announce, force)
    check_finite(sim, "simulation")
    disc = compare_datasets(theory, sim)
    check_discrepancy(disc)
    flat = {f"discrepancy.{v}.{k}": x for v, dd in disc.items() for k, x in dd.items()}
    for ds in (theory, sim):
        ds.attrs.update(clean_attrs(flat))
    return Comparison(theory, sim, disc)
