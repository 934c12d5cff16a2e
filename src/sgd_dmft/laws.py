"""Per-sample step-multiplier laws: the law of ``S`` (docs/theory.md, "a unifying view").

On a time grid (grid.py) every sample ``i`` carries a random sequence of step multipliers
``S_{i,m}``, independent across samples, and the algorithm is

    theta_{m+1} = theta_m - sum_i x_i F(r_{i,m}, y_i)^T S_{i,m} - dt_m * grad G(theta_m).

Time is gradient-flow time: one unit of ``t`` is ``1 / eta`` SGD steps at ``eta = gamma kappa / n``.
A law produces the multipliers of many independent samples at once, shape ``(n_samples, n_steps)``.
The same law object drives the DMFT solver (one "sample" = one Monte Carlo path of the sample
process) and the finite-d simulators (one "sample" = one data point), so theory and simulation are
specified identically. A law is built with its grid parameters (``dt``, and ``growth``, ``dt_max``
for a graded grid): ``law.grid`` is the :class:`~sgd_dmft.grid.TimeGrid`, and the law checks itself
against it (``law.check_grid``), the one home of rules such as ``dt_max <= gamma`` for SGD.
"""

from __future__ import annotations

import abc
import json
import math
from dataclasses import dataclass, field, replace
from typing import NamedTuple

import numpy as np

from .errors import ConfigError
from .grid import TimeGrid, graded_times  # noqa: F401  (graded_times: re-exported, public API)


@dataclass(frozen=True)
class LRSchedule:
    """A learning-rate schedule: the step is multiplied by ``factors[i]`` on ``[times[i-1], times[i])``
    (``times`` increasing, in units of t; ``len(factors) = len(times) + 1``; ``times[-1] = 0``, ``times[len]
    = inf`` implied), as ``torch.optim.lr_scheduler`` multiplies the optimizer's lr (weight decay included).

    Time keeps counting at the base step (``t = steps x gamma kappa / n``), so at the critical scale a factor
    ``f`` leaves SGD's Poisson clock (rate ``1 / gamma`` per sample) alone and multiplies the jump: ``S =
    f gamma Bernoulli(dt / gamma)``, ``E[S] = f dt``, ``E[S^2] = f^2 gamma dt`` (docs/theory.md section 1b).
    A grid step ``m`` uses the factor at its start ``t_m`` (the step a scheduler sets before it). Constant
    factors between jumps: align the jumps with the grid (multiples of ``4 dt`` for the extrapolated
    levels) for the ``dt -> 0`` limit to keep its second order.
    """

    times: tuple[float, ...] = ()
    factors: tuple[float, ...] = (1.0,)

    def __post_init__(self):
        t = np.asarray(self.times, dtype=np.float64)
        f = np.asarray(self.factors, dtype=np.float64)
        if t.ndim != 1 or not np.all(np.isfinite(t)) or np.any(t <= 0) or np.any(np.diff(t) <= 0):
            raise ConfigError(f"lr_times={list(self.times)!r} is not allowed: must be increasing finite times > 0",
                              key="dynamics.lr_times")
        if f.shape != (len(t) + 1,) or not np.all(np.isfinite(f)) or np.any(f < 0):
            raise ConfigError(f"lr_factors={list(self.factors)!r} is not allowed: must be {len(t) + 1} finite numbers "
                              f">= 0 (one more than lr_times: the factor before the first time, then after each)",
                              key="dynamics.lr_factors")
        object.__setattr__(self, "times", tuple(float(x) for x in t))
        object.__setattr__(self, "factors", tuple(float(x) for x in f))

    @classmethod
    def step_decay(cls, every: float, factor: float, until: float) -> "LRSchedule":
        """``torch.optim.lr_scheduler.StepLR``: the factor multiplied by ``factor`` every ``every`` units of t,
        up to ``until``."""
        n = int(math.floor(until / every + 1e-9))
        return cls(tuple(every * (j + 1) for j in range(n)), tuple(factor**j for j in range(n + 1)))

    @classmethod
    def from_function(cls, fn, t_end: float, pieces: int = 64, after: float | None = None) -> "LRSchedule":
        """Any factor ``fn(t)`` (a Python callable of the time in units of t) on ``[0, t_end]`` as ``pieces``
        constant pieces, each at its midpoint's value; ``after`` (default ``fn(t_end)``) past ``t_end``. The
        pieces are what the solver and the simulators run (the schedule stays a picklable value)."""
        if not (t_end > 0 and int(pieces) >= 1):
            raise ConfigError(f"t_end={t_end!r}, pieces={pieces!r} are not allowed: need t_end > 0 and pieces >= 1",
                              key="dynamics.lr_times")
        edges = np.linspace(0.0, float(t_end), int(pieces) + 1)
        vals = [float(fn(0.5 * (a + b))) for a, b in zip(edges[:-1], edges[1:])]
        last = float(fn(float(t_end))) if after is None else float(after)
        return cls(tuple(edges[1:]), tuple(vals) + (last,))

    @classmethod
    def cosine(cls, t_end: float, final: float = 0.0, pieces: int = 64) -> "LRSchedule":
        """Cosine annealing from 1 to ``final`` over ``[0, t_end]`` as ``pieces`` constant pieces (each at its
        midpoint's value; ``final`` after ``t_end``)."""
        return cls.from_function(lambda t: final + (1.0 - final) * 0.5 * (1.0 + math.cos(math.pi * t / t_end)),
                                 t_end, pieces, after=final)

    @classmethod
    def warmup(cls, t_warm: float, start: float = 0.0, pieces: int = 16) -> "LRSchedule":
        """Linear warm-up from ``start`` to 1 over ``[0, t_warm]`` (``pieces`` constant pieces), then 1."""
        return cls.from_function(lambda t: start + (1.0 - start) * t / t_warm, t_warm, pieces, after=1.0)

    def factor(self, t) -> np.ndarray:
        """The factor at times ``t`` (array); a time within 1e-9 relative of a jump is past it."""
        t = np.asarray(t, dtype=np.float64)
        idx = np.searchsorted(np.asarray(self.times), t * (1.0 + 1e-9) + 1e-12, side="right")
        return np.asarray(self.factors)[idx]

    @property
    def peak(self) -> float:
        """The largest factor (stability checks use the largest step)."""
        return float(max(self.factors))

    def attrs(self) -> dict:
        return dict(lr_times=json.dumps(list(self.times)), lr_factors=json.dumps(list(self.factors)))


