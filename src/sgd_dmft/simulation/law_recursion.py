"""The per-sample multiplier recursion that the DMFT solves at d = infinity, simulated at finite d
(:class:`LawRecursion`; see :mod:`.algorithms` for the conventions), and its one-step reference
:func:`law_step`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from ..errors import ConfigError
from ..laws import SGD, Law
from .algorithm_base import Algorithm, is_real
from .recorder import Recorder, diverged

if TYPE_CHECKING:
    from ..models import Model

__all__ = ["LawRecursion", "law_step"]


@dataclass(frozen=True)
class LawRecursion(Algorithm):
    """The per-sample multiplier recursion of ``law`` (see the module docstring); records on ``law.grid``.

    ``gamma``: the step scale reported in attrs and messages (default ``law.gamma``, NaN for a law
    without one, e.g. GD); it does not enter the recursion.
    """

    law: Law
    gamma: float | None = field(default=None, kw_only=True)
    name: str = field(default="law", kw_only=True)

    def __post_init__(self):
        if not isinstance(self.law, Law):
            raise ConfigError(f"law={self.law!r} is not allowed: must be a sgd_dmft.laws.Law", key="law")
        if self.gamma is not None and not is_real(self.gamma):
            raise ConfigError(f"gamma={self.gamma!r} is not allowed: must be a number or None", key="gamma")

    @property
    def reported_gamma(self) -> float:
        """``gamma`` if given, else ``law.gamma`` (NaN when the law has none)."""
        return float(self.gamma if self.gamma is not None else getattr(self.law, "gamma", math.nan))

    def record_grid(self, grid):
        if grid is not None and grid != self.law.grid:
            raise ConfigError(f"grid={grid!r} is not allowed: LawRecursion records on its law's grid "
                              f"{self.law.grid!r} (pass grid=None)", key="grid")
        return self.law.grid

    def attrs(self, n):
        out = {"gamma": self.reported_gamma, "batch": 1,
               "batching": "bernoulli" if isinstance(self.law, SGD) else "none",
               "eta": float(self.law.dt), "law": self.law.name}
        for key in ("b", "tau"):
            if hasattr(self.law, key):
                out[f"law_{key}"] = float(getattr(self.law, key))
        if self.law.lr is not None:
            out.update(self.law.lr.attrs())
        return out

    def run(self, problem, inst, times, rng, pbar=None):
        model, X, y = problem.model, inst.X, inst.y
        T = len(times) - 1
        facs = self.law.decays(T + 1, problem.ridge)
        mult = _Multipliers(self.law, rng, inst.n, T)
        rec = Recorder(model, inst, T + 1, self.name, self.reported_gamma, train=True)
        theta = inst.theta0.copy()
        for m in range(T + 1):
            r = X @ theta
            rec.record(m, times[m], theta, r)
            if m == T:
                break
            F = np.asarray(model.grad(r, y), dtype=np.float64).reshape(r.shape)
            if not np.all(np.isfinite(F)):
                raise diverged(self.name, self.reported_gamma, times[m])
            upd = mult.update(m, X, F)
            fac = facs[m]
            if fac != 1.0:
                theta *= fac
            if upd is not None:
                theta -= upd
            if pbar is not None:
                pbar.update(1)
        return rec, theta


class _Multipliers:
    """The multipliers ``S`` ``(n, T)`` of one run, stored for the per-step update: one constant per
    step (deterministic laws), the visits sorted by step (``law.sparse``: mostly-zero ``S``), or ``S^T``."""

    def __init__(self, law: Law, rng: np.random.Generator, n: int, T: int):
        self.consts = self.St = self.ptr = self.rows = self.vals = None
        if law.deterministic:
            self.consts = law.scaled_sample(rng, 1, T + 1)[0]
            return
        S = np.asarray(law.scaled_sample(rng, n, T), dtype=np.float64)
        if law.sparse:  # the solver's rule too
            ms, self.rows = np.nonzero(S.T)  # sorted by step, then sample
            self.vals = S[self.rows, ms]
            self.ptr = np.searchsorted(ms, np.arange(T + 1))
        else:
            self.St = np.ascontiguousarray(S.T)

    def update(self, m: int, X: np.ndarray, F: np.ndarray) -> np.ndarray | None:
        """``sum_i x_i F_i^T S_{i,m}`` ``(d, k)``; None when no sample moves at step m."""
        if self.consts is not None:
            upd = X.T @ F
            upd *= self.consts[m]
            return upd
        if self.St is not None:
            return X.T @ (F * self.St[m][:, None])
        a, b = self.ptr[m], self.ptr[m + 1]
        if b == a:
            return None
        rr = self.rows[a:b]
        return X[rr].T @ (F[rr] * self.vals[a:b, None])


def law_step(model: Model, X: np.ndarray, y: np.ndarray, theta: np.ndarray, S_m: np.ndarray, dt: float,
             ridge: float = 0.0) -> np.ndarray:
    """One step of the law recursion, the reference :class:`LawRecursion` implements:
    ``theta - X^T (F(X theta, y) * S_m) - dt * ridge * theta`` (``theta`` ``(d, k)``, ``S_m`` ``(n,)``)."""
    r = X @ theta
    F = np.asarray(model.grad(r, y), dtype=np.float64).reshape(r.shape)
    return (1.0 - dt * ridge) * theta - X.T @ (F * np.asarray(S_m)[:, None])
