"""Per-sample step-multiplier laws (THEORY.md section 2, "a unifying view").

On the time grid ``t_m = m * dt`` every sample ``i`` carries a random sequence of step multipliers
``S_{i,m}``, independent across samples, and the algorithm is

    theta_{m+1} = theta_m - sum_i x_i F(r_{i,m}, y_i)^T S_{i,m} - dt * grad G(theta_m).

Time is gradient-flow time: one unit of ``t`` is ``1 / eta`` SGD steps at ``eta = gamma kappa / n``.
A law produces the multipliers of many independent samples at once, shape ``(n_samples, n_steps)``.
The same law object drives the DMFT solver (one "sample" = one Monte Carlo path of the sample
process) and the finite-d simulators (one "sample" = one data point), so theory and simulation are
specified identically.
"""

from __future__ import annotations

import abc
import math
from dataclasses import dataclass, field

import numpy as np


def graded_times(t_max: float, dt: float, growth: float = 0.0, dt_max: float | None = None) -> np.ndarray:
    """The time grid ``t_0 = 0 < t_1 < ... < t_T`` of a law (see :class:`Law`).

    ``growth = 0``: the uniform grid ``t_m = m dt``, ``T = round(t_max / dt)``. ``growth > 0``: a graded
    grid whose step is proportional to the elapsed time, ``t_{m+1} - t_m = clip(growth * t_m, dt, dt_max)``
    (relative resolution ``growth``: about ``log(t_max / t_c) / log(1 + growth)`` steps past the
    crossover ``t_c = dt / growth``, instead of ``t_max / dt``); it ends at the grid point nearest to
    ``t_max``. Units: gradient-flow time t.
    """
    if growth == 0.0:
        return np.arange(int(round(t_max / dt)) + 1) * dt
    t = [0.0]
    while True:
        h = _graded_step(t[-1], dt, growth, dt_max)
        if t[-1] + 0.5 * h > t_max:
            break
        t.append(t[-1] + h)
    return np.asarray(t)


def _graded_step(t: float, dt: float, growth: float, dt_max: float | None) -> float:
    """The step taken at time t on a graded grid: ``clip(growth * t, dt, dt_max)``."""
    return min(max(dt, growth * t), math.inf if dt_max is None else float(dt_max))


@dataclass(frozen=True)
class Law(abc.ABC):
    """Law of the per-sample multiplier sequence ``(S_0, S_1, ...)`` on a time grid.

    The grid starts with step ``dt``; with ``growth > 0`` (keyword-only) the step of grid step ``m``
    is ``dt_m = clip(growth * t_m, dt, dt_max)`` (:func:`graded_times`): a graded grid for long
    horizons, fine where the dynamics is fast (early) and coarse where it is slow. The recursion uses
    ``dt_m`` everywhere (``E[S_m] = dt_m``, ridge decay ``1 - dt_m lambda``), in the solver and in the
    finite-d simulators alike, so both stay the same recursion. ``dt_max = None``: no cap.
    """

    growth: float = field(default=0.0, kw_only=True)
    dt_max: float | None = field(default=None, kw_only=True)
    name: str = field(default="law", kw_only=True)

    def __post_init__(self):
        if not (math.isfinite(self.dt) and self.dt > 0):
            raise ValueError(f"dt={self.dt!r} is not allowed: must be a finite number > 0")
        if not (math.isfinite(self.growth) and self.growth >= 0):
            raise ValueError(f"growth={self.growth!r} is not allowed: must be a finite number >= 0 (0: uniform grid)")
        if self.dt_max is not None and not (self.dt_max >= self.dt):
            raise ValueError(f"dt_max={self.dt_max!r} is not allowed: must be >= dt={self.dt}")

    @property
    def graded(self) -> bool:
        """True when the grid is not uniform (``growth > 0`` and a cap above ``dt``)."""
        return self.growth > 0 and (self.dt_max is None or self.dt_max > self.dt)

    @property
    def largest_step(self) -> float:
        """The largest step the grid can take (``dt_max``; infinite for an uncapped graded grid)."""
        if not self.graded:
            return self.dt
        return math.inf if self.dt_max is None else float(self.dt_max)

    def times(self, t_max: float) -> np.ndarray:
        """Grid times ``t_0 = 0, ..., t_T`` (nearest grid point to ``t_max`` last)."""
        return graded_times(t_max, self.dt, self.growth if self.graded else 0.0, self.dt_max)

    def steps(self, n_steps: int) -> np.ndarray:
        """``dt_m`` for ``m = 0 .. n_steps - 1`` (the step taken after grid time ``t_m``)."""
        if not self.graded:
            return np.full(n_steps, self.dt)
        h = np.empty(n_steps)
        t = 0.0
        for m in range(n_steps):
            h[m] = _graded_step(t, self.dt, self.growth, self.dt_max)
            t += h[m]
        return h

    @abc.abstractmethod
    def sample(self, rng: np.random.Generator, n_samples: int, n_steps: int) -> np.ndarray:
        """Multipliers, shape ``(n_samples, n_steps)``; column ``m`` uses the step ``dt_m``."""

    def moments(self, n_steps: int) -> tuple[np.ndarray, np.ndarray]:
        """``(E[S_m], E[S_m^2])`` for ``m = 0 .. n_steps - 1`` (stationary laws)."""
        h = self.steps(n_steps)
        return h.copy(), self.second_moment_at(h)

    def second_moment_at(self, dt):
        """``E[S^2]`` at step ``dt`` (array or float)."""
        raise NotImplementedError

    @property
    def deterministic(self) -> bool:
        """True when ``S`` is the same non-random number at every step (GF / GD)."""
        return False

    @property
    def sparse(self) -> bool:
        """True when most multipliers are zero (Bernoulli SGD, reshuffling): solver uses jump times."""
        return False

    @property
    def independent_steps(self) -> bool:
        """True when ``S_m`` are i.i.d. over m (then ``mean``/``second_moment`` describe the law)."""
        return True

    @property
    def mean(self) -> float:
        """``E[S_m]`` at the base step: ``dt`` for every law here (each matches gradient flow on average)."""
        return self.dt

    @property
    def second_moment(self) -> float:
        """``E[S_m^2]`` at the base step ``dt``."""
        return float(self.second_moment_at(self.dt))


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


