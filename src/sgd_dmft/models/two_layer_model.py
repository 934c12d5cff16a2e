"""The two-layer preset: a student ``f(r) = sum_a a_a s(r_a + b_a)`` on any teacher link ``g`` (:mod:`.teachers`),
with the square or the logistic loss (:mod:`.losses`); the soft committee is its special case ``a = 1/k``,
``b = 0``, ``g = mean_b s(z_b)``. Its population loss is the quadrature rule of :mod:`.two_layer_quadrature`.

Re-exported by :mod:`.presets` (the names' earlier home).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import partial

import numpy as np

from .. import defaults as _defaults
from ..errors import ConfigError
from .activations import TANH, Activation, get_activation
from .base import Array, PredictorModel, VisitEdge, predictor_curvature
from .losses import LOSS_RULES, SQUARE, Loss
from .teachers import ActivationMean, Expression, finite_variance_problem

__all__ = ["TwoLayer", "two_layer", "LOSSES"]

LOSSES = tuple(LOSS_RULES)  # ("square", "logistic")


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
class TwoLayer(PredictorModel):
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

    @property
    def curvature_bound(self) -> float | None:
        """:func:`.base.predictor_curvature` of the loss rule, the second layer and the activation (the logistic
        loss with erf / tanh / linear units; the square loss with linear units only; None else)."""
        return predictor_curvature(self.loss_rule, self.second_layer, self.activation)

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


def two_layer(k: int = 2, kstar: int = 1, activation: str | Activation = _defaults.ACTIVATION, teacher=None,
              second_layer=None, bias=None, loss: str = "square", noise: float = 0.0) -> TwoLayer:
    """Two-layer student ``f(r) = sum_a a_a s(r_a + b_a)`` on the link ``teacher`` (see :class:`TwoLayer`)."""
    return TwoLayer(k=k, kstar=kstar, activation=get_activation(activation), teacher=teacher,
                    second_layer=second_layer, bias=bias, loss_name=loss, noise=noise)
