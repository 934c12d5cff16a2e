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
from dataclasses import dataclass

import numpy as np


class Law(abc.ABC):
    """Law of the per-sample multiplier sequence ``(S_0, S_1, ...)`` on a grid of step ``dt``."""

    name: str = "law"
    dt: float

    @abc.abstractmethod
    def sample(self, rng: np.random.Generator, n_samples: int, n_steps: int) -> np.ndarray:
        """Multipliers, shape ``(n_samples, n_steps)``."""

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
        """``E[S_m]`` (stationary): ``dt`` for every law here (each matches gradient flow on average)."""
        return self.dt

    @property
    @abc.abstractmethod
    def second_moment(self) -> float:
        """``E[S_m^2]`` (stationary)."""


@dataclass(frozen=True)
class GD(Law):
    """Full-batch gradient descent with step ``dt`` (gradient flow as ``dt -> 0``): ``S = dt``."""

    dt: float
    name: str = "gd"

    def sample(self, rng, n_samples, n_steps):
        return np.full((n_samples, n_steps), self.dt)

    @property
    def deterministic(self):
        return True

    @property
    def second_moment(self):
        return self.dt**2


@dataclass(frozen=True)
class SGD(Law):
    """Critical-scale SGD: ``S = gamma * Bernoulli(dt / gamma)`` (Poisson jumps of size gamma at rate 1/gamma)."""

    dt: float
    gamma: float
    name: str = "sgd"

    def __post_init__(self):
        if not (0 < self.dt <= self.gamma):
            raise ValueError(f"dt={self.dt} must satisfy 0 < dt <= gamma={self.gamma} (Bernoulli p = dt/gamma <= 1)")

    @property
    def p(self) -> float:
        return self.dt / self.gamma

    def sample(self, rng, n_samples, n_steps):
        return self.gamma * (rng.random((n_samples, n_steps)) < self.p)

    @property
    def sparse(self):
        return self.p < 0.5

    @property
    def second_moment(self):
        return self.gamma * self.dt


@dataclass(frozen=True)
class SME(Law):
    """Stochastic modified equation, Euler-Maruyama: ``S = dt + sqrt(gamma dt) N(0, 1)``."""

    dt: float
    gamma: float
    name: str = "sme"

    def sample(self, rng, n_samples, n_steps):
        return self.dt + math.sqrt(self.gamma * self.dt) * rng.standard_normal((n_samples, n_steps))

    @property
    def second_moment(self):
        return self.dt**2 + self.gamma * self.dt


@dataclass(frozen=True)
class Reshuffle(Law):
    """Random reshuffling: ``S = gamma`` at one uniform step of every epoch window of ``gamma/dt`` steps.

    ``gamma / dt`` must be an integer (the number of grid steps per epoch).
    """

    dt: float
    gamma: float
    name: str = "reshuffle"

    def __post_init__(self):
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

    @property
    def second_moment(self):
        return self.gamma * self.dt


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
    name: str = "persistent"

    def __post_init__(self):
        if not (0 < self.b <= 1):
            raise ValueError(f"b={self.b} must be in (0, 1]")
        if self.dt * max(self.b, 1 - self.b) / self.tau > 1:
            raise ValueError(f"tau={self.tau} too small for dt={self.dt}: switching probability exceeds 1")

    def sample(self, rng, n_samples, n_steps):
        s = rng.random(n_samples) < self.b
        out = np.empty((n_samples, n_steps))
        p_on = self.dt * self.b / self.tau
        p_off = self.dt * (1 - self.b) / self.tau
        for m in range(n_steps):
            out[:, m] = s
            u = rng.random(n_samples)
            s = np.where(s, u >= p_off, u < p_on)
        return out * (self.dt / self.b)

    @property
    def independent_steps(self):
        return False

    @property
    def second_moment(self):
        return self.dt**2 / self.b


LAWS = ("gf", "gd", "sgd", "sme", "reshuffle", "persistent")


def make_law(algorithm: str, dt: float, gamma: float = 1.0, b: float = 0.5, tau: float = 1.0) -> Law:
    """Law for a named algorithm (``gf``/``gd`` -> ``S = dt``)."""
    if algorithm in ("gf", "gd"):
        return GD(dt)
    if algorithm == "sgd":
        return SGD(dt, gamma)
    if algorithm == "sme":
        return SME(dt, gamma)
    if algorithm == "reshuffle":
        return Reshuffle(dt, gamma)
    if algorithm == "persistent":
        return Persistent(dt, b, tau)
    raise ValueError(f"algorithm={algorithm!r} is not one of {LAWS}")
