"""Units of the up-front budgets, shared by the solver's planning and the simulators' cost estimates.

Costs are in nominal multiply-adds, ``RATE`` of them per second (measured on the solver's march: 2
cores, numba + BLAS); ``COST_LIMIT`` (about an hour) is where a run needs ``--force``.
:func:`grid_steps` counts the steps of a grid up to ``t_max`` without building a long one. A light
module (no solver, no simulator), so that neither side imports the other.
"""

from __future__ import annotations

import math

RATE = 3e8  # multiply-adds per second, nominal (measured on the march: 2 cores, numba + BLAS)
COST_LIMIT = 3600.0 * RATE  # about an hour: past it a run needs --force (run.py)
MAX_BUILT_STEPS = 10**6  # grids longer than this are bounded, not built, by grid_steps


def grid_steps(grid, t_max: float) -> float:
    """Number of grid steps up to ``t_max`` of a law or TimeGrid (exact up to ``MAX_BUILT_STEPS``, else
    a bound computed without building the grid; may be inf)."""
    dt, growth, cap = float(grid.dt), float(grid.growth), grid.dt_max
    graded = grid.graded
    bound = t_max / dt
    if graded:  # uniform to t_c = dt / growth, geometric up to the cap, then steps of dt_max
        t_c = dt / growth
        t_cap = math.inf if cap is None else cap / growth
        geo = math.log(max(min(t_max, t_cap), t_c) / t_c) / math.log1p(growth)
        bound = min(bound, 1.0 / growth + 1 + geo + (max(0.0, t_max - t_cap) / cap if cap else 0.0))
    if not bound <= MAX_BUILT_STEPS:
        return float(bound)
    return float(len(grid.times(t_max)) - 1)
