"""The law interface: :class:`Law`, the law of the per-sample step multipliers ``S`` on its time grid
(grid, steps, moments, schedule, coarsening for the Richardson levels; see :mod:`sgd_dmft.laws` for the
laws themselves), and the pair helpers of nested grids (:func:`step_pairs`, :func:`pair_sums`).

Re-exported by :mod:`sgd_dmft.laws` (the names' earlier home).
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field, replace

import numpy as np

from .errors import ConfigError
from .grid import TimeGrid
from .schedules import LRSchedule, Schedule, decays

__all__ = ["Law", "step_pairs", "pair_sums"]


@dataclass(frozen=True)
class Law(abc.ABC):
    """Law of the per-sample multiplier sequence ``(S_0, S_1, ...)`` on a time grid.

    The grid starts with step ``dt``; with ``growth > 0`` (keyword-only) the step of grid step ``m``
    is ``dt_m = clip(growth * t_m, dt, dt_max)`` (:class:`~sgd_dmft.grid.TimeGrid`). The recursion uses
    ``dt_m`` everywhere (``E[S_m] = dt_m``, ridge decay ``1 - dt_m lambda``), in the solver and in the
    finite-d simulators alike, so both stay the same recursion. ``dt_max = None``: no cap.
    """

    growth: float = field(default=0.0, kw_only=True)
    dt_max: float | None = field(default=None, kw_only=True)
    refine: int = field(default=0, kw_only=True)
    name: str = field(default="law", kw_only=True)
    lr: LRSchedule | None = field(default=None, kw_only=True)

    def __post_init__(self):
        if self.lr is not None and not isinstance(self.lr, LRSchedule):
            raise ConfigError(f"lr={self.lr!r} is not allowed: must be a sgd_dmft.laws.LRSchedule or None", key="lr")
        self.check_grid(self.grid)

    @property
    def lr_peak(self) -> float:
        """The largest learning-rate factor (1 without a schedule)."""
        return 1.0 if self.lr is None else self.lr.peak

    def lr_factors(self, times: np.ndarray) -> np.ndarray | None:
        """The learning-rate factor at ``times`` (None without a schedule)."""
        return None if self.lr is None else self.lr.factor(times)

    @property
    def grid(self) -> TimeGrid:
        """The time grid the law lives on (validated on construction)."""
        return TimeGrid(self.dt, self.growth, self.dt_max, self.refine)

    def check_grid(self, grid: TimeGrid) -> None:
        """Raise :class:`~sgd_dmft.errors.ConfigError` when this law cannot live on ``grid``."""

    # ---- the grid, for convenience ----
    @property
    def graded(self) -> bool:
        return self.grid.graded

    @property
    def largest_step(self) -> float:
        return self.grid.largest_step

    def times(self, t_max: float) -> np.ndarray:
        """Grid times ``t_0 = 0, ..., t_T`` (nearest grid point to ``t_max`` last)."""
        return self.grid.times(t_max)

    def steps(self, n_steps: int) -> np.ndarray:
        """``dt_m`` for ``m = 0 .. n_steps - 1`` (the step taken after grid time ``t_m``)."""
        return self.grid.steps(n_steps)

    def schedule(self, t_max: float) -> Schedule:
        """Times, steps and moments of the law up to ``t_max``, computed once."""
        times = self.times(t_max)
        h = self.steps(len(times))
        m1, m2 = self.moments_at(h)
        f = self.lr_factors(times)
        if f is None:
            return Schedule(times, h, m1, m2)
        return Schedule(times, h, m1 * f, m2 * f**2, f)

    def scaled_sample(self, rng: np.random.Generator, n_samples: int, n_steps: int) -> np.ndarray:
        """:meth:`sample` times the learning-rate factor of each step's start (the multipliers a run uses)."""
        S = self.sample(rng, n_samples, n_steps)
        f = self.lr_factors(self.grid_times(n_steps))
        return S if f is None else S * f[None, :]

    def decays(self, n_steps: int, ridge: float) -> np.ndarray:
        """``1 - f_m dt_m ridge`` for the first ``n_steps`` grid steps (:meth:`Schedule.decays`)."""
        return decays(self.steps(n_steps), self.lr_factors(self.grid_times(n_steps)), ridge)

    def grid_times(self, n_steps: int) -> np.ndarray:
        """The start times ``t_0 .. t_{n_steps - 1}`` of the first ``n_steps`` grid steps."""
        h = self.steps(n_steps)
        return np.concatenate([[0.0], np.cumsum(h)[:-1]]) if n_steps else np.zeros(0)

    def coarsen(self, S_fine: np.ndarray, rng: np.random.Generator) -> np.ndarray | None:
        """Multipliers on the grid of step ``2 dt`` built from this law's own on ``dt`` (``S_fine``,
        shape ``(n, 2T + 1)``), distributed exactly as ``with_step(2).sample`` (``(n, T + 1)``) and
        coupled to ``S_fine`` (common random numbers for Richardson extrapolation); None where no such
        exact coupling is known (then the levels are drawn independently)."""
        return None

    # ---- the law of S ----
    @abc.abstractmethod
    def sample(self, rng: np.random.Generator, n_samples: int, n_steps: int) -> np.ndarray:
        """Multipliers, shape ``(n_samples, n_steps)``; column ``m`` uses the step ``dt_m``."""

    def moments_at(self, h: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(E[S_m], E[S_m^2])`` at steps ``h`` (every law here matches gradient flow on average)."""
        h = np.asarray(h, dtype=float)
        return h.copy(), self.second_moment_at(h)

    def moments(self, n_steps: int) -> tuple[np.ndarray, np.ndarray]:
        """``(E[S_m], E[S_m^2])`` for ``m = 0 .. n_steps - 1`` on the law's grid (learning-rate factor included)."""
        m1, m2 = self.moments_at(self.steps(n_steps))
        f = self.lr_factors(self.grid_times(n_steps))
        return (m1, m2) if f is None else (m1 * f, m2 * f**2)

    def second_moment_at(self, dt):
        """``E[S^2]`` at step ``dt`` (array or float)."""
        raise NotImplementedError

    @property
    def second_moment(self) -> float:
        """``E[S_m^2]`` at the base step ``dt``."""
        return float(self.second_moment_at(self.dt))

    @property
    def deterministic(self) -> bool:
        """True when ``S`` is the same non-random number at every step (GF / GD)."""
        return False

    @property
    def sparse(self) -> bool:
        """True when most multipliers are zero (Bernoulli SGD, reshuffling): the solver keeps a path's
        visits only (SparseHistory)."""
        return False

    @property
    def independent_steps(self) -> bool:
        """True when ``S_m`` are independent over m (then the moments describe the law's time structure)."""
        return True

    @property
    def jump_size(self) -> float | None:
        """The size of a visit's jump when ``S`` is a jump process (SGD, reshuffling: ``gamma``), else None."""
        return None

    @property
    def continuous_time(self) -> bool:
        """True when the recursion on the grid stands for a continuous-time algorithm (GF, critical SGD,
        the SME, reshuffling, persistent selection), whose ``dt -> 0`` limit the solver returns by
        default; False for full-batch GD, which *is* the discrete recursion."""
        return True

    def refined(self, j: int) -> "Law":
        """The same law on the nested grid ``refine + j`` (:class:`~sgd_dmft.grid.TimeGrid`): every step
        split in ``2^j`` (``j > 0``) or ``2^-j`` steps merged (``j < 0``): the Richardson levels of a graded
        grid. Raises ConfigError where the law cannot live there."""
        return replace(self, refine=self.refine + int(j))

    def with_step(self, factor: float) -> "Law":
        """The same law on the grid whose steps are all multiplied by ``factor`` (``dt``, ``dt_max``;
        a graded grid keeps its shape ``dt_m = clip(growth t_m, dt, dt_max)`` with ``growth`` scaled
        too, so that the mesh function is scaled). Raises ConfigError where the law cannot live there."""
        dt_max = None if self.dt_max is None else self.dt_max * factor
        return replace(self, dt=self.dt * factor, growth=self.growth * factor, dt_max=dt_max)


def step_pairs(law: Law, m2: int) -> tuple[np.ndarray, np.ndarray, float]:
    """The law's fine steps in the pairs that one coarse step merges: ``(h_{2m}, h_{2m+1})`` for ``m < T``
    and the last step ``h_{2T}`` (``m2 = 2T + 1`` multipliers)."""
    h = law.steps(m2)
    T = (m2 - 1) // 2
    return h[0 : 2 * T : 2], h[1 : 2 * T : 2], float(h[-1])


def pair_sums(S_fine: np.ndarray) -> np.ndarray:
    """``S_c[:, m] = S_f[:, 2m] + S_f[:, 2m+1]`` for ``m < T`` and ``2 S_f[:, 2T]``-like last column
    (``(n, 2T + 1) -> (n, T + 1)``; the last multiplier is never used by a march that ends at ``t_T``)."""
    n, m2 = S_fine.shape
    T = (m2 - 1) // 2
    out = np.empty((n, T + 1))
    out[:, :T] = S_fine[:, 0 : 2 * T : 2] + S_fine[:, 1 : 2 * T : 2]
    out[:, T] = 2.0 * S_fine[:, 2 * T]
    return out