class Schedule(NamedTuple):
    """A law on its grid up to ``t_max``, computed once: ``T + 1`` times, ``T + 1`` steps ``dt_m``
    (the last one unused by a march that ends at ``t_T``), and the per-step moments of ``S``; with a
    learning-rate schedule, ``factor`` (T+1,) at the grid times (None: constant 1)."""

    times: np.ndarray  # (T+1,) grid times t_m
    steps: np.ndarray  # (T+1,) dt_m, the step after t_m
    mean: np.ndarray  # (T+1,) E[S_m]
    second: np.ndarray  # (T+1,) E[S_m^2]
    factor: np.ndarray | None = None  # (T+1,) learning-rate factor at t_m

    def decays(self, ridge: float) -> np.ndarray:
        """``1 - f_m dt_m ridge``: the weight decay of step m (scaled with the learning rate)."""
        return _decays(self.steps, self.factor, ridge)

    @property
    def T(self) -> int:
        """Number of grid steps."""
        return len(self.times) - 1


def _decays(steps: np.ndarray, factor: np.ndarray | None, ridge: float) -> np.ndarray:
    """``1 - dt_m ridge`` times the learning-rate factor where there is one (one formula for the solver, the
    law recursion of the simulator and the finite-d exact moments)."""
    return 1.0 - steps * ridge if factor is None else 1.0 - steps * ridge * factor


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
        return _decays(self.steps(n_steps), self.lr_factors(self.grid_times(n_steps)), ridge)

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


@dataclass(frozen=True)
class GD(Law):
    """Full-batch gradient descent with step ``dt`` (gradient flow as ``dt -> 0``): ``S = dt``."""

    dt: float
    name: str = field(default="gd", kw_only=True)

    def sample(self, rng, n_samples, n_steps):
        return np.broadcast_to(self.steps(n_steps), (n_samples, n_steps)).copy()

    @property
    def deterministic(self):
        return True

    def second_moment_at(self, dt):
        return np.asarray(dt) ** 2

    @property
    def continuous_time(self):
        return False

    def coarsen(self, S_fine, rng):
        return _pair_sums(S_fine)  # h1 + h2: the merged step (nested grids, graded ones included)


