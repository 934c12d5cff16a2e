"""The whole problem: model, aspect ratio, ridge penalty, initialisation (docs/theory.md section 1)."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
from numpy.typing import NDArray

from .base import Model

Array = NDArray[np.float64]

__all__ = ["Problem"]


@dataclass(frozen=True)
class Problem:
    """Model + data aspect ratio + penalty + initialisation.

    ``delta = n / d``; ``ridge`` is lambda in ``G(theta_j) = lambda |theta_j|^2 / 2``;
    ``theta_0 = init_overlap * theta* P^T + init_scale * Z`` (``Z`` with i.i.d. N(0, 1) entries,
    ``P`` = :meth:`init_projection`).
    """

    model: Model
    delta: float
    ridge: float = 0.0
    init_scale: float = 0.5
    init_overlap: float = 0.0

    def __post_init__(self):
        for key, val, ok, allowed in (
            ("delta", self.delta, self.delta > 0, "> 0"),
            ("ridge", self.ridge, self.ridge >= 0, ">= 0"),
            ("init_scale", self.init_scale, self.init_scale >= 0, ">= 0"),
        ):
            if not (isinstance(val, (int, float)) and math.isfinite(val) and ok):
                raise ValueError(f"Problem.{key}={val!r} is not allowed: must be a finite number {allowed}")

    @property
    def k(self) -> int:
        return self.model.k

    @property
    def kstar(self) -> int:
        return self.model.kstar

    def init_projection(self) -> Array:
        """The (k, k*) selection matrix ``P`` of the initial overlap: ones on the first ``min(k, k*)``
        diagonal entries (student unit ``a`` starts aligned with teacher unit ``a``)."""
        k, ks = self.k, self.kstar
        P = np.zeros((k, ks))
        m = min(k, ks)
        P[np.arange(m), np.arange(m)] = 1.0
        return P

    def init_moments(self, Sstar: Array | None = None) -> tuple[Array, Array]:
        """``(E[theta_0 theta_0^T] (k, k), E[theta_0 theta*^T] (k, k*))`` for one coordinate, given
        ``S* = E[theta* theta*^T]`` (k*, k*; default identity)."""
        k, ks = self.k, self.kstar
        S = np.eye(ks) if Sstar is None else Sstar
        P = self.init_projection() if self.init_overlap != 0.0 else np.zeros((k, ks))
        C0 = self.init_overlap**2 * P @ S @ P.T + self.init_scale**2 * np.eye(k)
        M0 = self.init_overlap * P @ S
        return C0, M0

    def with_(self, **kw) -> "Problem":
        """A copy with the given fields replaced."""
        return replace(self, **kw)

    def attrs(self) -> dict:
        """The problem as flat netCDF-safe attributes (model, delta, ridge, noise, initialisation)."""
        return dict(
            model=self.model.name,
            delta=float(self.delta),
            ridge=float(self.ridge),
            noise=float(self.model.noise),
            init_scale=float(self.init_scale),
            init_overlap=float(self.init_overlap),
        )
