"""Preset models: small frozen dataclasses whose label, loss, derivatives and closed forms are methods.

=================  ========================  ==========================  ======================
preset             label ``y``               loss                        kernel_spec
=================  ========================  ==========================  ======================
linear             ``r* + noise eps``        ``(r - y)^2 / 2``           (0, 0)
logistic           ``sign(r* + noise eps)``  ``log(1 + exp(-y r))``      (1, 0)
phase_retrieval    ``r*^2 + noise eps``      ``(r^2 - y)^2 / 2``         (2, 0)
committee          ``mean_b s(r*_b) + ...``  ``(mean_a s(r_a) - y)^2/2``  (3, activation code)
=================  ========================  ==========================  ======================

All methods are vectorised over leading axes (shapes as in :class:`.base.Model`).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import numpy as np

from .activations import ERF, QUADRATIC, Activation, get_activation
from .base import Array, Model
from .closed_forms import LogisticSplitRule, committee_loss, linear_expectations, sigmoid, softplus

__all__ = ["MODELS", "Linear", "Logistic", "PhaseRetrieval", "Committee", "linear", "logistic",
           "phase_retrieval", "committee", "make_model"]

MODELS = ("linear", "logistic", "phase_retrieval", "committee")


@dataclass(frozen=True, kw_only=True)
class _Preset(Model):
    """A preset: the label noise is ``noise * eps``, so ``eps`` matters only when ``noise != 0``."""

    @property
    def eps_dim(self) -> bool:
        return not self.additive_noise and self.noise != 0.0


@dataclass(frozen=True, kw_only=True)
class _SquareLoss(_Preset):
    """Square loss ``(f(r) - y)^2 / 2``, ``y = g(r*) + noise eps``, ``f(r) = sum_a f_a(r_a)`` given
    componentwise by ``predictor``, ``_fp`` (``d f / d r_a``), ``_fpp`` (``d^2 f / d r_a^2``)."""

    additive_noise: bool = True

    def label(self, rstar: Array, eps: Array) -> Array:
        return self.target(rstar) + self.noise * eps

    def loss(self, r: Array, y: Array) -> Array:
        return 0.5 * (self.predictor(r) - y) ** 2

    def grad(self, r: Array, y: Array) -> Array:
        return (self.predictor(r) - y)[..., None] * self._fp(r)

    def hess(self, r: Array, y: Array) -> Array:
        d1 = self._fp(r)
        h = d1[..., :, None] * d1[..., None, :]
        diag = (self.predictor(r) - y)[..., None] * self._fpp(r)
        idx = np.arange(r.shape[-1])
        h[..., idx, idx] += diag
        return h


@dataclass(frozen=True, kw_only=True)
class Linear(_SquareLoss):
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
class PhaseRetrieval(_SquareLoss):
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

    @property
    def kernel_spec(self) -> tuple[int, int]:
        return (2, 0)


@dataclass(frozen=True, kw_only=True)
class Committee(_SquareLoss):
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
class Logistic(_Preset):
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

    def pop_loss(self, Q: Array, M: Array, S: Array) -> Array:
        """Split quadrature (2 x 100 Legendre x 48 Hermite, see :class:`.closed_forms.LogisticSplitRule`)."""
        return LogisticSplitRule.for_loss(self.noise).loss(Q, M, S)

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


def committee(k: int = 2, kstar: int = 2, activation: str | Activation = "erf", noise: float = 0.0) -> Committee:
    """Soft committee of ``k`` student and ``kstar`` teacher units (see :class:`Committee`)."""
    return Committee(k=k, kstar=kstar, activation=get_activation(activation), noise=noise)


def make_model(name: str, *, k: int = 1, kstar: int = 1, activation: str = "erf", noise: float = 0.0) -> Model:
    """Build a preset model by name (``linear | logistic | phase_retrieval | committee``)."""
    if name == "linear":
        return linear(noise)
    if name == "logistic":
        return logistic(noise)
    if name == "phase_retrieval":
        return phase_retrieval(noise)
    if name == "committee":
        return committee(k, kstar, activation, noise)
    raise ValueError(f"model={name!r} is not one of {MODELS}")

