"""Loss rules: a loss as a function of the prediction ``f`` and the label ``y``, and what it implies.

A :class:`Loss` bundles ``l(f, y)``, its slope ``dl/df`` and curvature ``d^2l/df^2`` (None: the
constant 1 of the square loss), how a label is made from the noisy link value ``z = g(r*) + noise
eps``, and the loss's consequences elsewhere: whether the noise stays additive, whether the model is a
classifier (a test 0-1 error), its code in the simulator's kernel, and the escape tail of its visit
map (:meth:`Loss.escape_tail`). The square-loss presets and :class:`~.presets.TwoLayer` compute
``loss``, ``grad`` and ``hess`` from it, so no method tests a loss name.

=========  ==================  ============  ====================  ========  ==========  ====
name       label ``y``         ``l(f, y)``   ``dl/df``             additive  classifier  code
=========  ==================  ============  ====================  ========  ==========  ====
square     ``z``               (f - y)^2/2   f - y                 yes       no          4
logistic   ``sign z``          softplus(-yf) -y sigmoid(-y f)      no        yes         5
=========  ==================  ============  ====================  ========  ==========  ====

Also the escape tails of the visit maps ``u -> u (1 - 2 gamma (u^2 - y))`` (phase retrieval, the
quadratic student), used by the models' ``escape_probability`` (docs/theory.md section 3c).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
from numpy.typing import NDArray

from .closed_forms import sigmoid, softplus

Array = NDArray[np.float64]

__all__ = ["Loss", "SquareLoss", "LogisticLoss", "SQUARE", "LOGISTIC", "LOSS_RULES", "label_tail", "chi2_escape"]


@dataclass(frozen=True)
class Loss:
    """A loss rule (see the module docstring); subclasses give ``value``, ``slope``, ``curvature``, ``label``."""

    name: str
    additive_noise: bool  # labels are g(r*) + noise eps themselves: expectations integrate eps analytically
    classifier: bool  # labels are signs: the model has a test 0-1 error
    kernel_code: int  # the two-layer model's code in the simulator's numba kernel
    max_curvature = None  # sup over f, y of d^2l/df^2 (None: unbounded): the step's stability bound (models/base.py)
    max_slope = None  # sup over f, y of |dl/df| (None: unbounded)

    def label(self, z: Array) -> Array:
        """The label from the noisy link value ``z = g(r*) + noise eps``."""
        raise NotImplementedError

    def value(self, f: Array, y: Array) -> Array:
        """``l(f, y)``."""
        raise NotImplementedError

    def slope(self, f: Array, y: Array) -> Array:
        """``dl/df``."""
        raise NotImplementedError

    def curvature(self, f: Array, y: Array) -> Array | None:
        """``d^2l/df^2``, or None where it is the constant 1."""
        raise NotImplementedError

    def escape_tail(self, link: Callable[[Array], Array], a: float, noise: float, c: float) -> float:
        """The probability that a quadratic unit ``f = a r^2`` meets a label its visit map escapes
        from (``a y > c = 1/gamma``); 0 where the loss has no such map."""
        return 0.0


@dataclass(frozen=True)
class SquareLoss(Loss):
    """``(f - y)^2 / 2`` on labels ``y = z``."""

    name: str = "square"
    additive_noise: bool = True
    classifier: bool = False
    kernel_code: int = 4
    max_curvature = 1.0  # (the slope f - y is unbounded)

    def label(self, z: Array) -> Array:
        return z

    def value(self, f: Array, y: Array) -> Array:
        return 0.5 * (f - y) ** 2

    def slope(self, f: Array, y: Array) -> Array:
        return f - y

    def curvature(self, f: Array, y: Array) -> None:
        return None

    def escape_tail(self, link: Callable[[Array], Array], a: float, noise: float, c: float) -> float:
        return label_tail(link, a, noise, c)


@dataclass(frozen=True)
class LogisticLoss(Loss):
    """``log(1 + exp(-y f))`` on labels ``y = sign z`` in {-1, 1}."""

    name: str = "logistic"
    additive_noise: bool = False
    classifier: bool = True
    kernel_code: int = 5
    max_curvature = 0.25  # sigmoid (1 - sigmoid) <= 1/4, at y f = 0
    max_slope = 1.0

    def label(self, z: Array) -> Array:
        return np.where(z >= 0.0, 1.0, -1.0)

    def value(self, f: Array, y: Array) -> Array:
        return softplus(-y * f)

    def slope(self, f: Array, y: Array) -> Array:
        return -y * sigmoid(-y * f)

    def curvature(self, f: Array, y: Array) -> Array:
        sg = sigmoid(y * f)
        return sg * (1.0 - sg)


SQUARE = SquareLoss()
LOGISTIC = LogisticLoss()
LOSS_RULES = {rule.name: rule for rule in (SQUARE, LOGISTIC)}


def label_tail(g: Callable[[Array], Array], a: float, noise: float, c: float) -> float:
    """``P(a (g(z) + noise eps) > c)``, ``z, eps ~ N(0, 1)``: trapezoid over z in [-12, 12] (2e5 points;
    the label's own noise integrated in closed form)."""
    from scipy import stats

    z = np.linspace(-12.0, 12.0, 200_001)
    ag = a * np.asarray(g(z), dtype=float)
    if noise == 0.0:
        inner = (ag > c).astype(float)
    else:
        inner = stats.norm.sf((c - ag) / (abs(a) * noise))
    return float(min(1.0, np.trapezoid(stats.norm.pdf(z) * inner, z)))


def chi2_escape(noise: float, c: float) -> float:
    """``P(r*^2 + noise eps > c)``, ``r*, eps ~ N(0, 1)``: phase retrieval's escaping labels (a ``chi2_1``
    tail without noise, an adaptive integral with)."""
    from scipy import integrate, stats

    s = float(noise)
    if s == 0.0:
        return float(stats.chi2.sf(c, 1))
    f = lambda z: 2.0 * stats.norm.pdf(z) * stats.norm.sf((c - z * z) / s)  # noqa: E731
    return float(min(1.0, integrate.quad(f, 0.0, math.inf, epsabs=0.0, epsrel=1e-8, limit=200)[0]))
