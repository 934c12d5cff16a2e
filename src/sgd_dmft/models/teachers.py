"""Teacher links ``g(z1, ..., z_{k*})`` of the label ``y = g(r*) + noise * eps``.

:class:`Expression` is a link written in a small, safe vocabulary (the ``problem.teacher`` key)::

    z1 .. zK        the teacher pre-activations r*_1 .. r*_{k*} (1-based; K <= k*)
    numbers         1, 0.5, 1e-3
    + - * / ^       (``**`` too); an exponent must be a constant (a non-negative integer when the
                    base depends on z)
    he1 .. he6      probabilists' Hermite polynomials (he2(x) = x^2 - 1, he3(x) = x^3 - 3x, ...)
    tanh, erf, relu, sign
                    each as the student's activation of that name: erf(x) here is erf(x / sqrt 2);
                    sign(x) = 1 for x >= 0, -1 else
    sqrt            of a constant only, e.g. sqrt(6)

e.g. ``"he3(z1) / sqrt(6)"``, ``"z1 + he3(z2) / sqrt(6)"``, ``"z1 * z2"``, ``"tanh(z1 + he3(z2))"``.
The text is parsed by Python's :mod:`ast` and checked node by node against the vocabulary (nothing is
evaluated); it compiles to a tree of numpy functions, lazily (the object keeps only its text and
``k*``: it pickles as such and worker processes recompile it). :class:`ActivationMean` is the soft
committee's link ``mean_b s(z_b)``. Both are ``rstar (..., k*) -> g (...)``.

The parser is :mod:`.teacher_parser`, the finite-variance rule :mod:`.label_variance` (both re-exported here).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .activations import Activation, get_activation
from .label_variance import DENOMINATOR_FLOOR, finite_variance_problem  # noqa: F401  (re-exported)
from .teacher_parser import (  # noqa: F401  (re-exported: their home was here)
    ALLOWED, HERMITE, MAX_LENGTH, TEACHER_FUNCTIONS, Array, Node, parse_teacher, teacher_degree,
)

__all__ = ["Expression", "ActivationMean", "parse_teacher", "HERMITE", "TEACHER_FUNCTIONS", "ALLOWED",
           "finite_variance_problem", "DENOMINATOR_FLOOR"]


@dataclass(frozen=True)
class Expression:
    """A teacher link from the vocabulary of the module docstring: ``rstar (..., k*) -> (...)``.

    Only ``text`` and ``kstar`` are data (compared, pickled); the compiled tree is built on first use.
    """

    text: str
    kstar: int = 1
    _fn: Node | None = field(default=None, init=False, compare=False, repr=False)

    def __post_init__(self):
        fn, _, _ = parse_teacher(self.text, self.kstar)  # check at construction: errors surface early
        object.__setattr__(self, "_fn", fn)

    def __getstate__(self):
        return {"text": self.text, "kstar": self.kstar}

    def __setstate__(self, state):
        object.__setattr__(self, "text", state["text"])
        object.__setattr__(self, "kstar", state["kstar"])
        object.__setattr__(self, "_fn", None)

    @property
    def variables(self) -> frozenset[int]:
        """The 1-based indices of the variables the link uses."""
        return parse_teacher(self.text, self.kstar)[1]

    @property
    def degree(self) -> float:
        """The polynomial degree (``inf`` when not a polynomial): Gauss-Hermite with ``degree // 2 + 1``
        nodes per axis integrates the link exactly."""
        return teacher_degree(self.text)

    @property
    def polynomial(self) -> bool:
        """Whether the link is a polynomial (no tanh, erf, relu, sign of a variable): Gauss-Hermite is exact."""
        return parse_teacher(self.text, self.kstar)[2]

    def __call__(self, rstar: Array) -> Array:
        if self._fn is None:
            object.__setattr__(self, "_fn", parse_teacher(self.text, self.kstar)[0])
        Z = np.asarray(rstar, dtype=np.float64)
        cols = tuple(np.ascontiguousarray(Z[..., j]) for j in range(Z.shape[-1]))
        out = np.asarray(self._fn(cols), dtype=np.float64)
        return out if out.shape == Z.shape[:-1] else np.broadcast_to(out, Z.shape[:-1]).copy()

    def __str__(self) -> str:
        return self.text


@dataclass(frozen=True)
class ActivationMean:
    """The soft committee's link ``g(z) = mean_b s(z_b)`` (``rstar (..., k*) -> (...)``)."""

    activation: Activation
    kstar: int = 1

    def __post_init__(self):
        object.__setattr__(self, "activation", get_activation(self.activation))

    def __call__(self, rstar: Array) -> Array:
        return self.activation.f(rstar).mean(axis=-1)

    def __str__(self) -> str:
        return f"mean_b {self.activation.name}(z_b)"
