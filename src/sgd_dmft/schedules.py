"""Schedules of the step: the learning-rate schedule a user gives (:class:`LRSchedule`) and a law's
grid, steps and moments up to ``t_max`` computed once (:class:`Schedule`), with the weight decay of each
step (:func:`decays`, one formula for the solver, the simulators and the exact moments).

Re-exported by :mod:`sgd_dmft.laws` (the names' earlier home).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from .errors import ConfigError

__all__ = ["LRSchedule", "Schedule", "decays"]


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
        return decays(self.steps, self.factor, ridge)

    @property
    def T(self) -> int:
        """Number of grid steps."""
        return len(self.times) - 1

    def prefix(self, T: int) -> "Schedule":
        """The schedule of the first ``T`` steps (the same grid, ending at ``t_T``)."""
        cut = slice(0, T + 1)
        return Schedule(self.times[cut], self.steps[cut], self.mean[cut], self.second[cut],
                        None if self.factor is None else self.factor[cut])


def decays(steps: np.ndarray, factor: np.ndarray | None, ridge: float) -> np.ndarray:
    """``1 - dt_m ridge`` times the learning-rate factor where there is one (one formula for the solver, the
    law recursion of the simulator and the finite-d exact moments)."""
    return 1.0 - steps * ridge if factor is None else 1.0 - steps * ridge * factor
