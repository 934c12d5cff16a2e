"""The model base class and user-defined models.

Conventions (docs/theory.md section 1, docs/conventions.md): data ``x_i ~ N(0, I_d / d)``; teacher
``theta* in R^{d x k*}`` with i.i.d. N(0, 1) rows, ``r*_i = theta*^T x_i``; student ``theta in
R^{d x k}``, ``r_i = theta^T x_i``; labels ``y_i = label(r*_i, eps_i)`` with standard normal
``eps_i``; empirical risk ``sum_i l(r_i, y_i) + ridge sum_j |theta_j|^2 / 2``;
``F(r, y) = grad_r l`` (..., k), ``H(r, y) = dF/dr`` (..., k, k).

A model is a small frozen dataclass: its plain fields are data and its loss, derivatives and labels
are methods (presets, :mod:`.presets`, on the bases :class:`Preset` and :class:`PredictorModel` here) or user callables held as fields (:class:`CustomModel`), so
it pickles natively (worker processes rebuild it from the pickle).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Callable, NamedTuple

import numpy as np
from numpy.typing import NDArray

from ..errors import ConfigError
from .losses import SQUARE
from .probe import N_POINTS, ModelProbeWarning, ProbeReport, check_model, probe_model

Array = NDArray[np.float64]
LossFn = Callable[[Array, Array], Array]

__all__ = ["Model", "VisitEdge", "predictor_curvature", "Preset", "PredictorModel", "CustomModel", "custom", "FiniteDifferenceGrad", "FiniteDifferenceHess", "ProbeReport",
           "ModelProbeWarning"]


class VisitEdge(NamedTuple):
    """A visit map past its edge (:meth:`Model.visit_edge`): ``value = gamma |a|^2 sup s'^2`` (past 2: a fitted
    sample's residual can grow), its parts, and the ``gamma`` below which it holds."""

    value: float
    a2: float
    activation: str
    below: float


