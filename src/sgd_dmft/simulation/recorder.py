"""What is recorded at a grid time: the overlaps Q, M, the training loss, and the divergence checks.

``Q = theta^T theta / d`` (``k x k``), ``M = theta^T theta* / d`` (``k x k*``), ``train`` = mean over
the n training samples of ``loss(x_i^T theta, y_i)`` (penalty excluded; NaN when there is no training
set). A run whose ``trace Q`` is non-finite, above :data:`Q_MAX`, or grows geometrically over the
records raises :class:`~sgd_dmft.errors.SimulationDiverged`: the solver's rule
(:class:`sgd_dmft.dmft.divergence.GrowthDetector`, docs/theory.md section 5b), fed once per record.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ..stability import Q_MAX, GrowthDetector  # noqa: F401  (Q_MAX: its name here stays)
from ..errors import SimulationDiverged

if TYPE_CHECKING:
    from ..models import Model
    from .instance import Instance


def diverged(algorithm: str, gamma: float, t: float, what: str = "non-finite iterates") -> SimulationDiverged:
    """The error of a run of ``algorithm`` (its name) that blew up at gradient-flow time ``t``."""
    return SimulationDiverged(f"simulation diverged: algorithm={algorithm}, gamma={gamma:g}, at t={t:.6g} ({what})")


class Recorder:
    """Per-record ``Q`` ``(R, k, k)``, ``M`` ``(R, k, k*)`` and ``train`` ``(R,)`` of one seed (NaN until
    recorded); ``algorithm``, ``gamma`` name the run in divergence messages."""

    def __init__(self, model: Model, inst: Instance, n_rec: int, algorithm: str, gamma: float, train: bool):
        self.model, self.inst = model, inst
        k, ks = model.k, model.kstar
        self.Q = np.full((n_rec, k, k), np.nan)
        self.M = np.full((n_rec, k, ks), np.nan)
        self.train = np.full(n_rec, np.nan)
        self.algorithm, self.gamma, self.do_train = algorithm, gamma, train
        self.growth = GrowthDetector()

    def record(self, m: int, t: float, theta: np.ndarray, r: np.ndarray | None = None) -> None:
        """Record ``theta`` (``(d, k)``) as record ``m`` at time ``t``; ``r = X theta`` if already formed."""
        d = self.inst.d
        Q = theta.T @ theta / d
        if not np.all(np.isfinite(Q)):
            raise diverged(self.algorithm, self.gamma, t)
        why = self.growth.update(float(np.trace(Q)))
        if why is not None:
            raise diverged(self.algorithm, self.gamma, t, why)
        self.Q[m] = Q
        self.M[m] = theta.T @ self.inst.theta_star / d
        if self.do_train:
            if r is None:
                r = self.inst.X @ theta
            self.train[m] = float(np.mean(self.model.loss(r, self.inst.y)))
