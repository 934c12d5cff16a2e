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

The :class:`Law` interface lives in :mod:`sgd_dmft.law_base`, the learning-rate schedule and the
computed :class:`Schedule` in :mod:`sgd_dmft.schedules`; both are re-exported here.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .errors import ConfigError, SgdDmftDeprecationWarning
from .grid import TimeGrid, graded_times  # noqa: F401  (re-exported, public API)
from .law_base import Law, pair_sums, step_pairs
from .schedules import LRSchedule, Schedule, decays  # noqa: F401  (re-exported: their home was here)


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
        return pair_sums(S_fine)  # h1 + h2: the merged step (nested grids, graded ones included)


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
        h1, h2, last = step_pairs(self, m2)
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
        return pair_sums(S_fine)


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
        h1, h2, last = step_pairs(self, m2)
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


def __getattr__(name: str):
    """``make_law`` and ``LAWS``: deprecated aliases of the algorithm registry (:mod:`sgd_dmft.algorithms`,
    their home: name -> law for every algorithm, the registered ones included)."""
    if name not in ("make_law", "LAWS"):
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import warnings

    from . import algorithms

    new = "sgd_dmft.algorithms.make_law" if name == "make_law" else "sgd_dmft.algorithms.names()"
    warnings.warn(f"sgd_dmft.laws.{name} is deprecated: use {new}", SgdDmftDeprecationWarning, stacklevel=2)
    if name == "make_law":
        return algorithms.make_law
    return tuple(n for n in algorithms.names() if algorithms.spec(n).law is not None)
