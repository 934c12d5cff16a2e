"""Closed forms first: where an exact d = infinity formula gives what ``solve`` was asked for, it is used
instead of the forward march.

The linear model (square loss, linear student and teacher, k = k* = 1, ``models.linear(noise)``) has
closed-form learning curves (:mod:`sgd_dmft.exact`):

* GD with step ``dt`` (and the raw recursion of GF on its grid, which is GD): ``exact.gd_linear``, the
  Marchenko-Pastur integral of the recursion itself, uniform or graded steps;
* gradient flow (its ``dt -> 0`` limit): ``exact.gf_linear``;
* critical-scale SGD (its ``dt -> 0`` limit, the Poisson process): ``exact.sgd_linear_poisson``, the
  homogenised-SGD Volterra equation.

They give the curves only (``train_loss``, ``test_loss``, ``M``, ``Q``), not the two-time kernels: a solve
that keeps kernels, names its sample process, runs the SME or the raw SGD recursion marches as before.
The dense exact path stays the cross-check (tests/test_closed.py, tests/test_extrapolation.py).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import xarray as xr

from .. import exact

# the largest (time points x quadrature nodes) array a closed form builds (several live at once);
# past it the march runs (memory, and a Volterra solve that is O(n^2) in its time steps)
MAX_CELLS = 10_000_000
# the Volterra step of the homogenised-SGD equation: h (b + ridge) <= this (b: the spectrum's edge), its
# fourth-order combination then sits far below any grid's dt error
VOLTERRA_STEP = 0.02


def applies(problem) -> bool:
    """True for the linear model with k = k* = 1 started as ``init_overlap theta* + init_scale Z``."""
    m = problem.model
    if not (m.linear_square and m.k == 1 and m.kstar == 1):
        return False
    return problem.init_direction is None or float(np.ravel(problem.init_direction)[0]) == 1.0


def _volterra_step(problem, t_max: float) -> float:
    _, b = exact.mp_support(problem.delta)
    return min(VOLTERRA_STEP / (b + abs(problem.ridge)), t_max / 400)


def _fits(n_times: int, n_nodes: int) -> bool:
    return n_times * n_nodes <= MAX_CELLS


class _Plan(NamedTuple):
    """Which closed form answers, and its size: ``kind`` gd / gf / sgd, quadrature ``nodes``, Volterra step ``h``."""

    kind: str
    nodes: int
    h: float = 0.0


def _plan(problem, law, T: int, t_max: float, extrapolate: bool) -> _Plan | None:
    """The closed form of ``law`` over ``T`` grid steps up to ``t_max`` (``extrapolate``: its ``dt -> 0``
    limit), or None where there is none or it would not fit in ``MAX_CELLS``."""
    if not applies(problem) or law.lr is not None:  # the closed forms have a constant step
        return None
    if law.name == "gd" or (law.name == "gf" and not extrapolate):
        plan, rows = _Plan("gd", T + 8), T + 1
    elif law.name == "gf" and extrapolate:
        plan, rows = _Plan("gf", exact.n_nodes_gf(problem, t_max)), T + 1
    elif law.name == "sgd" and extrapolate:
        h = _volterra_step(problem, t_max)
        plan = _Plan("sgd", max(200, exact.n_nodes_gf(problem, 2 * t_max)), h)
        rows = 2 * int(np.ceil(t_max / h)) + 1
    else:
        return None
    return plan if _fits(rows, plan.nodes) else None


def curves(problem, law, schedule, extrapolate: bool) -> xr.Dataset | None:
    """The closed-form curves of ``law`` on ``schedule``'s times (``extrapolate``: its ``dt -> 0`` limit),
    or None where there is none (:func:`_plan`)."""
    times, T = schedule.times, schedule.T
    plan = _plan(problem, law, T, float(times[-1]), extrapolate)
    if plan is None:
        return None
    if plan.kind == "gd":
        steps = schedule.steps[:T] if law.graded else None
        return exact.gd_linear(problem, law.dt, T, steps=steps).assign_coords(time=times)
    if plan.kind == "gf":
        return exact.gf_linear(problem, times)
    return exact.sgd_linear_poisson(problem, law.gamma, times, h=plan.h, n_nodes=plan.nodes)


def estimate_seconds(problem, law, t_max: float, extrapolate: bool) -> float | None:
    """Wall seconds of :func:`curves` (None where no closed form answers): the Volterra solve's Python loop
    and O(n^2) sums (SGD), the ``times x nodes`` integrals (GF, GD); measured on linear delta 0.5: SGD t 5 / 20
    0.034 / 0.53 s (estimated 0.068 / 0.53), GF t 20 0.03 s (0.026), GD dt 0.01 t 20 0.69 s (0.62)."""
    T = len(law.times(t_max)) - 1
    plan = _plan(problem, law, T, t_max, extrapolate)
    if plan is None:
        return None
    if plan.kind == "gd":
        return 0.02 + 1.5e-7 * (T + 1) * plan.nodes
    if plan.kind == "gf":
        return 0.02 + 1e-8 * (T + 1) * plan.nodes
    n = 3 * int(np.ceil(t_max / plan.h))  # the levels h and h/2
    return 0.01 + 1e-5 * n + 4e-9 * (n * n + 10 * n * plan.nodes)


def dataset(problem, law, schedule, extrapolate: bool) -> xr.Dataset | None:
    """:func:`curves` as ``solve`` returns them: the law's attrs, ``<var>_dt_error`` (the closed form's own
    discretisation error: zero up to rounding, or the Volterra solve's estimate), ``closed_form`` naming
    the formula."""
    ds = curves(problem, law, schedule, extrapolate)
    if ds is None:
        return None
    formula = ds.attrs["solver"]
    for v in ("train_loss", "test_loss", "M", "Q"):
        err = ds[v + "_dt_error"] if v + "_dt_error" in ds else xr.zeros_like(ds[v])
        ds[v + "_dt_error"] = err
    ds.attrs.update(
        solver="closed-form", closed_form=formula, algorithm=law.name, dt=float(law.dt),
        gamma=float(getattr(law, "gamma", 0.0)), t_max=float(schedule.times[-1]), grid_steps=int(schedule.T),
        grid_growth=float(law.growth if law.graded else 0.0),
        grid_dt_max=float(law.largest_step if law.graded else law.dt),
        extrapolated=int(extrapolate), levels="closed form", exact_path=1, paths=0, replicas=1,
    )
    return ds