@dataclass(frozen=True, kw_only=True)
class Model:
    """A multi-index teacher-student model: the fields every model has.

    Every model also provides ``label(rstar (..., k*), eps (...)) -> y (...)``, ``loss(r (..., k),
    y (...)) -> (...)``, ``grad(r, y) -> (..., k)`` and ``hess(r, y) -> (..., k, k)``.

    Attributes
    ----------
    name: preset name or the custom model's name.
    k, kstar: student and teacher widths.
    noise: label-noise scale (presets scale ``eps`` by it; custom models only record it).
    additive_noise: labels are ``target(r*) + noise * eps`` and the loss is ``(predictor(r) - y)^2 / 2``:
        expectations integrate ``eps`` analytically.
    linear_square: square loss with a linear student and teacher, ``y = r* + noise eps``: ``F`` is
        affine in ``r`` (the exact deterministic paths and closed forms apply).
    smooth: False when ``grad`` has a kink (``hess`` has Dirac masses, e.g. relu): the solver then
        uses Gaussian integration by parts for its responses.

    Capabilities (None / False unless a subclass has them): ``predictor(r) -> (...)`` and
    ``target(rstar) -> (...)`` (square-loss models), ``pop_loss(Q (T, k, k), M (T, k, k*), S (k*, k*))
    -> (T,)`` (closed-form population loss), ``zero_one_error(Q, M, S) -> (T,)`` (classifiers: the test 0-1
    error ``P(sign f(r) != y)``, a probability), ``online_expectations()`` (closed-form online ODE
    expectations), ``kernel_spec`` (the simulator's numba gradient kernel codes), ``meta``.

    Stability rules (asked by :mod:`sgd_dmft.stability`; none unless a subclass has them):
    ``hessian_edge(delta)``, ``escape_probability(jump)`` with ``escape_map``, ``visit_edge(jump)``; and
    ``curvature_bound`` with ``hessian_bound(delta)``, the bound that caps a compressed grid's steps.
    """

    name: str = "custom"
    k: int = 1
    kstar: int = 1
    noise: float = 0.0
    additive_noise: bool = False
    linear_square: bool = False
    smooth: bool = True

    predictor = None
    target = None
    pop_loss = None
    zero_one_error = None  # classifiers: (Q (T, k, k), M (T, k, k*), S (k*, k*)) -> (T,) the test 0-1 error

    @property
    def meta(self) -> dict:
        """Extra descriptive data (the committee's ``{"activation": name}``)."""
        return {}

    @property
    def kernel_spec(self) -> tuple[int, int] | None:
        """``(model_code, activation_code)`` of the simulator's numba gradient kernel, or None
        (model codes: linear 0, logistic 1, phase_retrieval 2, committee 3; activation codes:
        :data:`.activations.ACTIVATIONS` order, 0 for non-committee presets)."""
        return None

    @property
    def eps_dim(self) -> bool:
        """Whether Gaussian expectations must integrate ``eps`` numerically (the label uses it and
        the noise is not additive). Custom models scale the noise inside ``label``: always."""
        return not self.additive_noise

    def online_expectations(self):
        """``(Q (k, k), M (k, k*)) -> (E[F r*^T], E[F r^T], E[F F^T])`` in closed form at ``S* = I``,
        or None (then quadrature / Monte Carlo)."""
        return None

    def hessian_edge(self, delta: float) -> float | None:
        """The largest Hessian eigenvalue of the loss part at d = infinity where known (linear model,
        square loss: the Marchenko-Pastur edge ``(1 + sqrt(delta))^2``), else None."""
        return (1.0 + math.sqrt(delta)) ** 2 if self.linear_square else None

    @property
    def curvature_bound(self) -> float | None:
        """``sup ||d^2 l / dr^2||`` over ``r`` and ``y`` (the per-sample Hessian of the loss in ``r``, (k, k)), or
        None where it is unbounded or unknown (linear model, square loss: 1)."""
        return 1.0 if self.linear_square else None

    def hessian_bound(self, delta: float) -> float | None:
        """An upper bound on the largest Hessian eigenvalue of the loss part at d = infinity, at any parameters:
        the empirical risk's Hessian is ``sum_i x_i x_i^T (x) H_i`` with ``||H_i|| <= curvature_bound``, so it is at
        most ``curvature_bound`` times the Marchenko-Pastur edge ``(1 + sqrt(delta))^2`` of ``X^T X`` (``x ~ N(0,
        I_d / d)``, ``n = delta d``); equal to :meth:`hessian_edge` for the linear model. None without a bound."""
        c = self.curvature_bound
        return None if c is None else c * (1.0 + math.sqrt(delta)) ** 2

    def escape_probability(self, jump: float) -> float:
        """The probability that a sample's visit map escapes under jumps ``gamma = jump`` (SGD,
        reshuffling); 0 for a model without such a map (docs/theory.md section 3c)."""
        return 0.0

    @property
    def escape_map(self) -> str:
        """The escaping visit map's name in the stability messages."""
        return f"model={self.name}"

    def visit_edge(self, jump: float) -> VisitEdge | None:
        """Where a visit under jumps ``gamma = jump`` can push a fitted sample's residual out (the two-layer
        square loss), or None."""
        return None

    def labels(self, rstar: Array, eps: Array) -> Array:
        """Labels ``y = phi(r*, eps)``; ``rstar`` (..., kstar), ``eps`` (...) standard normal."""
        return self.label(rstar, eps)


def predictor_curvature(loss, weights, activation) -> float | None:
    """``sup ||d^2 l(f(r), y) / dr^2||`` for ``f(r) = sum_a w_a s(r_a + b_a)`` under the loss rule ``loss``
    (:mod:`.losses`): the Hessian is ``l'' grad f grad f^T + l' diag(w_a s'')``, at most ``sup l'' |w|^2 sup s'^2
    + sup |l'| max |w_a| sup |s''|``. None where a factor is unbounded: the square loss's slope ``f - y`` unless
    ``s'' = 0``, an unbounded ``s'`` (quadratic), a kink (relu)."""
    if not activation.smooth or activation.sup_slope is None or activation.sup_curvature is None:
        return None
    first = loss.max_curvature * sum(w * w for w in weights) * activation.sup_slope ** 2
    if activation.sup_curvature == 0.0:
        return first
    if loss.max_slope is None:
        return None
    return first + loss.max_slope * max(abs(w) for w in weights) * activation.sup_curvature