@dataclass(frozen=True)
class SGD(Law):
    """Critical-scale SGD: ``S = gamma * Bernoulli(dt / gamma)`` (Poisson jumps of size gamma at rate 1/gamma)."""

    dt: float
    gamma: float
    name: str = field(default="sgd", kw_only=True)

    def __post_init__(self):
        super().__post_init__()
        if not (0 < self.dt <= self.gamma):
            raise ValueError(f"dt={self.dt} must satisfy 0 < dt <= gamma={self.gamma} (Bernoulli p = dt/gamma <= 1)")
        if self.largest_step > self.gamma:
            raise ValueError(f"dt_max={self.dt_max} is not allowed: a graded SGD grid needs dt_max <= gamma={self.gamma} "
                             f"(Bernoulli p = dt_m/gamma <= 1; the Poisson limit needs dt_m << gamma)")

    @property
    def p(self) -> float:
        return self.dt / self.gamma

    def sample(self, rng, n_samples, n_steps):
        return self.gamma * (rng.random((n_samples, n_steps)) < self.steps(n_steps) / self.gamma)

    @property
    def sparse(self):
        return self.largest_step / self.gamma < 0.5

    def second_moment_at(self, dt):
        return self.gamma * np.asarray(dt)


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


@dataclass(frozen=True)
class Reshuffle(Law):
    """Random reshuffling: ``S = gamma`` at one uniform step of every epoch window of ``gamma/dt`` steps.

    ``gamma / dt`` must be an integer (the number of grid steps per epoch).
    """

    dt: float
    gamma: float
    name: str = field(default="reshuffle", kw_only=True)

    def __post_init__(self):
        super().__post_init__()
        if self.graded:
            raise ValueError(f"growth={self.growth} is not allowed for reshuffling: epochs need a uniform grid (growth = 0)")
        q = self.gamma / self.dt
        if abs(q - round(q)) > 1e-9 or round(q) < 1:
            raise ValueError(f"gamma/dt={q:g} must be a positive integer for reshuffling (steps per epoch)")

    @property
    def steps_per_epoch(self) -> int:
        return int(round(self.gamma / self.dt))

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

    def __post_init__(self):
        super().__post_init__()
        if not (0 < self.b <= 1):
            raise ValueError(f"b={self.b} must be in (0, 1]")
        if self.largest_step * max(self.b, 1 - self.b) / self.tau > 1:
            raise ValueError(f"tau={self.tau} too small for dt={self.dt} (dt_max={self.dt_max}): switching "
                             f"probability exceeds 1")

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


LAWS = ("gf", "gd", "sgd", "sme", "reshuffle", "persistent")


def make_law(algorithm: str, dt: float, gamma: float = 1.0, b: float = 0.5, tau: float = 1.0,
             growth: float = 0.0, dt_max: float | None = None) -> Law:
    """Law for a named algorithm (``gf``/``gd`` -> ``S = dt``); ``growth``/``dt_max``: graded grid."""
    g = dict(growth=growth, dt_max=dt_max)
    if algorithm in ("gf", "gd"):
        return GD(dt, **g)
    if algorithm == "sgd":
        return SGD(dt, gamma, **g)
    if algorithm == "sme":
        return SME(dt, gamma, **g)
    if algorithm == "reshuffle":
        return Reshuffle(dt, gamma, **g)
    if algorithm == "persistent":
        return Persistent(dt, b, tau, **g)
    raise ValueError(f"algorithm={algorithm!r} is not one of {LAWS}")
