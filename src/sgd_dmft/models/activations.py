"""Activations of the soft committee: each bundles its function, derivatives and closed forms.

An :class:`Activation` holds ``f``, ``f'``, ``f''`` (vectorised numpy, any shape), its Gaussian
pair moment ``E[f(u) f(v)]`` for centred ``(u, v)`` with variances ``q1, q2`` and covariance ``c``
in closed form where one exists (None: the population loss falls back to quadrature), the erf
committee's online expectations where they exist, ``smooth`` (False when ``f'`` has a kink, so the
solver's responses need Gaussian integration by parts) and ``code``, the activation's number in the
simulator's numba gradient kernel.

============  =========================================  ==========================  ======  ====
name          f(x)                                       pair moment                 smooth  code
============  =========================================  ==========================  ======  ====
erf           erf(x / sqrt 2)                            Saad-Solla arcsin (``I2``)  yes     0
relu          max(x, 0)                                  arc-cosine kernel           no      1
tanh          tanh(x)                                    none (quadrature)           yes     2
quadratic     x^2                                        Isserlis                    yes     3
linear        x                                          c                           yes     4
============  =========================================  ==========================  ======  ====

``gauss_mean(mu, sigma)``: ``E[s(mu + sigma w)]`` for ``w ~ N(0, 1)`` in closed form (None for tanh):
the inner integral of the two-layer population loss (:mod:`.two_layer_quadrature`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
from numpy.typing import NDArray
from scipy.special import erf as _erf_fn

from ..errors import did_you_mean
from .closed_forms import (I2, arccos_pair_moment, committee_erf_expectations, erf_gauss_mean, isserlis_pair_moment,
                           linear_gauss_mean, linear_pair_moment, quadratic_gauss_mean, relu_gauss_mean)

Array = NDArray[np.float64]
Fn = Callable[[Array], Array]

__all__ = ["Activation", "ACTIVATIONS", "ERF", "RELU", "TANH", "QUADRATIC", "LINEAR", "get_activation", "pair_moment"]

_SQRT2 = math.sqrt(2.0)
_SQRT2_PI = math.sqrt(2.0 / math.pi)


@dataclass(frozen=True)
class Activation:
    """A nonlinearity and its closed forms (module-level callables: pickles by reference).

    ``f``, ``df``, ``d2f``: ``x -> s(x), s'(x), s''(x)``, elementwise. ``pair_moment(q1, q2, c)``:
    ``E[s(u) s(v)]`` (broadcast elementwise) or None. ``committee_expectations(Q (k, k), M (k, k*),
    noise)``: the soft committee's ``(E[F r*^T], E[F r^T], E[F F^T])`` at ``S* = I`` or None.
    ``gauss_mean(mu, sigma)``: ``E[s(mu + sigma w)]``, ``w ~ N(0, 1)`` (broadcast) or None.
    ``sup_slope``: ``sup |s'|``, or None where ``s'`` is unbounded. ``sup_curvature``: ``sup |s''|`` of a smooth
    ``s``, or None where ``s''`` is unbounded or has a Dirac mass (a kink).
    """

    name: str
    f: Fn
    df: Fn
    d2f: Fn
    code: int
    pair_moment: Callable[[Array, Array, Array], Array] | None = None
    committee_expectations: Callable | None = None
    smooth: bool = True
    gauss_mean: Callable[[Array, Array], Array] | None = None
    sup_slope: float | None = None  # sup |s'| (None: unbounded), the two-layer visit edge's constant
    sup_curvature: float | None = None  # sup |s''| (None: unbounded, or a kink), the Hessian bound's constant

    def __repr__(self) -> str:
        return f"Activation({self.name!r})"


def _erf(x):
    return _erf_fn(x / _SQRT2)


def _erf_d(x):
    return _SQRT2_PI * np.exp(-0.5 * x * x)


def _erf_dd(x):
    return -x * _SQRT2_PI * np.exp(-0.5 * x * x)


def _relu(x):
    return np.maximum(x, 0.0)


def _relu_d(x):
    return (x > 0).astype(np.float64)


def _zeros(x):
    return np.zeros_like(x, dtype=np.float64)


def _tanh_d(x):
    return 1.0 - np.tanh(x) ** 2


def _tanh_dd(x):
    return -2.0 * np.tanh(x) * (1.0 - np.tanh(x) ** 2)


def _identity(x):
    return np.asarray(x, dtype=np.float64)


def _ones(x):
    return np.ones_like(x, dtype=np.float64)


def _square(x):
    return x * x


def _square_d(x):
    return 2.0 * x


def _square_dd(x):
    return 2.0 * np.ones_like(x, dtype=np.float64)


ERF = Activation("erf", _erf, _erf_d, _erf_dd, code=0, pair_moment=I2,
                 committee_expectations=committee_erf_expectations, gauss_mean=erf_gauss_mean, sup_slope=_SQRT2_PI,
                 sup_curvature=_SQRT2_PI * math.exp(-0.5))  # |s''| = sqrt(2/pi) |x| exp(-x^2/2), largest at |x| = 1
RELU = Activation("relu", _relu, _relu_d, _zeros, code=1, pair_moment=arccos_pair_moment, smooth=False,
                  gauss_mean=relu_gauss_mean, sup_slope=1.0)
TANH = Activation("tanh", np.tanh, _tanh_d, _tanh_dd, code=2, sup_slope=1.0,
                  sup_curvature=4.0 / (3.0 * math.sqrt(3.0)))  # |2 tanh (1 - tanh^2)|, largest at tanh^2 = 1/3
QUADRATIC = Activation("quadratic", _square, _square_d, _square_dd, code=3, pair_moment=isserlis_pair_moment,
                       gauss_mean=quadratic_gauss_mean, sup_curvature=2.0)
LINEAR = Activation("linear", _identity, _ones, _zeros, code=4, pair_moment=linear_pair_moment,
                    gauss_mean=linear_gauss_mean, sup_slope=1.0, sup_curvature=0.0)

_REGISTRY = {a.name: a for a in (ERF, RELU, TANH, QUADRATIC, LINEAR)}
ACTIVATIONS = tuple(_REGISTRY)  # ("erf", "relu", "tanh", "quadratic", "linear")


def get_activation(activation: str | Activation) -> Activation:
    """The registered :class:`Activation` of that name (an Activation passes through unchanged)."""
    if isinstance(activation, Activation):
        return activation
    try:
        return _REGISTRY[activation]
    except (KeyError, TypeError):
        raise ValueError(f"activation={activation!r} is not one of {ACTIVATIONS}"
                         f"{did_you_mean(activation, ACTIVATIONS)}") from None


def pair_moment(activation: str | Activation, q1: Array, q2: Array, c: Array) -> Array | None:
    """``E[s(u) s(v)]`` in closed form for the named activation, or None where there is none."""
    pm = get_activation(activation).pair_moment
    return None if pm is None else pm(q1, q2, c)