@dataclass(frozen=True, kw_only=True)
class Preset(Model):
    """A preset: the label noise is ``noise * eps``, so ``eps`` matters only when ``noise != 0``."""

    trusted_labels = True  # known labels: probe.check_labels skips them

    @property
    def eps_dim(self) -> bool:
        return not self.additive_noise and self.noise != 0.0


@dataclass(frozen=True, kw_only=True)
class PredictorModel(Preset):
    """A student ``f(r) = sum_a f_a(r_a)`` given componentwise by ``predictor``, ``_fp`` (``d f / d r_a``),
    ``_fpp`` (``d^2 f / d r_a^2``), on labels ``loss_rule.label(g(r*) + noise eps)``, with the loss
    ``loss_rule.value(f, y)`` (:mod:`.losses`; the square loss here, :class:`~.two_layer_model.TwoLayer`
    chooses)."""

    additive_noise: bool = True
    loss_rule = SQUARE

    def label(self, rstar: Array, eps: Array) -> Array:
        return self.loss_rule.label(self.target(rstar) + self.noise * eps)

    def loss(self, r: Array, y: Array) -> Array:
        return self.loss_rule.value(self.predictor(r), y)

    def grad(self, r: Array, y: Array) -> Array:
        return self.loss_rule.slope(self.predictor(r), y)[..., None] * self._fp(r)

    def hess(self, r: Array, y: Array) -> Array:
        f, d1 = self.predictor(r), self._fp(r)
        c = self.loss_rule.curvature(f, y)
        if c is None:  # the square loss's curvature 1
            h = d1[..., :, None] * d1[..., None, :]
        else:
            h = c[..., None, None] * d1[..., :, None] * d1[..., None, :]
        idx = np.arange(r.shape[-1])
        h[..., idx, idx] += self.loss_rule.slope(f, y)[..., None] * self._fpp(r)
        return h


@dataclass(frozen=True)
class FiniteDifferenceGrad:
    """``grad(r, y)`` of ``loss`` by central differences of step ``h`` (pickles when ``loss`` does)."""

    loss: LossFn
    h: float = 1e-5

    def __call__(self, r: Array, y: Array) -> Array:
        h = self.h
        r = np.asarray(r, dtype=np.float64)
        out = np.empty_like(r)
        for a in range(r.shape[-1]):
            e = np.zeros(r.shape[-1])
            e[a] = h
            out[..., a] = (self.loss(r + e, y) - self.loss(r - e, y)) / (2 * h)
        return out


@dataclass(frozen=True)
class FiniteDifferenceHess:
    """``hess(r, y)`` of ``grad`` by central differences of step ``h``, symmetrised."""

    grad: LossFn
    h: float = 1e-5

    def __call__(self, r: Array, y: Array) -> Array:
        h = self.h
        r = np.asarray(r, dtype=np.float64)
        k = r.shape[-1]
        out = np.empty(r.shape + (k,))
        for b in range(k):
            e = np.zeros(k)
            e[b] = h
            out[..., :, b] = (self.grad(r + e, y) - self.grad(r - e, y)) / (2 * h)
        return 0.5 * (out + np.swapaxes(out, -1, -2))