@dataclass(frozen=True)
class GF(GD):
    """Gradient flow, solved on the grid of the GD recursion with step ``dt`` (``S = dt``); the solver
    returns its ``dt -> 0`` limit by default (Richardson extrapolation), with an error estimate."""

    name: str = field(default="gf", kw_only=True)

    @property
    def continuous_time(self):
        return True


@dataclass(frozen=True)
class SGD(Law):
    """Critical-scale SGD: ``S = gamma * Bernoulli(dt / gamma)`` (Poisson jumps of size gamma at rate 1/gamma)."""

    dt: float
    gamma: float
    name: str = field(default="sgd", kw_only=True)

    def check_grid(self, grid):
        if not (0 < grid.dt <= self.gamma):
            raise ConfigError(f"dt={grid.dt} must satisfy 0 < dt <= gamma={self.gamma} (Bernoulli p = dt/gamma <= 1)",
                              key="dt")
        if grid.largest_step > self.gamma:
            raise ConfigError(f"dt_max={grid.dt_max} is not allowed: a graded SGD grid needs dt_max <= gamma="
                              f"{self.gamma} (Bernoulli p = dt_m/gamma <= 1; the Poisson limit needs dt_m << gamma)",
                              key="dt_max")

    def sample(self, rng, n_samples, n_steps):
        return self.gamma * (rng.random((n_samples, n_steps)) < self.steps(n_steps) / self.gamma)

    @property
    def sparse(self):
        return self.largest_step / self.gamma < 0.5

    @property
    def jump_size(self):
        return self.gamma * self.lr_peak

    def second_moment_at(self, dt):
        return self.gamma * np.asarray(dt)

    def coarsen(self, S_fine, rng):
        """A visit on the coarse step when either fine step has one (probability ``p1 + p2 - p1 p2`` for
        ``p_i = h_i / gamma``, the two fine steps' own), plus an independent one with probability
        ``p1 p2 / ((1 - p1)(1 - p2))`` when neither has: Bernoulli(``p1 + p2``) exactly, the merged step's
        law (uniform grids: ``p1 = p2 = dt / gamma``; graded ones nest by ``refine``)."""
        n, m2 = S_fine.shape
        T = (m2 - 1) // 2
        h1, h2, last = _step_pairs(self, m2)
        if np.max(h1 + h2, initial=0.0) > self.gamma or 2 * last > self.gamma:
            return None
        p1, p2 = h1 / self.gamma, h2 / self.gamma
        any_visit = (S_fine[:, 0 : 2 * T : 2] != 0) | (S_fine[:, 1 : 2 * T : 2] != 0)
        extra = rng.random((n, T)) < p1 * p2 / ((1.0 - p1) * (1.0 - p2))
        out = np.empty((n, T + 1))
        out[:, :T] = self.gamma * (any_visit | extra)
        out[:, T] = self.gamma * (rng.random(n) < 2 * last / self.gamma)
        return out


@dataclass(frozen=True)
class SME(Law):
    """Stochastic modified equation, Euler-Maruyama: ``S = dt + sqrt(gamma dt) N(0, 1)``."""

    dt: float
    gamma: float
    name: str = field(default="sme", kw_only=True)

    def sample(self, rng, n_samples, n_steps):
        h = self.steps(n_steps)
        return h + np.sqrt(self.gamma * h) * rng.standard_normal((n_samples, n_steps))

    def second_moment_at(self, dt):
        dt = np.asarray(dt)
        return dt**2 + self.gamma * dt

    def coarsen(self, S_fine, rng):
        # (h1 + sqrt(gamma h1) N1) + (h2 + sqrt(gamma h2) N2) = (h1 + h2) + sqrt(gamma (h1 + h2)) N: exact
        return _pair_sums(S_fine)


