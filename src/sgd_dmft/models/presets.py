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
(:mod:`.teachers`); the committee is its special case ``a = 1/k``, ``b = 0``, ``g = mean_b s(z_b)``.

All methods are vectorised over leading axes (shapes as in :class:`.base.Model`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import partial

import numpy as np

from .. import defaults as _defaults
from ..errors import ConfigError, did_you_mean
from .activations import ERF, QUADRATIC, TANH, Activation, get_activation
from .base import Array, Model
from .base import VisitEdge
from .closed_forms import LogisticSplitRule, committee_loss, linear_expectations, sigmoid, sign_disagreement, softplus
from .losses import LOSS_RULES, SQUARE, Loss, chi2_escape
from .teachers import ActivationMean, Expression, finite_variance_problem

__all__ = ["MODELS", "LOSSES", "Linear", "Logistic", "PhaseRetrieval", "Committee", "TwoLayer", "linear",
           "logistic", "phase_retrieval", "committee", "two_layer", "make_model"]

MODELS = ("linear", "logistic", "phase_retrieval", "committee", "two_layer")
LOSSES = tuple(LOSS_RULES)  # ("square", "logistic")


@dataclass(frozen=True, kw_only=True)
class _Preset(Model):
    """A preset: the label noise is ``noise * eps``, so ``eps`` matters only when ``noise != 0``."""

    trusted_labels = True  # known labels: probe.check_labels skips them

    @property
    def eps_dim(self) -> bool:
        return not self.additive_noise and self.noise != 0.0


@dataclass(frozen=True, kw_only=True)
class _Predictor(_Preset):
    """A student ``f(r) = sum_a f_a(r_a)`` given componentwise by ``predictor``, ``_fp`` (``d f / d r_a``),
    ``_fpp`` (``d^2 f / d r_a^2``), on labels ``loss_rule.label(g(r*) + noise eps)``, with the loss
    ``loss_rule.value(f, y)`` (:mod:`.losses`; the square loss here, :class:`TwoLayer` chooses)."""

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


@dataclass(frozen=True, kw_only=True)
class Linear(_Predictor):
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
class PhaseRetrieval(_Predictor):
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
class Committee(_Predictor):
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


def _weights(key: str, value, k: int, default: float) -> tuple[float, ...]:
    """``value`` (None, a number or a length-k sequence) as a tuple of k finite floats (ConfigError naming ``key``)."""
    if value is None:
        return (default,) * k
    if isinstance(value, (int, float, np.floating, np.integer)) and not isinstance(value, bool):
        vals = [float(value)] * k
    else:
        try:
            vals = [float(v) for v in value if not isinstance(v, bool)]
            ok = len(vals) == len(value)
        except (TypeError, ValueError):
            ok = False
        if not ok or len(vals) != k:
            raise ConfigError(f"{key} = {value!r}: must be a number or a list of student_width = {k} numbers", key=key)
    if not all(math.isfinite(v) for v in vals):
        raise ConfigError(f"{key} = {value!r}: must be finite numbers", key=key)
    return tuple(vals)


@dataclass(frozen=True, kw_only=True)
class TwoLayer(_Predictor):
    """Two-layer student ``f(r) = sum_a a_a s(r_a + b_a)`` on any teacher link ``g`` (``k`` units, ``k*``
    teacher directions).

    ``loss_name="square"``: ``y = g(r*) + noise eps``, loss ``(f - y)^2 / 2``; ``"logistic"``: ``y =
    sign(g(r*) + noise eps)`` in {-1, 1}, loss ``log(1 + exp(-y f))``. ``teacher``: an
    :class:`~.teachers.Expression` text such as ``"he3(z1) / sqrt(6)"``, an Expression, an
    :class:`~.teachers.ActivationMean` or a picklable callable ``rstar (..., k*) -> (...)``; None: the
    committee's ``mean_b s(z_b)``. ``second_layer`` ``a`` (k,; default 1/k each), ``bias`` ``b`` (k,;
    default 0), as tuples. ``smooth`` defaults to the activation's (the teacher needs no derivative).
    """

    name: str = "two_layer"
    k: int = 2
    kstar: int = 1
    activation: Activation = TANH
    teacher: object = None
    second_layer: tuple[float, ...] | None = None
    bias: tuple[float, ...] | None = None
    loss_name: str = "square"
    smooth: bool | None = None

    def __post_init__(self):
        act = get_activation(self.activation)
        object.__setattr__(self, "activation", act)
        t = self.teacher
        t = ActivationMean(act, self.kstar) if t is None else Expression(t, self.kstar) if isinstance(t, str) else t
        if getattr(t, "kstar", self.kstar) != self.kstar or not callable(t):
            raise ConfigError(f"problem.teacher = {str(t)!r}: must be a link of teacher_width = {self.kstar} "
                              "variables (an expression or a callable)", key="problem.teacher")
        object.__setattr__(self, "teacher", t)
        object.__setattr__(self, "second_layer", _weights("problem.second_layer", self.second_layer, self.k, 1.0 / self.k))
        object.__setattr__(self, "bias", _weights("problem.bias", self.bias, self.k, 0.0))
        if self.loss_name not in LOSSES:
            raise ConfigError(f"problem.loss = {self.loss_name!r}: must be one of {' | '.join(LOSSES)}", key="problem.loss")
        object.__setattr__(self, "additive_noise", LOSS_RULES[self.loss_name].additive_noise)
        if self.smooth is None:
            object.__setattr__(self, "smooth", act.smooth)
        why = finite_variance_problem(t.text, self.kstar) if isinstance(t, Expression) else None
        if why and not self.loss_rule.classifier:  # (the logistic loss sees sign(g + noise eps) only)
            raise ConfigError(f"problem.teacher = {t.text!r}: {why}", key="problem.teacher")

    label_key = "problem.teacher"  # probe.check_labels: a callable teacher is user code

    @property
    def trusted_labels(self) -> bool:
        """An expression (checked at construction) or the committee's link; not a user callable."""
        return isinstance(self.teacher, (Expression, ActivationMean))

    # ---- the student and the teacher ----
    def _pre(self, r: Array) -> Array:
        return r + np.asarray(self.bias) if any(self.bias) else r

    def predictor(self, r: Array) -> Array:
        """``f(r) = sum_a a_a s(r_a + b_a)``; ``r`` (..., k) -> (...)."""
        return self.activation.f(self._pre(r)) @ np.asarray(self.second_layer)

    def target(self, rstar: Array) -> Array:
        """The link ``g(r*)``; ``rstar`` (..., k*) -> (...)."""
        return np.asarray(self.teacher(rstar), dtype=np.float64)

    def _fp(self, r: Array) -> Array:
        return self.activation.df(self._pre(r)) * np.asarray(self.second_layer)

    def _fpp(self, r: Array) -> Array:
        return self.activation.d2f(self._pre(r)) * np.asarray(self.second_layer)

    # ---- the loss (the rule of loss_name) and its stability rules ----
    @property
    def loss_rule(self) -> Loss:
        """The loss rule of ``loss_name`` (:mod:`.losses`)."""
        return LOSS_RULES[self.loss_name]

    def escape_probability(self, jump: float) -> float:
        """The unbiased one-unit quadratic student ``f = a r^2`` has phase retrieval's visit map in ``u = a r``
        with the label ``a y``: ``u -> u (1 - 2 gamma (u^2 - a y))``, escaping for ``a y > 1/gamma`` (the loss
        rule's escape tail; 0 for every other student)."""
        if self.k == 1 and self.kstar == 1 and self.activation.name == "quadratic" and self.bias[0] == 0.0:
            return self.loss_rule.escape_tail(lambda z: self.target(z[..., None]), float(self.second_layer[0]),
                                              float(self.noise), 1.0 / jump)
        return 0.0

    @property
    def escape_map(self) -> str:
        return (f"a quadratic student (a = {self.second_layer[0]:g}; in u = a r the map of phase retrieval with "
                f"label a y)")

    def visit_edge(self, jump: float) -> VisitEdge | None:
        """Square loss: near interpolation a visit maps the residual ``f - y -> (1 - gamma sum_a a_a^2 s'(r_a +
        b_a)^2)(f - y)``, past its edge when that sum reaches 2: ``gamma |a|^2 sup s'^2`` (None for the
        logistic loss or an activation with unbounded slope)."""
        sup = self.activation.sup_slope
        if self.loss_rule is not SQUARE or sup is None:
            return None
        a2 = sum(x * x for x in (self.second_layer or ()))
        return VisitEdge(jump * a2 * sup ** 2, a2, self.activation.name, 2.0 / (a2 * sup ** 2))

    # ---- capabilities ----
    @property
    def meta(self) -> dict:
        return {"activation": self.activation.name, "teacher": str(self.teacher), "loss": self.loss_name,
                "second_layer": list(self.second_layer), "bias": list(self.bias)}

    @property
    def pop_loss(self):
        """The two-layer quadrature rule (:func:`.two_layer_quadrature.two_layer_loss`): ``(Q, M, S) -> (T,)``."""
        from .two_layer_quadrature import two_layer_loss

        return partial(two_layer_loss, self)

    @property
    def zero_one_error(self):
        """The logistic loss's classifier ``sign f(r)``: the test 0-1 error rule
        (:func:`.two_layer_quadrature.two_layer_zero_one`, ``(Q, M, S) -> (T,)``, a probability); None for the square
        loss (a regression)."""
        if not self.loss_rule.classifier:
            return None
        from .two_layer_quadrature import two_layer_zero_one

        return partial(two_layer_zero_one, self)

    @property
    def kernel_spec(self) -> tuple[int, int]:
        return (self.loss_rule.kernel_code, self.activation.code)

    @property
    def kernel_params(self) -> Array:
        """``[a_1..a_k, b_1..b_k]`` for the simulator's kernel."""
        return np.array(self.second_layer + self.bias, dtype=np.float64)


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


def two_layer(k: int = 2, kstar: int = 1, activation: str | Activation = _defaults.ACTIVATION, teacher=None,
              second_layer=None, bias=None, loss: str = "square", noise: float = 0.0) -> TwoLayer:
    """Two-layer student ``f(r) = sum_a a_a s(r_a + b_a)`` on the link ``teacher`` (see :class:`TwoLayer`)."""
    return TwoLayer(k=k, kstar=kstar, activation=get_activation(activation), teacher=teacher,
                    second_layer=second_layer, bias=bias, loss_name=loss, noise=noise)


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

