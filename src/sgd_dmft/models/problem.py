"""The whole problem: model, aspect ratio, ridge penalty, initialisation (docs/theory.md section 1)."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, replace

import numpy as np
from numpy.typing import NDArray

from .. import defaults as _defaults
from ..arguments import number
from ..errors import ConfigError
from .base import Model
from .probe import CHECK_POINTS, check_model

Array = NDArray[np.float64]

__all__ = ["Problem", "check_model", "CHECK_POINTS", "Q0_MAX"]

Q0_MAX = 1e8  # largest trace of the initial overlaps Q_0 (100x below the smallest divergence threshold)


def _direction(value, k: int, ks: int) -> tuple[tuple[float, ...], ...]:
    """A k x k* matrix as a tuple of k rows (ConfigError naming ``init_overlap`` otherwise)."""
    try:
        return _matrix(value, k, ks, "problem.init_overlap")
    except ConfigError:
        raise ConfigError(f"init_overlap = {value!r}: must be a finite number or a k x k* = {k} x {ks} matrix "
                          f"(a list of {k} rows of {ks} numbers)", key="problem.init_overlap") from None


def _matrix(value, rows: int, cols: int, key: str) -> tuple[tuple[float, ...], ...]:
    """A finite rows x cols matrix as a tuple of rows (ConfigError naming ``key`` otherwise)."""
    try:
        A = np.array(value, dtype=np.float64)
    except (TypeError, ValueError):
        A = None
    if A is None or A.shape != (rows, cols) or not np.all(np.isfinite(A)):
        raise ConfigError(f"{key.split('.')[-1]} = {value!r}: must be a finite {rows} x {cols} matrix (a list of "
                          f"{rows} rows of {cols} numbers)", key=key)
    return tuple(tuple(float(v) for v in row) for row in A)


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

    Any initial overlaps: ``init_q`` (the k x k matrix ``Q_0 = theta_0^T theta_0 / d``) with ``init_m`` (the
    k x k* matrix ``M_0 = theta_0^T theta* / d``; default zero), in place of ``init_scale`` / ``init_overlap``
    (not mixed with them). ``theta_0 = theta* M_0^T + Z A^T`` with ``A A^T = Q_0 - M_0 M_0^T``, which must be
    positive semidefinite (rank-deficient allowed: units that start equal, or on the teacher's span). They
    are stored as ``init_overlap`` / ``init_direction`` (``B = M_0``) and ``init_noise`` (``A A^T``; None and
    ``init_scale = c`` when it is ``c^2 I``); ``init_q`` and ``init_m`` then read None.
    """

    model: Model
    delta: float
    ridge: float = 0.0
    init_scale: float = _defaults.INIT_SCALE
    init_overlap: float = 0.0
    init_direction: tuple[tuple[float, ...], ...] | None = None
    init_noise: tuple[tuple[float, ...], ...] | None = None
    init_q: tuple[tuple[float, ...], ...] | None = None
    init_m: tuple[tuple[float, ...], ...] | None = None

    def __post_init__(self):
        if not isinstance(self.model, Model):
            raise ConfigError(f"Problem.model={self.model!r:.80}: must be a Model (make_model('logistic'), ...)",
                              key="model")
        for key, positive in (("delta", True), ("ridge", False), ("init_scale", False)):  # numpy scalars too
            object.__setattr__(self, key, number(f"Problem.{key}", getattr(self, key), 0.0, lo_open=positive,
                                                   key=f"problem.{key}"))
        if self.init_q is not None or self.init_m is not None:
            self._from_overlaps()
        self._normalise_overlap()
        self._check_initial_overlaps()
        check_model(self.model)

    def _from_overlaps(self) -> None:
        """``(init_q, init_m)`` -> ``(init_overlap = M_0, init_noise or init_scale)`` (ConfigError naming the key)."""
        k, ks = self.model.k, self.model.kstar
        if self.init_q is None:
            raise ConfigError(f"init_m = {self.init_m!r} is not allowed without init_q: give Q_0 = init_q with "
                              f"M_0 = init_m (or init_overlap with init_scale)", key="problem.init_m")
        if self.init_overlap != 0.0 or self.init_direction is not None or self.init_noise is not None \
                or self.init_scale not in (0.5, 0.0):
            raise ConfigError(f"init_q is not allowed with init_scale = {self.init_scale!r} / init_overlap = "
                              f"{self.init_overlap!r}: give the initial overlaps either as init_q (with init_m) or as "
                              f"init_scale (with init_overlap)", key="problem.init_q")
        Q = np.array(_matrix(self.init_q, k, k, "problem.init_q"))
        M = np.array(_matrix(self.init_m, k, ks, "problem.init_m")) if self.init_m is not None else np.zeros((k, ks))
        scale = max(1.0, float(np.max(np.abs(Q))))
        if np.max(np.abs(Q - Q.T)) > 1e-12 * scale:
            raise ConfigError(f"init_q = {self.init_q!r}: must be a symmetric k x k = {k} x {k} matrix",
                              key="problem.init_q")
        N = 0.5 * (Q + Q.T) - M @ M.T
        lam = np.linalg.eigvalsh(N)
        if lam.min() < -1e-10 * scale:
            raise ConfigError(f"init_q = {self.init_q!r} with init_m = {self.init_m!r}: Q_0 - M_0 M_0^T must be "
                              f"positive semidefinite (smallest eigenvalue {lam.min():.3g}; |M_0| too large for "
                              f"Q_0, by Cauchy-Schwarz)", key="problem.init_q")
        c2 = float(N[0, 0])
        if np.allclose(N, c2 * np.eye(k), rtol=0.0, atol=1e-14 * scale):
            noise, c = None, math.sqrt(max(c2, 0.0))
        else:
            noise, c = tuple(tuple(float(v) for v in row) for row in N), 0.0
        for name, val in (("init_overlap", [list(r) for r in M]), ("init_scale", c), ("init_noise", noise),
                          ("init_q", None), ("init_m", None)):
            object.__setattr__(self, name, val)

    def noise_cov(self) -> Array:
        """``A A^T`` (k, k): the covariance of a row of the part of ``theta_0`` independent of ``theta*``."""
        if self.init_noise is not None:
            return np.array(self.init_noise, dtype=np.float64)
        return self.init_scale**2 * np.eye(self.model.k)

    def noise_factor(self) -> Array:
        """A (k, k) with ``A A^T = noise_cov()`` (the symmetric square root; rank-deficient allowed)."""
        lam, V = np.linalg.eigh(self.noise_cov())
        return (V * np.sqrt(np.clip(lam, 0.0, None))) @ V.T

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
        C0 = self.init_overlap**2 * P @ S @ P.T + self.noise_cov()
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
        if self.init_noise is not None:
            out["init_noise"] = json.dumps([list(row) for row in self.init_noise])
            C0, M0 = self.init_moments()
            out["init_q"] = json.dumps(C0.tolist())
            out["init_m"] = json.dumps(M0.tolist())
        return out