@dataclass(frozen=True, kw_only=True)
class CustomModel(Model):
    """A model holding user callables ``loss``, ``label``, ``grad``, ``hess`` (see :func:`custom`).

    ``smooth``: None (default) lets :func:`.probe.probe_model` decide at construction (a kink in
    ``grad`` -> False); an explicit bool wins, with a :class:`~.probe.ModelProbeWarning` when the probe
    disagrees. ``probe``: the probe's :class:`~.probe.ProbeReport` (kept by copies and pickles, so the
    probe runs once per model).
    """

    loss: LossFn
    label: LossFn
    grad: LossFn
    hess: LossFn
    smooth: bool | None = None
    probe: ProbeReport | None = field(default=None, compare=False, repr=False)

    def __post_init__(self):
        report = self.probe
        if report is None:
            check_model(self)  # shapes first: a wrong shape is named as such, not as a failed probe
            report = self._run_probe()
            object.__setattr__(self, "probe", report)
        if report is None:  # the probe could not run; an explicit flag stands
            return
        if self.smooth is None:
            object.__setattr__(self, "smooth", report.smooth)
        elif bool(self.smooth) != report.smooth:
            warnings.warn(f"model={self.name}: smooth={bool(self.smooth)} was declared but the probe finds "
                          f"{report.describe()}; the declared flag is used (smooth=None lets the probe decide)",
                          ModelProbeWarning, stacklevel=4)
        object.__setattr__(self, "smooth", bool(self.smooth))

    @property
    def trusted_labels(self) -> bool:
        """Labels already checked (probe.check_labels): the probe ran, at construction or before a pickle."""
        return self.probe is not None

    def _run_probe(self) -> ProbeReport | None:
        """The probe's report; None (with a warning) when it fails and ``smooth`` was declared."""
        try:
            return probe_model(self, check_grad=not isinstance(self.grad, FiniteDifferenceGrad),
                               check_hess=not isinstance(self.hess, FiniteDifferenceHess))
        except Exception as exc:  # user callables: anything can fail
            msg = (f"model={self.name}: the smoothness probe could not evaluate grad on r ({N_POINTS}, {self.k}), "
                   f"y ({N_POINTS},): {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
            if self.smooth is None:
                raise ConfigError(f"{msg}; pass smooth=True or smooth=False to skip the decision", key="smooth") from exc
            warnings.warn(f"{msg}; the declared smooth={bool(self.smooth)} is used", ModelProbeWarning, stacklevel=5)
            return None


def custom(
    loss: LossFn,
    label: LossFn,
    k: int = 1,
    kstar: int = 1,
    grad: LossFn | None = None,
    hess: LossFn | None = None,
    noise: float = 0.0,
    name: str = "custom",
    smooth: bool | None = None,
) -> CustomModel:
    """A user-defined model.

    ``loss(r, y)`` with ``r`` of shape ``(..., k)`` and ``y`` of shape ``(...)``; ``label(rstar, eps)``
    with ``rstar`` of shape ``(..., kstar)`` and standard-normal ``eps`` of shape ``(...)`` (scale the
    noise inside ``label`` yourself; ``noise`` is only recorded). A missing ``grad`` or ``hess`` is
    derived by central finite differences (step 1e-5, relative accuracy ~1e-9 for smooth losses).

    ``smooth``: whether ``grad`` is free of kinks (``hess`` without Dirac masses). None (default): a
    numerical probe decides at construction (:mod:`.probe`: jumps of ``grad`` along 2048 sampled
    segments; a supplied ``grad`` / ``hess`` is also checked against differences of ``loss`` /
    ``grad``, a mismatch warns). A kinked model gets ``smooth=False``: the solver then estimates its
    responses by Gaussian integration by parts instead of pathwise tangents (which miss the Dirac
    mass) and refuses ``responses="pathwise"``. An explicit ``smooth=`` wins, with a
    :class:`~.probe.ModelProbeWarning` when the probe disagrees. The model pickles when the callables
    do (module-level functions, not lambdas or closures).
    """
    g = grad if grad is not None else FiniteDifferenceGrad(loss)
    h = hess if hess is not None else FiniteDifferenceHess(g)
    return CustomModel(name=name, k=k, kstar=kstar, label=label, loss=loss, grad=g, hess=h, noise=noise,
                       smooth=smooth)
