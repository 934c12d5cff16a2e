"""Population (test) loss from the overlaps (docs/theory.md section 3, "Test loss")."""

from __future__ import annotations

import numpy as np

from .base import Array, Model
from .gaussian import population_expectation

__all__ = ["population_loss"]


def population_loss(model: Model, Q: Array, M: Array, Sstar: Array | None = None) -> Array:
    """Population (test) loss ``E[l(r, y)]`` on fresh data, as a function of the overlaps.

    ``Q`` (T, k, k) or (k, k); ``M`` (T, k, k*) or (k, k*); ``Sstar`` (k*, k*) (default identity).
    Returns (T,) or a scalar. In order: the model's closed form (``model.pop_loss``); for linear
    square loss ``(Q - 2M + S* + noise^2) / 2``; for additive noise Gauss-Hermite over ``(r, r*)``
    plus ``noise^2 / 2``; else quasi-Monte Carlo over ``(r, r*, eps)``.
    """
    Q = np.asarray(Q, dtype=np.float64)
    M = np.asarray(M, dtype=np.float64)
    squeeze = Q.ndim == 2
    if squeeze:
        Q, M = Q[None], M[None]
    S = np.eye(model.kstar) if Sstar is None else np.asarray(Sstar, dtype=np.float64)
    if model.pop_loss is not None:
        out = model.pop_loss(Q, M, S)
    elif model.linear_square:
        out = 0.5 * (Q[:, 0, 0] - 2 * M[:, 0, 0] + S[0, 0] + model.noise**2)
    elif model.additive_noise:
        f, g = model.predictor, model.target
        out = population_expectation(model, Q, M, S, lambda r, rs, e: 0.5 * (f(r) - g(rs)) ** 2, noise_dim=False)
        out = out + 0.5 * model.noise**2
    else:
        noise_dim = model.noise != 0.0
        out = population_expectation(
            model, Q, M, S, lambda r, rs, e: model.loss(r, model.label(rs, e)), noise_dim=noise_dim,
            method="qmc",
        )
    return out[0] if squeeze else out