@dataclass(frozen=True)
class Reshuffle(Law):
    """Random reshuffling: ``S = gamma`` at one uniform step of every epoch window of ``gamma/dt`` steps.

    ``gamma / dt`` must be an integer (the number of grid steps per epoch).
    """

    dt: float
    gamma: float
    name: str = field(default="reshuffle", kw_only=True)

    def check_grid(self, grid):
        if grid.graded:
            raise ConfigError(f"growth={grid.growth} is not allowed for reshuffling: epochs need a uniform grid "
                              f"(growth = 0)", key="growth")
        q = self.gamma / grid.dt
        if abs(q - round(q)) > 1e-9 or round(q) < 1:
            raise ConfigError(f"gamma/dt={q:g} must be a positive integer for reshuffling (steps per epoch)", key="dt")

    @property
    def steps_per_epoch(self) -> int:
        return int(round(self.gamma / self.dt))

    def coarsen(self, S_fine, rng):
        """The visit at uniform fine step ``j`` of a window of ``2q`` steps is at uniform coarse step
        ``j // 2`` of the window of ``q``: exact (needs ``gamma / (2 dt)`` an integer)."""
        q2 = self.steps_per_epoch
        if q2 % 2:
            return None
        n, m2 = S_fine.shape
        T = (m2 - 1) // 2
        out = np.empty((n, T + 1))
        out[:, :T] = np.maximum(S_fine[:, 0 : 2 * T : 2], S_fine[:, 1 : 2 * T : 2])
        out[:, T] = S_fine[:, 2 * T]  # never used: a march ends at t_T
        return out

    def sample(self, rng, n_samples, n_steps):
        q = self.steps_per_epoch
        n_ep = -(-n_steps // q)
        pos = rng.integers(0, q, size=(n_samples, n_ep))
        S = np.zeros((n_samples, n_ep * q))
        rows = np.repeat(np.arange(n_samples), n_ep)
        cols = (np.arange(n_ep) * q)[None, :] + pos
        S[rows, cols.ravel()] = self.gamma
        return S[:, :n_steps]

    @property
    def sparse(self):
        return self.steps_per_epoch >= 2

    @property
    def jump_size(self):
        return self.gamma * self.lr_peak

    @property
    def independent_steps(self):
        return False

    def second_moment_at(self, dt):
        return self.gamma * np.asarray(dt)


@dataclass(frozen=True)
class Persistent(Law):
    """Persistent (Markov) sample selection of Mignacco et al. (2020): ``S = dt * s_m / b``.

    ``s_m in {0, 1}`` is a two-state Markov chain with stationary on-probability ``b`` and
    persistence time ``tau`` (in units of t): off->on with probability ``dt b / tau``, on->off with
    probability ``dt (1 - b) / tau`` per step; started from stationarity.
    """

    dt: float
    b: float
    tau: float
    name: str = field(default="persistent", kw_only=True)

    def check_grid(self, grid):
        if not (0 < self.b <= 1):
            raise ConfigError(f"b={self.b} must be in (0, 1]", key="b")
        if grid.largest_step * max(self.b, 1 - self.b) / self.tau > 1:
            raise ConfigError(f"tau={self.tau} too small for dt={grid.dt} (dt_max={grid.dt_max}): switching "
                              f"probability exceeds 1", key="tau")

    def sample(self, rng, n_samples, n_steps):
        s = rng.random(n_samples) < self.b
        out = np.empty((n_samples, n_steps))
        h = self.steps(n_steps)
        for m in range(n_steps):
            out[:, m] = s * (h[m] / self.b)
            u = rng.random(n_samples)
            s = np.where(s, u >= h[m] * (1 - self.b) / self.tau, u < h[m] * self.b / self.tau)
        return out

    @property
    def independent_steps(self):
        return False

    def second_moment_at(self, dt):
        return np.asarray(dt) ** 2 / self.b

    def coarsen(self, S_fine, rng):
        """The chain on the merged steps from the chain on the fine ones: exact in law, coupled. On fine
        steps ``h1, h2`` the chain turns on with ``a_i = h_i b / tau`` and off with ``c_i = h_i (1 - b) / tau``,
        over the two with ``up = a1 (1 - c2) + (1 - a1) a2`` and ``down = c1 (1 - a2) + (1 - c1) c2``, a little
        less than the merged step's ``a1 + a2``, ``c1 + c2`` (uniform grids: ``a (2 - a - c)`` against ``2a``).
        While the coarse state equals the fine one at even steps it follows the fine chain's two-step
        move and, when the fine chain stays, makes the move on its own with probability ``(a1 + a2 - up) /
        (1 - up)`` (off) or ``(c1 + c2 - down) / (1 - down)`` (on), so that it moves with exactly ``a1 + a2``
        / ``c1 + c2`` given its own past; out of step (probability O(h^2) per step) it moves independently."""
        n, m2 = S_fine.shape
        T = (m2 - 1) // 2
        h1, h2, last = _step_pairs(self, m2)
        r_on, r_off = self.b / self.tau, (1 - self.b) / self.tau  # switching rates per unit time
        a1, a2, c1, c2 = r_on * h1, r_on * h2, r_off * h1, r_off * h2
        if T and max(np.max(a1 + a2), np.max(c1 + c2)) > 1:
            return None
        up = a1 * (1 - c2) + (1 - a1) * a2  # the fine chain off -> on over two steps
        down = c1 * (1 - a2) + (1 - c1) * c2  # ... on -> off
        q_off, q_on = (a1 + a2 - up) / (1 - up), (c1 + c2 - down) / (1 - down)
        on_f = S_fine[:, 0 : 2 * T + 1 : 2] != 0  # the fine chain at even steps (n, T + 1)
        s = on_f[:, 0].copy()
        scale = np.append(h1 + h2, 2 * last) / self.b
        out = np.empty((n, T + 1))
        for m in range(T + 1):
            out[:, m] = s * scale[m]
            if m == T:
                break
            u = rng.random(n)
            sync, nxt = s == on_f[:, m], on_f[:, m + 1]
            own = np.where(s, u >= c1[m] + c2[m], u < a1[m] + a2[m])  # the coarse chain's own move (out of step)
            stay = np.where(s, u >= q_on[m], u < q_off[m])  # ... in step, when the fine chain stays
            s = np.where(sync, np.where(nxt != s, nxt, stay), own)
        return out


LAWS = ("gf", "gd", "sgd", "sme", "reshuffle", "persistent")


def make_law(algorithm: str, dt: float, gamma: float = 1.0, b: float = 0.5, tau: float = 1.0,
             growth: float = 0.0, dt_max: float | None = None, lr: LRSchedule | None = None) -> Law:
    """Law for a named algorithm (``gf``/``gd`` -> ``S = dt``); ``growth``/``dt_max``: graded grid; ``lr``: a
    learning-rate schedule."""
    g = dict(growth=growth, dt_max=dt_max, lr=lr)
    if algorithm == "gf":
        return GF(dt, **g)
    if algorithm == "gd":
        return GD(dt, **g)
    if algorithm == "sgd":
        return SGD(dt, gamma, **g)
    if algorithm == "sme":
        return SME(dt, gamma, **g)
    if algorithm == "reshuffle":
        return Reshuffle(dt, gamma, **g)
    if algorithm == "persistent":
        return Persistent(dt, b, tau, **g)
    raise ConfigError(f"algorithm={algorithm!r} is not one of {LAWS}", key="algorithm")


def _step_pairs(law: Law, m2: int) -> tuple[np.ndarray, np.ndarray, float]:
    """The law's fine steps in the pairs that one coarse step merges: ``(h_{2m}, h_{2m+1})`` for ``m < T``
    and the last step ``h_{2T}`` (``m2 = 2T + 1`` multipliers)."""
    h = law.steps(m2)
    T = (m2 - 1) // 2
    return h[0 : 2 * T : 2], h[1 : 2 * T : 2], float(h[-1])


def _pair_sums(S_fine: np.ndarray) -> np.ndarray:
    """``S_c[:, m] = S_f[:, 2m] + S_f[:, 2m+1]`` for ``m < T`` and ``2 S_f[:, 2T]``-like last column
    (``(n, 2T + 1) -> (n, T + 1)``; the last multiplier is never used by a march that ends at ``t_T``)."""
    n, m2 = S_fine.shape
    T = (m2 - 1) // 2
    out = np.empty((n, T + 1))
    out[:, :T] = S_fine[:, 0 : 2 * T : 2] + S_fine[:, 1 : 2 * T : 2]
    out[:, T] = 2.0 * S_fine[:, 2 * T]
    return out
