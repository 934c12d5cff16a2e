"""``solver.compress = 'auto'``: a long theory run gets a compressed past without the user asking.

:func:`compress` decides once per experiment from the cost model (run.py calls it for ``run_theory`` and
``compare``; :func:`shared_grid` for a sweep's points): a graded time grid (steps growing
:data:`LONG_GROWTH` of t up to a cap), a response window of :data:`LONG_WINDOW`, and past
:data:`VERY_LONG_S` the coarser cap. The cap (:func:`step_cap`):

* SGD-type laws (jumps ``gamma``): ``gamma / 4`` (the nested Richardson levels ``dt, 2 dt, 4 dt`` exist),
  ``gamma / 2`` past :data:`VERY_LONG_S` (the ``4 dt`` level is then past ``gamma``: a first-order estimate);
* GF, GD and the SME (no jumps: no ``gamma`` to cap by): from an upper bound on the empirical risk's Hessian
  (``stability.graded_step_cap``: the model's ``hessian_bound``, e.g. logistic ``(1 + sqrt delta)^2 / 4``, plus
  the ridge), the coarsest level ``4 dt_max`` at :data:`STEP_SHARE` of the explicit step's edge ``2 / lambda``,
  at :data:`VERY_LONG_SHARE` past :data:`VERY_LONG_S`. Models without a bound (phase retrieval, square-loss
  students with nonlinear units, custom models) keep their uniform grid (:func:`ungraded_note` says so).

A compressed GD theory run (:func:`gd_limit`) is answered by its ``dt -> 0`` limit: GD's recursion is GF's, so
its Richardson levels run on the compressed grid, and the losses' ``dt_error`` also covers the distance of a GD
with steps ``>= dt`` from that limit (:func:`gd_errors`; GD at ``dt`` is within it, to first order).
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import TYPE_CHECKING

from . import algorithms
from .config import Config
from .errors import ConfigError
from .experiment import Experiment, experiment, wants_limit

if TYPE_CHECKING:
    import xarray as xr

__all__ = ["compress", "compressed_plan", "shared_grid", "window_hint", "step_cap", "ungraded_note", "gd_limit",
           "gd_errors", "COMPRESS_AFTER_S", "LONG_GROWTH", "LONG_WINDOW", "VERY_LONG_S", "STEP_SHARE",
           "VERY_LONG_SHARE"]

COMPRESS_AFTER_S = 60.0  # solver.compress = 'auto': runs estimated past a minute on one core are compressed
LONG_GROWTH = 0.02  # the graded grid of a long run: steps growing 2 % of t up to gamma / 4 (the horizon bench)
LONG_WINDOW = 30.0  # ... and, if still long, tangents over this much past (time units; docs/theory.md 4d)
VERY_LONG_S = 300.0  # ... and, past 5 min on one core even so, steps up to gamma / 2 (half the grid points; the 4 dt
# error level is then past gamma: a first-order, pessimistic error estimate; 1000 epochs: 1.63 % against 1.55 %)
STEP_SHARE = 0.8  # GF / GD / SME: the coarsest level's step 4 dt_max at 80 % of 2 / (Hessian bound + ridge)
VERY_LONG_SHARE = 1.0  # ... past VERY_LONG_S: at the bound's edge (the Hessian stays below the bound away from
# r = 0: logistic GF, delta 2, ridge 0.1, to t = 100 kept its error estimate with 4 dt_max at 1.56x the bound's edge)


def compress(exp: Experiment) -> Experiment:
    """``solver.compress = 'auto'``: a run estimated past :data:`COMPRESS_AFTER_S` on one core (the
    whole past on the config's grid) is run on :func:`compressed_plan`'s keys where that at least halves
    the estimate; ``exp.compressed`` says what was set and why. Keys the user set (a graded grid, a
    response window) are kept; 'off', a short run or the online ODEs are returned as they are."""
    cfg = exp.config
    if exp.law is None or cfg.solver["compress"] != "auto":
        return exp
    extrapolate = wants_limit(exp.law, cfg, cfg.solver["extrapolate"])  # the config's limit (compare's too)
    seconds = _seconds(exp, exp.law, cfg.solver["response_window"] or None, extrapolate)
    if seconds < COMPRESS_AFTER_S:
        return exp
    over, est = compressed_plan(exp, extrapolate, seconds)
    if not over:
        return exp
    from .dmft import duration

    note = f"{_keys(over)} (solver.compress = auto: ~{duration(est)} on one core instead of ~{duration(seconds)})"
    return replace(experiment(cfg.with_overrides(over), exp.problem), compressed=note)


def step_cap(exp: Experiment, law, very_long: bool = False) -> float | None:
    """The largest step of ``law``'s compressed grid (see the module docstring), or None where there is no
    safe one."""
    from .stability import graded_step_cap

    gamma = getattr(law, "jump_size", None)
    if gamma:
        return gamma / (2 if very_long else 4)
    cap = graded_step_cap(exp.problem, law, VERY_LONG_SHARE if very_long else STEP_SHARE)
    return None if cap is None else _two_digits_down(cap)


def _two_digits_down(x: float) -> float:
    """``x`` rounded down to two significant digits (a cap that reads well in the keys, never above ``x``)."""
    unit = 10.0 ** (math.floor(math.log10(x)) - 1)
    return float(f"{math.floor(x / unit * (1 + 1e-12)) * unit:.2g}")


def compressed_plan(exp: Experiment, extrapolate: bool, seconds: float, workers: int = 1) -> tuple[dict, float]:
    """For a run estimated at ``seconds`` (on ``workers``): the config overrides of a compressed past and
    their estimate, or ``({}, seconds)`` where they do not halve it. A graded grid on a uniform one (steps
    growing :data:`LONG_GROWTH` of t up to :func:`step_cap`: the nested Richardson levels exist), then, where
    still long, a response window of :data:`LONG_WINDOW` (its error is stated and warned about), and past
    :data:`VERY_LONG_S` the coarser cap. Only keys left at 0 are set."""
    so, law = exp.config.solver, exp.law
    if law is None:
        return {}, seconds
    over, est = {}, seconds
    window = so["response_window"] or None
    graded_ok = so["extrapolate_graded"] if _is_gd(law) else not extrapolate or so["extrapolate_graded"]
    cap = step_cap(exp, law)
    if not law.graded and cap and cap > law.dt and graded_ok:  # (a graded grid keeps the dt -> 0 limit)
        try:
            law = replace(law, growth=LONG_GROWTH, dt_max=cap)
        except ConfigError:  # a law whose grid must stay uniform (reshuffling's epochs)
            pass
        else:
            over = {"dynamics.growth": LONG_GROWTH, "dynamics.dt_max": cap}
            est = _seconds(exp, law, window, extrapolate, workers)
    if not window and est >= COMPRESS_AFTER_S:
        windowed = _seconds(exp, law, LONG_WINDOW, extrapolate, workers)
        if windowed < est:  # (the sample process has a window: pathwise tangents)
            over["solver.response_window"], est = LONG_WINDOW, windowed
    coarser = step_cap(exp, law, very_long=True)
    if "dynamics.dt_max" in over and est >= VERY_LONG_S and coarser and coarser > cap:
        law = replace(law, dt_max=coarser)
        over["dynamics.dt_max"] = coarser
        est = _seconds(exp, law, over.get("solver.response_window") or window, extrapolate, workers)
    return (over, est) if over and est <= 0.5 * seconds else ({}, seconds)


def shared_grid(configs: list[Config]) -> list[Config]:
    """The points of a sweep on one time grid: where :func:`compress` grades any point's grid, every point
    left on a uniform grid with ``solver.compress = 'auto'`` gets the same graded grid (:data:`LONG_GROWTH`,
    the smallest of the compressed points' caps and of every GF / GD / SME point's own stability cap), so that
    their curves share their times; each point then keeps its own response-window decision. Points whose law
    cannot be graded (or has no safe cap) are left as they are."""
    exps = [compress(experiment(c)) for c in configs]
    caps = [e.config.dynamics["dt_max"] for c, e in zip(configs, exps)
            if e.compressed and e.law.graded and not c.dynamics["growth"]]
    if not caps:
        return configs
    # the GF / GD / SME points' own stability caps (None: no bound, the point keeps its grid)
    own = {i: step_cap(e, e.law, very_long=True) for i, (c, e) in enumerate(zip(configs, exps))
           if _auto(c) and e.law.jump_size is None}
    cap = min(caps + [v for v in own.values() if v])
    out = []
    for i, c in enumerate(configs):
        if not _auto(c) or (i in own and own[i] is None):
            out.append(c)
            continue
        try:
            out.append(c.with_overrides({"dynamics.growth": LONG_GROWTH, "dynamics.dt_max": cap}))
        except ConfigError:  # (a law whose grid must stay uniform)
            out.append(c)
    return out


def _auto(c: Config) -> bool:
    """A point the sweep may put on the shared graded grid: auto, on a uniform grid, a step-multiplier law."""
    lawless = algorithms.spec(c.dynamics["algorithm"]).law is None  # (one-pass SGD: the online ODEs)
    return c.solver["compress"] == "auto" and not c.dynamics["growth"] and not lawless


def window_hint(exp: Experiment, extrapolate: bool, seconds: float, workers: int = 1) -> str:
    """For a long run estimated at ``seconds`` on ``workers`` that was not compressed (``solver.compress =
    'off'``, or keys set by the user): the keys of :func:`compressed_plan` and what they would take."""
    from . import dmft

    if exp.law is None or seconds < COMPRESS_AFTER_S:
        return ""
    over, est = compressed_plan(exp, extrapolate, seconds, workers)
    if not over:
        return ""
    return (f"{_keys(over)} (a graded grid / tangents over that much past, the error stated and warned about; "
            f"docs/theory.md 4d) would take ~{dmft.duration(est)}")


def ungraded_note(exp: Experiment) -> str:
    """For a GF / GD / SME run on a uniform grid whose model has no Hessian bound: why ``solver.compress =
    'auto'`` leaves the grid uniform ('' otherwise)."""
    law = exp.law
    if law is None or law.graded or getattr(law, "jump_size", None) is not None or not law.independent_steps:
        return ""
    if step_cap(exp, law) is not None:
        return ""
    return (f"the grid stays uniform: no bound on the Hessian of model={exp.problem.model.name}'s loss caps a graded "
            f"grid's steps for algorithm={law.name} (set dynamics.growth and dynamics.dt_max by hand, below 2 / the "
            f"largest Hessian eigenvalue over 4 for the Richardson levels)")


def gd_limit(exp: Experiment) -> Experiment:
    """A compressed GD theory run as the ``dt -> 0`` limit of its recursion: a GF law named ``gd`` (the same
    recursion) on the compressed grid, with Richardson levels; other experiments are returned as they are."""
    law = exp.law
    if not exp.compressed or not _is_gd(law) or not law.graded:
        return exp
    from .dmft.options import Richardson

    note = (f"{exp.compressed}; GD at dt={law.dt:g} answered by its dt -> 0 limit on that grid (gradient flow), the "
            f"losses' dt_error covering a GD recursion's first-order distance from it")
    return replace(exp, law=_gf_twin(law), options=replace(exp.options, extrapolate=Richardson()), compressed=note)


def _gf_twin(law):
    """GD's recursion as a GF law (its continuous-time limit), named as the GD law."""
    from .laws import GF

    return GF(law.dt, growth=law.growth, dt_max=law.dt_max, refine=law.refine, lr=law.lr, name=law.name)


def gd_errors(ds: xr.Dataset) -> xr.Dataset:
    """The losses of :func:`gd_limit`'s solve: ``dt_error`` plus ``|raw - limit|``, the first-order distance of
    the GD recursion on the compressed grid (steps ``>= dt``) from the limit, within which GD at ``dt`` lies."""
    if not int(ds.attrs.get("extrapolated", 0)):
        return ds  # (a failed internal level: the raw recursion on the compressed grid)
    for v in ("train_loss", "test_loss"):
        if v + "_raw" in ds:
            ds[v + "_dt_error"] = ds[v + "_dt_error"] + abs(ds[v + "_raw"] - ds[v])
    ds.attrs["gd_limit"] = ("GD answered by its dt -> 0 limit (gradient flow) on the compressed grid; <loss>_raw: "
                            "the GD recursion on that grid; <loss>_dt_error includes |raw - limit|")
    return ds


def _is_gd(law) -> bool:
    """Full-batch GD: the discrete recursion of deterministic steps (no continuous-time limit of its own)."""
    return law is not None and law.deterministic and not law.continuous_time


def _keys(over: dict) -> str:
    return ", ".join(f"{k} = {v:g}" for k, v in over.items())


def _seconds(exp: Experiment, law, window: float | None, extrapolate: bool, workers: int = 1) -> float:
    """The estimated wall time of the config's solve of ``law`` with tangents over ``window`` (a graded GD: the
    limit's levels, :func:`gd_limit`)."""
    from . import dmft

    if _is_gd(law) and law.graded:
        law, extrapolate = _gf_twin(law), True
    so = exp.config.solver
    proc = dmft.choose_process(exp.problem, law, None, "auto", None, so["tail"], window, so["tangent_share"] or None)
    return dmft.estimate_seconds(exp.problem, law, exp.config.dynamics["t_max"], so["paths"], so["replicas"], proc,
                                 extrapolate=extrapolate, workers=workers)
