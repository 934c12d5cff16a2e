"""The time grid ``t_0 = 0 < t_1 < ... < t_T`` shared by the solver, the simulators and the closed forms.

Units: gradient-flow time t (one SGD epoch lasts ``gamma``). ``TimeGrid(dt)`` is uniform,
``t_m = m dt`` with ``T = round(t_max / dt)``; ``TimeGrid(dt, growth, dt_max)`` with ``growth > 0`` is
graded: ``dt_m = t_{m+1} - t_m = clip(growth * t_m, dt, dt_max)`` (relative resolution ``growth``:
about ``log(t_max / t_c) / log(1 + growth)`` steps past the crossover ``t_c = dt / growth`` instead of
``t_max / dt``), fine where the dynamics is fast (early) and coarse where it is slow; it ends at the
grid point nearest to ``t_max``. ``dt_max = None``: no cap.

``refine = j`` (keyword) nests a grid in another: each step of the grid above split into ``2^j`` equal
steps (``j > 0``), or ``2^-j`` consecutive steps merged into one (``j < 0``; the grid then ends at the last
merged point). The grids of ``refine = 1, 0, -1`` are the Richardson levels ``h/2, h, 2h`` of a graded grid:
the same mesh function halved or doubled, every coarse point a fine one (``Law.refined``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .errors import ConfigError


def graded_step(t: float, dt: float, growth: float, dt_max: float | None) -> float:
    """The step taken at time t on a graded grid: ``clip(growth * t, dt, dt_max)``."""
    return min(max(dt, growth * t), math.inf if dt_max is None else float(dt_max))


def graded_times(t_max: float, dt: float, growth: float = 0.0, dt_max: float | None = None) -> np.ndarray:
    """Grid times up to (the grid point nearest to) ``t_max``; ``growth = 0``: ``t_m = m dt``."""
    if growth == 0.0:
        return np.arange(int(round(t_max / dt)) + 1) * dt
    t = [0.0]
    while True:
        h = graded_step(t[-1], dt, growth, dt_max)
        if t[-1] + 0.5 * h > t_max:
            break
        t.append(t[-1] + h)
    return np.asarray(t)


@dataclass(frozen=True)
class TimeGrid:
    """A uniform (``growth = 0``) or graded time grid; see the module docstring."""

    dt: float
    growth: float = 0.0
    dt_max: float | None = None
    refine: int = 0

    def __post_init__(self):
        check_grid(self.dt, self.growth, self.dt_max)

    @property
    def graded(self) -> bool:
        """True when the grid is not uniform (``growth > 0`` and a cap above ``dt``)."""
        return self.growth > 0 and (self.dt_max is None or self.dt_max > self.dt)

    @property
    def largest_step(self) -> float:
        """The largest step the grid can take (``dt_max``; infinite for an uncapped graded grid)."""
        base = self.dt if not self.graded else (math.inf if self.dt_max is None else float(self.dt_max))
        return base * 2.0 ** (-self.refine)

    def largest_step_until(self, t_max: float | None = None) -> float:
        """The largest step taken up to ``t_max`` (without it: the cap :attr:`largest_step`, or ``dt`` for an
        uncapped graded grid); the step only grows along a graded grid."""
        scale = 2.0 ** (-self.refine)  # nested grids: steps split or merged
        if not self.graded:
            return float(self.dt) * scale
        cap = float(self.largest_step) / scale  # the unrefined grid's
        if t_max is None or not math.isfinite(t_max):
            return (cap if math.isfinite(cap) else float(self.dt)) * scale
        t, h = 0.0, float(self.dt)
        while t + 0.5 * h <= t_max and h < cap:
            t += h
            h = graded_step(t, self.dt, self.growth, self.dt_max)
        return float(min(h, cap)) * scale

    def times(self, t_max: float) -> np.ndarray:
        """Grid times ``t_0 = 0, ..., t_T`` (nearest grid point to ``t_max`` last)."""
        t = graded_times(t_max, self.dt, self.growth if self.graded else 0.0, self.dt_max)
        if self.refine > 0:
            n = 2**self.refine
            frac = np.arange(n) / n
            t = np.append((t[:-1, None] + np.diff(t)[:, None] * frac).ravel(), t[-1])
        elif self.refine < 0:
            t = t[:: 2 ** (-self.refine)]
        return t

    def n_steps(self, t_max: float) -> int:
        """Number of grid steps ``T`` up to (the grid point nearest to) ``t_max``."""
        return len(self.times(t_max)) - 1

    def steps(self, n_steps: int) -> np.ndarray:
        """``dt_m`` for ``m = 0 .. n_steps - 1`` (the step taken after grid time ``t_m``)."""
        if self.refine > 0:
            n = 2**self.refine
            base = TimeGrid(self.dt, self.growth, self.dt_max).steps(-(-n_steps // n))
            return np.repeat(base / n, n)[:n_steps]
        if self.refine < 0:
            n = 2 ** (-self.refine)
            return TimeGrid(self.dt, self.growth, self.dt_max).steps(n_steps * n).reshape(n_steps, n).sum(axis=1)
        if not self.graded:
            return np.full(n_steps, self.dt)
        h = np.empty(n_steps)
        t = 0.0
        for m in range(n_steps):
            h[m] = graded_step(t, self.dt, self.growth, self.dt_max)
            t += h[m]
        return h

    def step_at(self, t: float) -> float:
        """The step taken at grid time ``t`` (of the unrefined grid)."""
        return graded_step(t, self.dt, self.growth, self.dt_max) if self.graded else self.dt


def check_grid(dt, growth, dt_max) -> None:
    """The one home of the rules of a time grid (ConfigError naming the parameter)."""
    if not (_real(dt) and math.isfinite(dt) and dt > 0):
        raise ConfigError(f"dt={dt!r} is not allowed: must be a finite number > 0", key="dt")
    if not (_real(growth) and math.isfinite(growth) and growth >= 0):
        raise ConfigError(f"growth={growth!r} is not allowed: must be a finite number >= 0 (0: uniform grid)",
                          key="growth")
    if dt_max is not None and not (dt_max >= dt):
        raise ConfigError(f"dt_max={dt_max!r} is not allowed: must be >= dt={dt}", key="dt_max")


def _real(x) -> bool:
    import numbers

    return isinstance(x, numbers.Real) and not isinstance(x, bool)
