"""Divergence reports of the solver: one message naming the time, the law and the fix."""

from __future__ import annotations

from ..errors import SolverDiverged


def diverged(law, t: float, what: str) -> SolverDiverged:
    """A :class:`~sgd_dmft.errors.SolverDiverged` naming the time, what blew up and the law."""
    gam = getattr(law, "gamma", None)
    g = f", gamma={gam:g}" if gam is not None else ""
    hint = ""
    if law.graded:
        h = law.steps(len(law.times(t)))
        hint = (f"; graded grid, step at that time dt_m={h[-1]:g} (an explicit step must stay below "
                f"2 / the largest Hessian eigenvalue: lower dt_max={law.dt_max})")
    return SolverDiverged(f"DMFT solution diverged at t={t:.4g} ({what}) for algorithm={law.name}{g}, dt={law.dt:g}{hint}")


def check_stability(problem, law) -> None:
    """Refuse up front what is known to diverge: a linear model's visit maps ``r - y -> (1 - gamma)(r - y)``,
    so jumps of size ``gamma > 2`` grow without bound."""
    jump = law.jump_size
    if problem.model.linear_square and jump is not None and jump > 2.0:
        raise SolverDiverged(
            f"DMFT run diverged: gamma={jump:g} is past the stability edge gamma = 2 of the linear model (a visit maps "
            f"r - y -> (1 - gamma)(r - y); algorithm={law.name}, dt={law.dt:g})"
        )
