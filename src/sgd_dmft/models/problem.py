"""The whole problem: model, aspect ratio, ridge penalty, initialisation (docs/theory.md section 1)."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, replace

import numpy as np
from numpy.typing import NDArray

from ..arguments import number
from ..errors import ConfigError
from .base import Model
from .probe import CHECK_POINTS, check_model

Array = NDArray[np.float64]

__all__ = ["Problem", "check_model", "CHECK_POINTS", "Q0_MAX"]

Q0_MAX = 1e8  # largest trace of the initial overlaps Q_0 (100x below the smallest divergence threshold)


def _direction(value, k: int, ks: int) -> tuple[tuple[float, ...], ...]:
    """A k x k* matrix as a tuple of k rows (ValueError naming ``init_overlap`` otherwise)."""
    try:
        B = np.array(value, dtype=np.float64)
    except (TypeError, ValueError):
        B = None
    if B is None or B.shape != (k, ks) or not np.all(np.isfinite(B)):
        raise ConfigError(f"init_overlap = {value!r}: must be a finite number or a k x k* = {k} x {ks} matrix "
                          f"(a list of {k} rows of {ks} numbers)", key="problem.init_overlap")
    return tuple(tuple(float(v) for v in row) for row in B)


@dataclass(frozen=True)
class Problem:
    """Model + data aspect ratio + penalty + initialisation.

    ``delta = n / d``; ``ridge`` is lambda in ``G(theta_j) = lambda |theta_j|^2 / 2``;
    ``theta_0 = init_overlap * theta* P^T + init_scale * Z`` (``Z`` with i.i.d. N(0, 1) entries,
    ``P`` = :meth:`init_projection`, k x k*).

    ``init_overlap``: a number (``P`` the selection matrix: student unit ``a`` starts along teacher
    direction ``a``, ``a <= min(k, k*)``) or a k x k* matrix ``B`` (any k, k*: ``theta_0 = theta* B^T +
    init_scale Z``, so ``M_0 = B S*``, ``Q_0 = B S* B^T + init_scale^2 I``). A matrix is stored as
    ``init_overlap = 1`` and ``init_direction = B`` (a multiple ``c`` of the selection matrix as the
    number ``c``). The model's callables are checked once at construction (:func:`check_model`).
    """

    model: Model
    delta: float
    ridge: float = 0.0
    init_scale: float = 0.5
    init_overlap: float = 0.0
    init_direction: tuple[tuple[float, ...], ...] | None = None

    def __post_init__(self):
        if not isinstance(self.model, Model):
            raise ConfigError(f"Problem.model={self.model!r:.80}: must be a Model (make_model('logistic'), ...)",
                              key="model")
        for key, positive in (("delta", True), ("ridge", False), ("init_scale", False)):  # numpy scalars too
            object.__setattr__(self, key, number(f"Problem.{key}", getattr(self, key), 0.0, lo_open=positive,
                                                   key=f"problem.{key}"))
        self._normalise_overlap()
        self._check_initial_overlaps()
        check_model(self.model)

    def _check_initial_overlaps(self) -> None:
        """``trace Q_0 <= Q0_MAX`` (``Q_0`` of :meth:`init_moments`): the runs call a trace Q past 1e10 (online
        ODEs) or 1e12 (march, simulators) diverged, so a larger start is an input error."""
        try:
            with np.errstate(over="ignore", invalid="ignore"):
                tr = float(np.trace(self.init_moments()[0]))
        except OverflowError:  # init_overlap ** 2 past the float range
            tr = math.inf
        if not tr <= Q0_MAX:
            key = "init_scale" if self.k * float(self.init_scale) ** 2 >= tr / 2 else "init_overlap"
            raise ConfigError(f"problem.{key} = {getattr(self, key)!r}: the initial overlaps trace Q_0 = "
                              f"{tr:.3g} must be <= {Q0_MAX:g} (a run is declared diverged past 1e10-1e12)",
                              key=f"problem.{key}")

    def _normalise_overlap(self) -> None:
        """A matrix ``init_overlap`` (or ``init_direction``) -> ``(init_overlap, init_direction)``."""
        k, ks, val = self.model.k, self.model.kstar, self.init_overlap
        if self.init_direction is None and isinstance(val, (int, float, np.floating, np.integer)) \
                and not isinstance(val, bool):
            v = number("Problem.init_overlap", val, key="problem.init_overlap")  # finite (a matrix: _direction)
            object.__setattr__(self, "init_overlap", v if isinstance(val, (np.floating, np.integer)) else val)
            return
        if self.init_direction is not None:
            scale, B = float(val), _direction(self.init_direction, k, ks)
        else:
            scale, B = 1.0, _direction(val, k, ks)
        Bm = scale * np.array(B)
        sel = self._selection()
        c = float(Bm[0, 0]) if Bm.size else 0.0
        if np.array_equal(Bm, c * sel):  # a multiple of the selection matrix: the number c
            object.__setattr__(self, "init_overlap", c)
            object.__setattr__(self, "init_direction", None)
        else:
            object.__setattr__(self, "init_overlap", 1.0)
            object.__setattr__(self, "init_direction", tuple(tuple(float(v) for v in row) for row in Bm))

    def _selection(self) -> Array:
        k, ks = self.model.k, self.model.kstar
        P = np.zeros((k, ks))
        m = min(k, ks)
        P[np.arange(m), np.arange(m)] = 1.0
        return P
    @property
    def k(self) -> int:
        return self.model.k

    @property
    def kstar(self) -> int:
        return self.model.kstar

    def init_projection(self) -> Array:
        """The (k, k*) matrix ``P`` of the initial overlap ``theta_0 = init_overlap theta* P^T + ...``:
        ``init_direction`` when given, else the selection matrix (ones on the first ``min(k, k*)``
        diagonal entries: student unit ``a`` starts aligned with teacher unit ``a``)."""
        if self.init_direction is not None:
            return np.array(self.init_direction, dtype=np.float64)
        return self._selection()

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
        out = dict(
            model=self.model.name,
            delta=float(self.delta),
            ridge=float(self.ridge),
            noise=float(self.model.noise),
            init_scale=float(self.init_scale),
            init_overlap=float(self.init_overlap),
        )
        if self.init_direction is not None:
            out["init_direction"] = json.dumps([list(row) for row in self.init_direction])
        return out
