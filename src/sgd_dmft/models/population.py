"""Population (test) loss from the overlaps (docs/theory.md section 3, "Test loss").

The rule, per model (:func:`population_loss`):

1. the model's closed form (``model.pop_loss``; the two-layer rule below is the two-layer preset's);
2. linear square loss: ``(Q - 2M + S* + noise^2) / 2``;
3. other square-loss presets (additive noise): Gauss-Hermite over ``(r, r*)`` plus ``noise^2 / 2``;
4. anything else (custom models): tensor Gauss-Hermite over ``(r, r*[, eps])`` when that has at most
   ``GH_MAX_DIM`` = 4 dimensions (``eps`` only when the label depends on it: :func:`label_uses_eps`),
   scrambled-Sobol quasi-Monte Carlo beyond (error: :func:`population_loss_error`).

The two-layer rule (:func:`two_layer_loss`, the two-layer preset's ``pop_loss``) and its accuracy:
:mod:`.two_layer_quadrature` (re-exported here).
"""

from __future__ import annotations

import numpy as np

from .base import Array, Model
from .gaussian import population_expectation
from .two_layer_quadrature import (  # noqa: F401  (re-exported: their home was here)
    GH_MAX_DIM, QMC_POINTS, ZERO_ONE_POINTS, check_quadrature, quadrature_bytes, two_layer_loss, two_layer_zero_one,
)

__all__ = ["population_loss", "zero_one_error", "classifies", "two_layer_zero_one", "ZERO_ONE_POINTS",
           "population_loss_error", "two_layer_loss", "label_uses_eps", "uses_qmc", "GH_MAX_DIM",
           "quadrature_bytes", "check_quadrature"]


def label_uses_eps(model: Model) -> bool:
    """Whether ``model.label`` depends on ``eps``: ``model.eps_dim``, except that at ``noise == 0`` a
    label equal at ``eps`` and at 0 on 64 probe points counts as independent of it."""
    if not model.eps_dim:
        return False
    if model.noise != 0.0:
        return True
    rng = np.random.default_rng(7)
    rs = rng.standard_normal((64, model.kstar))
    try:
        y1 = np.asarray(model.label(rs, rng.standard_normal(64)), dtype=np.float64)
        y0 = np.asarray(model.label(rs, np.zeros(64)), dtype=np.float64)
    except Exception:  # user callables: let the full evaluation report the error
        return True
    return not np.array_equal(y1, y0)


def _batched(model: Model, Q, M, Sstar):
    """``(Q (T, k, k), M (T, k, k*), S* (k*, k*), squeeze)`` from one time or a batch of times."""
    Q = np.asarray(Q, dtype=np.float64)
    M = np.asarray(M, dtype=np.float64)
    squeeze = Q.ndim == 2
    if squeeze:
        Q, M = Q[None], M[None]
    S = np.eye(model.kstar) if Sstar is None else np.asarray(Sstar, dtype=np.float64)
    return Q, M, S, squeeze


def classifies(model: Model) -> bool:
    """Whether ``model`` is a classifier with a test 0-1 error rule (:func:`zero_one_error`): the logistic
    preset (``y = sign(r* + noise eps)``, prediction ``sign(r)``) and the two-layer model with the logistic
    loss (``y = sign(g(r*) + noise eps)``, prediction ``sign f(r)``)."""
    return model.zero_one_error is not None


def zero_one_error(model: Model, Q: Array, M: Array, Sstar: Array | None = None) -> Array | None:
    """Test 0-1 error ``P(sign f(r) != y)`` on a fresh Gaussian ``x`` (a probability in [0, 1]), labels
    drawn as the model draws them (noise included), as a function of the overlaps; None for a model that
    does not classify. Shapes as :func:`population_loss`. The theory (from the DMFT ``M``, ``Q``) and the
    simulations (from their empirical ``M``, ``Q`` and teacher ``S*``) use this one function."""
    if not classifies(model):
        return None
    Q, M, S, squeeze = _batched(model, Q, M, Sstar)
    out = np.asarray(model.zero_one_error(Q, M, S), dtype=np.float64)
    return out[0] if squeeze else out


def population_loss(model: Model, Q: Array, M: Array, Sstar: Array | None = None) -> Array:
    """Population (test) loss ``E[l(r, y)]`` on fresh data, as a function of the overlaps.

    ``Q`` (T, k, k) or (k, k); ``M`` (T, k, k*) or (k, k*); ``Sstar`` (k*, k*) (default identity).
    Returns (T,) or a scalar. The rule of the module docstring.
    """
    Q, M, S, squeeze = _batched(model, Q, M, Sstar)
    if model.pop_loss is not None:
        out = model.pop_loss(Q, M, S)
    elif model.linear_square:
        out = 0.5 * (Q[:, 0, 0] - 2 * M[:, 0, 0] + S[0, 0] + model.noise**2)
    elif model.additive_noise:
        f, g = model.predictor, model.target
        out = population_expectation(model, Q, M, S, lambda r, rs, e: 0.5 * (f(r) - g(rs)) ** 2, noise_dim=False)
        out = out + 0.5 * model.noise**2
    else:
        out = _generic_loss(model, Q, M, S)
    return out[0] if squeeze else out


def _generic_loss(model: Model, Q: Array, M: Array, S: Array, seed: int = 12345) -> Array:
    """``E[loss(r, label(r*, eps))]``: tensor Gauss-Hermite up to ``GH_MAX_DIM`` dimensions, else QMC."""
    noise_dim = label_uses_eps(model)
    D = model.k + model.kstar + (1 if noise_dim else 0)
    fn = lambda r, rs, e: model.loss(r, model.label(rs, e))  # noqa: E731
    if D <= GH_MAX_DIM:
        n1 = {1: 120, 2: 64, 3: 36, 4: 18}[D]
        return population_expectation(model, Q, M, S, fn, noise_dim=noise_dim, method="gh", max_nodes=n1**D)
    return population_expectation(model, Q, M, S, fn, noise_dim=noise_dim, method="qmc", seed=seed)


def uses_qmc(model: Model) -> bool:
    """Whether :func:`population_loss` uses quasi-Monte Carlo for ``model`` (else a deterministic rule)."""
    if getattr(model, "name", None) == "two_layer" and hasattr(model, "loss_name"):
        return model.kstar > GH_MAX_DIM or (model.loss_rule.classifier and model.k > GH_MAX_DIM)
    if model.pop_loss is not None or model.linear_square or model.additive_noise:
        return False
    return model.k + model.kstar + (1 if label_uses_eps(model) else 0) > GH_MAX_DIM


def population_loss_error(model: Model, Q: Array, M: Array, Sstar: Array | None = None) -> Array:
    """An estimate of the quadrature error of :func:`population_loss` (same shapes as its result).

    Zero for closed forms and Gauss-Hermite rules (accurate as stated in the module docstring); where
    quasi-Monte Carlo is used (:func:`uses_qmc`), the standard deviation over 8 independent
    scramblings (that of one scrambling's result, as :func:`population_loss` uses one).
    """
    Q, M, S, squeeze = _batched(model, Q, M, Sstar)
    if not uses_qmc(model):
        out = np.zeros(Q.shape[0])
    else:
        rule = two_layer_loss if getattr(model, "name", None) == "two_layer" else (
            lambda mdl, q, m, s, seed: _generic_loss(mdl, q, m, s, seed=seed))
        out = np.stack([rule(model, Q, M, S, seed=12345 + i) for i in range(8)]).std(axis=0, ddof=1)
    return out[0] if squeeze else out
