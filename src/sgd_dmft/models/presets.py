"""Preset models: small frozen dataclasses whose label, loss, derivatives and closed forms are methods.

=================  ========================  ==========================  ======================
preset             label ``y``               loss                        kernel_spec
=================  ========================  ==========================  ======================
linear             ``r* + noise eps``        ``(r - y)^2 / 2``           (0, 0)
logistic           ``sign(r* + noise eps)``  ``log(1 + exp(-y r))``      (1, 0)
phase_retrieval    ``r*^2 + noise eps``      ``(r^2 - y)^2 / 2``         (2, 0)
committee          ``mean_b s(r*_b) + ...``  ``(mean_a s(r_a) - y)^2/2``  (3, activation code)
two_layer          ``g(r*) + noise eps``     ``(f(r) - y)^2 / 2``         (4, activation code)
                   ``sign(g(r*) + ...)``     ``log(1 + exp(-y f(r)))``    (5, activation code)
=================  ========================  ==========================  ======================

The two-layer student is ``f(r) = sum_a a_a s(r_a + b_a)`` with any teacher link ``g``
(:mod:`.teachers`), in :mod:`.two_layer_model` (re-exported here); the committee is its special case ``a = 1/k``,
``b = 0``, ``g = mean_b s(z_b)``. The bases :class:`~.base.Preset` and :class:`~.base.PredictorModel`
(a predictor with a loss rule of :mod:`.losses`) are in :mod:`.base`.

All methods are vectorised over leading axes (shapes as in :class:`.base.Model`).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import numpy as np

from .. import defaults as _defaults
from ..errors import did_you_mean
from .activations import ERF, QUADRATIC, Activation, get_activation
from .base import Array, Model, Preset, PredictorModel, predictor_curvature
from .closed_forms import LogisticSplitRule, committee_loss, linear_expectations, sigmoid, sign_disagreement, softplus
from .losses import LOGISTIC, SQUARE, chi2_escape
from .two_layer_model import LOSSES, TwoLayer, two_layer

__all__ = ["MODELS", "LOSSES", "Linear", "Logistic", "PhaseRetrieval", "Committee", "TwoLayer", "linear",
           "logistic", "phase_retrieval", "committee", "two_layer", "make_model"]

MODELS = ("linear", "logistic", "phase_retrieval", "committee", "two_layer")


@dataclass(frozen=True, kw_only=True)
class Linear(PredictorModel):
    """``y = r* + noise * eps``, ``f(r) = r``, loss ``(r - y)^2 / 2`` (k = k* = 1)."""

    name: str = "linear"
    linear_square: bool = True

    def predictor(self, r: Array) -> Array:
        return r[..., 0]

    def target(self, rstar: Array) -> Array:
        return rstar[..., 0]

    def _fp(self, r: Array) -> Array:
        return np.ones_like(r)

    def _fpp(self, r: Array) -> Array:
        return np.zeros_like(r)

    @property
    def kernel_spec(self) -> tuple[int, int]:
        return (0, 0)

    def online_expectations(self):
        return partial(linear_expectations, noise=self.noise) if self.linear_square else None


@dataclass(frozen=True, kw_only=True)
class PhaseRetrieval(PredictorModel):
    """``y = (r*)^2 + noise * eps``, ``f(r) = r^2``, loss ``(r^2 - y)^2 / 2`` (k = k* = 1)."""

    name: str = "phase_retrieval"

    def predictor(self, r: Array) -> Array:
        return r[..., 0] ** 2

    def target(self, rstar: Array) -> Array:
        return rstar[..., 0] ** 2

    def _fp(self, r: Array) -> Array:
        return 2.0 * r

    def _fpp(self, r: Array) -> Array:
        return 2.0 * np.ones_like(r)

    def pop_loss(self, Q: Array, M: Array, S: Array) -> Array:
        """Closed form (Isserlis), as a committee of one quadratic unit."""
        return committee_loss(QUADRATIC.pair_moment, Q, M, S, self.noise)

    def escape_probability(self, jump: float) -> float:
        """A visit maps ``r -> r (1 - 2 gamma (r^2 - y))``, whose orbit stays bounded only while ``y <=
        1/gamma`` (docs/theory.md section 3c): ``P(r*^2 + noise eps > 1/gamma)``."""
        return chi2_escape(self.noise, 1.0 / jump) if self.k == 1 else 0.0

    escape_map = "phase retrieval"

    @property
    def kernel_spec(self) -> tuple[int, int]:
        return (2, 0)


@dataclass(frozen=True, kw_only=True)
class Committee(PredictorModel):
    """Soft committee: ``y = mean_b s(r*_b) + noise * eps``, ``f(r) = mean_a s(r_a)``, square loss.

    ``smooth`` defaults to the activation's smoothness. The population loss is in closed form when
    the activation has a closed-form pair moment (erf, relu, quadratic), quadrature else.
    """

    name: str = "committee"
    k: int = 2
    kstar: int = 2
    activation: Activation = ERF
    smooth: bool | None = None

    def __post_init__(self):
        object.__setattr__(self, "activation", get_activation(self.activation))
        if self.smooth is None:
            object.__setattr__(self, "smooth", self.activation.smooth)

    def predictor(self, r: Array) -> Array:
        return self.activation.f(r).mean(axis=-1)

    def target(self, rstar: Array) -> Array:
        return self.activation.f(rstar).mean(axis=-1)

    def _fp(self, r: Array) -> Array:
        return self.activation.df(r) / self.k

    def _fpp(self, r: Array) -> Array:
        return self.activation.d2f(r) / self.k

    @property
    def meta(self) -> dict:
        return {"activation": self.activation.name}

    @property
    def curvature_bound(self) -> float | None:
        """The square loss of ``mean_a s(r_a)`` (:func:`.base.predictor_curvature`): bounded for a linear ``s`` only."""
        return predictor_curvature(SQUARE, (1.0 / self.k,) * self.k, self.activation)

    @property
    def pop_loss(self):
        """``(Q, M, S) -> (T,)`` from the activation's pair moment, or None (no closed form)."""
        return None if self.activation.pair_moment is None else self._closed_pop_loss

    def _closed_pop_loss(self, Q: Array, M: Array, S: Array) -> Array:
        return committee_loss(self.activation.pair_moment, Q, M, S, self.noise)

    @property
    def kernel_spec(self) -> tuple[int, int]:
        return (3, self.activation.code)

    def online_expectations(self):
        ce = self.activation.committee_expectations
        return partial(ce, noise=self.noise) if ce is not None and self.additive_noise else None


@dataclass(frozen=True, kw_only=True)
class Logistic(Preset):
    """``y = sign(r* + noise * eps)`` in {-1, +1}, loss ``log(1 + exp(-y r))`` (k = k* = 1)."""

    name: str = "logistic"

    def label(self, rstar: Array, eps: Array) -> Array:
        z = rstar[..., 0] + self.noise * eps
        return np.where(z >= 0.0, 1.0, -1.0)

    def loss(self, r: Array, y: Array) -> Array:
        return softplus(-y * r[..., 0])

    def grad(self, r: Array, y: Array) -> Array:
        return (-y * sigmoid(-y * r[..., 0]))[..., None]

    def hess(self, r: Array, y: Array) -> Array:
        sg = sigmoid(y * r[..., 0])
        return (sg * (1.0 - sg))[..., None, None]

    @property
    def curvature_bound(self) -> float:
        """``sigmoid (1 - sigmoid) <= 1/4`` (at ``r = 0``: attained near a small initialisation)."""
        return LOGISTIC.max_curvature

    def pop_loss(self, Q: Array, M: Array, S: Array) -> Array:
        """Split quadrature (2 x 100 Legendre x 48 Hermite, see :class:`.closed_forms.LogisticSplitRule`)."""
        return LogisticSplitRule.for_loss(self.noise).loss(Q, M, S)

    def zero_one_error(self, Q: Array, M: Array, S: Array) -> Array:
        """Test 0-1 error ``P(sign r != y)`` (probability) of the classifier ``sign(r)`` on labels
        ``y = sign(r* + noise eps)``: ``(r, r* + noise eps)`` is Gaussian with variances ``Q``, ``S* + noise^2``
        and covariance ``M``, so it is ``arccos(M / sqrt(Q (S* + noise^2))) / pi`` (exact at every d for
        Gaussian inputs, given the overlaps)."""
        return sign_disagreement(Q[:, 0, 0], M[:, 0, 0], S[0, 0] + self.noise**2)

    @property
    def kernel_spec(self) -> tuple[int, int]:
        return (1, 0)

    def online_expectations(self):
        return LogisticSplitRule.for_online(self.noise).grad_moments


def linear(noise: float = 0.0) -> Linear:
    """``y = r* + noise * eps``, ``f(r) = r``, loss ``(r - y)^2 / 2`` (k = k* = 1)."""
    return Linear(noise=noise)


def phase_retrieval(noise: float = 0.0) -> PhaseRetrieval:
    """``y = (r*)^2 + noise * eps``, ``f(r) = r^2``, loss ``(r^2 - y)^2 / 2`` (k = k* = 1)."""
    return PhaseRetrieval(noise=noise)


def logistic(noise: float = 0.0) -> Logistic:
    """``y = sign(r* + noise * eps)`` in {-1, +1}, loss ``log(1 + exp(-y r))`` (k = k* = 1)."""
    return Logistic(noise=noise)


def committee(k: int = 2, kstar: int = 2, activation: str | Activation = _defaults.ACTIVATION,
              noise: float = _defaults.NOISE) -> Committee:
    """Soft committee of ``k`` student and ``kstar`` teacher units (see :class:`Committee`)."""
    return Committee(k=k, kstar=kstar, activation=get_activation(activation), noise=noise)


def make_model(name: str, *, k: int = 1, kstar: int = 1, activation: str = _defaults.ACTIVATION,
               noise: float = _defaults.NOISE,
               **two_layer_args) -> Model:
    """Build a preset model by name (``linear | logistic | phase_retrieval | committee | two_layer``);
    ``two_layer_args`` (``teacher``, ``second_layer``, ``bias``, ``loss``) go to :func:`two_layer`."""
    if name == "two_layer":
        return two_layer(k, kstar, activation, noise=noise, **two_layer_args)
    if two_layer_args:
        raise ValueError(f"model={name!r} takes no {sorted(two_layer_args)} (only 'two_layer' does)")
    if name == "linear":
        return linear(noise)
    if name == "logistic":
        return logistic(noise)
    if name == "phase_retrieval":
        return phase_retrieval(noise)
    if name == "committee":
        return committee(k, kstar, activation, noise)
    raise ValueError(f"model={name!r} is not one of {MODELS}{did_you_mean(name, MODELS)}")

