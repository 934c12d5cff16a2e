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
"""

from __future__ import annotations

import ast
import math
import operator
from dataclasses import dataclass, field
from typing import Callable, NamedTuple

import numpy as np
from numpy.typing import NDArray

from ..errors import ConfigError
from .activations import Activation, get_activation

Array = NDArray[np.float64]
Node = Callable[[Array], Array]

__all__ = ["Expression", "ActivationMean", "parse_teacher", "HERMITE", "TEACHER_FUNCTIONS", "ALLOWED",
           "finite_variance_problem", "DENOMINATOR_FLOOR"]

# probabilists' Hermite polynomials He_n, coefficients of x^0 .. x^n
HERMITE = {
    1: (0, 1), 2: (-1, 0, 1), 3: (0, -3, 0, 1), 4: (3, 0, -6, 0, 1), 5: (0, 15, 0, -10, 0, 1),
    6: (-15, 0, 45, 0, -15, 0, 1),
}


def _sign(x):
    return np.where(x >= 0.0, 1.0, -1.0)


def _hermite(n: int) -> Callable[[Array], Array]:
    coef = HERMITE[n]

    def he(x):  # Horner
        out = np.full_like(x, float(coef[-1]), dtype=np.float64)
        for c in coef[-2::-1]:
            out = out * x + c if c else out * x
        return out

    return he


TEACHER_FUNCTIONS: dict[str, Callable[[Array], Array]] = {
    "tanh": np.tanh, "erf": get_activation("erf").f, "relu": get_activation("relu").f, "sign": _sign,
    **{f"he{n}": _hermite(n) for n in HERMITE},
}
_BINOPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
           ast.Pow: operator.pow}
ALLOWED = ("z1..z{K}, numbers, + - * / ^, he1..he6, tanh, erf (= erf(x / sqrt 2)), relu, sign, "
           "sqrt(constant)")


MAX_LENGTH = 500


def _allowed(kstar: int) -> str:
    return "allowed: " + ALLOWED.format(K=kstar)


class _Compiler:
    """Checks an :mod:`ast` tree node by node and builds ``(constant or None, fn(Z) -> array)``."""

    def __init__(self, text: str, kstar: int, key: str):
        self.text, self.kstar, self.key = text, kstar, key
        self.used: set[int] = set()
        self.polynomial = True  # no tanh / erf / relu / sign of a variable

    def fail(self, what: str) -> ConfigError:
        return ConfigError(f"{self.key} = {self.text!r}: {what}; {_allowed(self.kstar)}", key=self.key)

    def build(self, node: ast.AST) -> tuple[float | None, Node]:
        """``(value, fn)``: ``value`` is the float of a constant subexpression (else None)."""
        if isinstance(node, ast.Constant):
            if isinstance(node.value, bool) or not isinstance(node.value, (int, float)):
                raise self.fail(f"constant {node.value!r} is not a number")
            try:
                v = float(node.value)
            except OverflowError:  # an integer literal past the float range (400 digits)
                raise self.fail(f"constant {str(node.value)[:20]}... ({len(str(node.value))} digits) is beyond the "
                                f"float range") from None
            if not math.isfinite(v):  # 1e999
                raise self.fail(f"constant '{ast.unparse(node)}' is not a finite number")
            return v, lambda Z, v=v: v
        if isinstance(node, ast.Name):
            return None, self._variable(node.id)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
            c, f = self.build(node.operand)
            if isinstance(node.op, ast.UAdd):
                return c, f
            return (None if c is None else -c), (lambda Z, f=f: -f(Z))
        if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
            return self._binop(node)
        if isinstance(node, ast.Call):
            return self._call(node)
        raise self.fail(f"'{ast.unparse(node)}' is not allowed")

    def _variable(self, name: str) -> Node:
        if not (name.startswith("z") and name[1:].isdigit()):
            raise self.fail(f"unknown name '{name}'")
        i = int(name[1:])
        if not 1 <= i <= self.kstar:
            raise self.fail(f"variable '{name}' is out of range for teacher_width = {self.kstar} (z1..z{self.kstar})")
        self.used.add(i)
        return lambda Z, j=i - 1: Z[j]  # Z: the tuple of contiguous columns (Expression.__call__)

    def _binop(self, node: ast.BinOp) -> tuple[float | None, Node]:
        op = _BINOPS[type(node.op)]
        (ca, fa), (cb, fb) = self.build(node.left), self.build(node.right)
        if isinstance(node.op, ast.Pow):
            if cb is None:
                raise self.fail(f"exponent of '{ast.unparse(node)}' must be a constant")
            if ca is None and not (cb >= 0 and float(cb).is_integer()):
                raise self.fail(f"exponent of '{ast.unparse(node)}' must be a non-negative integer")
        if ca is not None and cb is not None:
            try:
                v = float(op(ca, cb))
            except (ZeroDivisionError, OverflowError, ValueError, TypeError):
                raise self.fail(f"'{ast.unparse(node)}' is not a finite number") from None
            if not math.isfinite(v):
                raise self.fail(f"'{ast.unparse(node)}' is not a finite number")
            return v, lambda Z, v=v: v
        if isinstance(node.op, ast.Pow):
            n = int(cb)
            return None, lambda Z, fa=fa, n=n: fa(Z) ** n
        return None, lambda Z, fa=fa, fb=fb, op=op: op(fa(Z), fb(Z))

    def _call(self, node: ast.Call) -> tuple[float | None, Node]:
        name = node.func.id if isinstance(node.func, ast.Name) else ast.unparse(node.func)
        if name != "sqrt" and name not in TEACHER_FUNCTIONS:
            raise self.fail(f"unknown function '{name}'")
        if node.keywords or len(node.args) != 1:
            raise self.fail(f"'{name}' takes exactly one argument")
        c, f = self.build(node.args[0])
        if name == "sqrt":
            if c is None or c < 0:
                raise self.fail(f"sqrt takes a non-negative constant only (got '{ast.unparse(node)}')")
            v = math.sqrt(c)
            return v, lambda Z, v=v: v
        fn = TEACHER_FUNCTIONS[name]
        if c is not None:
            v = float(fn(np.float64(c)))
            return v, lambda Z, v=v: v
        if not name.startswith("he"):
            self.polynomial = False
        return None, lambda Z, f=f, fn=fn: fn(f(Z))


def parse_teacher(text: str, kstar: int, key: str = "problem.teacher") -> tuple[Node, frozenset[int], bool]:
    """Check and compile ``text``; returns ``(fn, variables used, polynomial)``, ``fn(cols) -> (...)`` on the
    tuple of the k* columns ``r*_1 .. r*_k*`` (each of shape ``(...)``).

    Raises :class:`~sgd_dmft.errors.ConfigError` (one line naming ``key``, the text and the vocabulary)
    for anything outside the vocabulary, a variable index outside ``1..kstar`` or a link using no variable.
    """
    comp = _Compiler(text, int(kstar), key)
    if not isinstance(text, str) or not text.strip():
        raise comp.fail("must be a non-empty expression")
    if len(text) > MAX_LENGTH:
        raise comp.fail(f"longer than {MAX_LENGTH} characters")
    try:
        tree = ast.parse(text.replace("^", "**").strip(), mode="eval")
    except SyntaxError as e:
        raise comp.fail(f"syntax error ({e.msg})") from None
    try:
        c, fn = comp.build(tree.body)
    except RecursionError:
        raise comp.fail("nested too deeply") from None
    if c is not None:
        raise comp.fail("the link uses no variable z1..zK")
    return fn, frozenset(comp.used), comp.polynomial


def _degree(node: ast.AST) -> float:
    """The polynomial degree of a checked expression tree (inf when it is not a polynomial)."""
    if isinstance(node, ast.Constant):
        return 0
    if isinstance(node, ast.Name):
        return 1
    if isinstance(node, ast.UnaryOp):
        return _degree(node.operand)
    if isinstance(node, ast.BinOp):
        a, b = _degree(node.left), _degree(node.right)
        if isinstance(node.op, (ast.Add, ast.Sub)):
            return max(a, b)
        if isinstance(node.op, ast.Mult):
            return a + b
        if isinstance(node.op, ast.Div):
            return a if b == 0 else math.inf
        return a * ast.literal_eval(ast.unparse(node.right)) if a and b == 0 else (0 if a == 0 and b == 0 else math.inf)
    if isinstance(node, ast.Call):
        name, d = node.func.id, _degree(node.args[0])
        if d == 0:
            return 0
        return int(name[2:]) * d if name.startswith("he") else math.inf
    return math.inf


def teacher_degree(text: str) -> float:
    """The polynomial degree of a valid link text (``inf`` for tanh, erf, relu, sign of a variable)."""
    try:
        return _degree(ast.parse(text.replace("^", "**").strip(), mode="eval").body)
    except (ValueError, SyntaxError, TypeError):
        return math.inf


# ------------------------------------------------------------------------------------------------
# Finite label variance: every denominator bounded away from 0
# ------------------------------------------------------------------------------------------------
DENOMINATOR_FLOOR = 1e-6  # a denominator must keep |h| >= this on all of R^k* (see finite_variance_problem)


class _Bounds(NamedTuple):
    """An enclosure of a subexpression over all of R^k*: ``lo <= value <= hi`` and ``|value| >= mag``."""

    lo: float
    hi: float
    mag: float

    @classmethod
    def of(cls, lo: float, hi: float, mag: float = 0.0) -> "_Bounds":
        gap = lo if lo > 0 else (-hi if hi < 0 else 0.0)  # the distance of [lo, hi] from 0
        return cls(lo, hi, max(mag, gap))


def _mul(a: float, b: float) -> float:
    return 0.0 if a == 0.0 or b == 0.0 else a * b  # 0 x inf = 0: a zero factor is exactly zero


def _times(a: _Bounds, b: _Bounds) -> _Bounds:
    ends = [_mul(x, y) for x in (a.lo, a.hi) for y in (b.lo, b.hi)]
    return _Bounds.of(min(ends), max(ends), _mul(a.mag, b.mag))


def _power(a: _Bounds, n: int) -> _Bounds:
    with np.errstate(over="ignore"):
        p = lambda x: float(np.float64(x) ** n)  # noqa: E731  (+-inf past the float range)
        if n == 0:
            return _Bounds.of(1.0, 1.0, 1.0)
        if n % 2:
            return _Bounds.of(p(a.lo), p(a.hi), p(a.mag))
        top = max(p(a.lo), p(a.hi))
        return _Bounds.of(0.0 if a.lo <= 0 <= a.hi else min(p(a.lo), p(a.hi)), top, p(a.mag))


def _hermite_bounds(n: int, a: _Bounds) -> _Bounds:
    """The range of He_n over [lo, hi]: its values at the finite ends and at the critical points inside,
    and its limits at infinite ends."""
    coef = np.array(HERMITE[n], dtype=float)
    crit = np.polynomial.polynomial.polyroots(np.polynomial.polynomial.polyder(coef))
    xs = [x.real for x in np.atleast_1d(crit) if abs(x.imag) < 1e-12 and a.lo <= x.real <= a.hi]
    xs += [x for x in (a.lo, a.hi) if math.isfinite(x)]
    vals = [float(np.polynomial.polynomial.polyval(x, coef)) for x in xs]
    if a.hi == math.inf:
        vals.append(math.inf)
    if a.lo == -math.inf:
        vals.append(math.inf if n % 2 == 0 else -math.inf)
    return _Bounds.of(min(vals), max(vals))


def _monotone(fn: Callable, a: _Bounds) -> _Bounds:
    """An odd increasing function (tanh, erf): ends mapped, ``|f(x)| >= f(mag)``."""
    f = lambda x: float(fn(np.float64(x)))  # noqa: E731
    return _Bounds.of(f(a.lo), f(a.hi), f(a.mag))


def _bounds(node: ast.AST, comp: "_Compiler", found: list[str]) -> _Bounds:
    """The enclosure of a checked subexpression; a division whose denominator is not bounded away from 0
    (``mag < DENOMINATOR_FLOOR``) is appended to ``found``."""
    c, _ = comp.build(node)
    if c is not None:
        return _Bounds.of(c, c, abs(c))
    if isinstance(node, ast.Name):
        return _Bounds(-math.inf, math.inf, 0.0)
    if isinstance(node, ast.UnaryOp):
        a = _bounds(node.operand, comp, found)
        return a if isinstance(node.op, ast.UAdd) else _Bounds(-a.hi, -a.lo, a.mag)
    if isinstance(node, ast.Call):
        a, name = _bounds(node.args[0], comp, found), node.func.id
        if name.startswith("he"):
            return _hermite_bounds(int(name[2:]), a)
        if name == "relu":
            return _Bounds.of(max(a.lo, 0.0), max(a.hi, 0.0))
        if name == "sign":
            return _Bounds.of(-1.0 if a.lo < 0 else 1.0, 1.0 if a.hi >= 0 else -1.0, 1.0)
        return _monotone(TEACHER_FUNCTIONS[name], a)
    a, b = _bounds(node.left, comp, found), _bounds(node.right, comp, found)
    if isinstance(node.op, (ast.Add, ast.Sub)):
        b = b if isinstance(node.op, ast.Add) else _Bounds(-b.hi, -b.lo, b.mag)
        lo, hi = a.lo + b.lo, a.hi + b.hi
        return _Bounds.of(-math.inf if math.isnan(lo) else lo, math.inf if math.isnan(hi) else hi)
    if isinstance(node.op, ast.Mult):
        return _times(a, b)
    if isinstance(node.op, ast.Pow):
        return _power(a, int(comp.build(node.right)[0]))
    if b.mag < DENOMINATOR_FLOOR:  # a / b
        found.append(ast.unparse(node.right))
        return _Bounds(-math.inf, math.inf, 0.0)
    big = max(abs(b.lo), abs(b.hi))
    return _times(a, _Bounds.of(-1.0 / b.mag if b.lo < 0 else 1.0 / big if b.lo > 0 else 0.0,
                                1.0 / b.mag if b.hi > 0 else -1.0 / big, 1.0 / big if big < math.inf else 0.0))


def finite_variance_problem(text: str, kstar: int) -> str | None:
    """Why the label ``y = g(r*) + noise eps`` of the link ``text`` may have an infinite variance, or None.

    The rule (sufficient, conservative): every denominator must stay away from 0 on all of R^k*,
    ``|h(z)| >= DENOMINATOR_FLOOR`` (1e-6) as bounded by interval arithmetic over the vocabulary. The
    reasoning: without division every link of the vocabulary is bounded by a polynomial in |z|
    (polynomials, He_n, relu <= |x|; tanh, erf, sign bounded), so all its Gaussian moments are finite;
    ``a / h`` with ``|h| >= m > 0`` is bounded by ``|a| / m``, so the bound survives every division whose
    denominator stays away from 0. A denominator that reaches 0 on a set the Gaussian charges near it
    makes a pole: ``1 / z1`` has ``E[y^2] = int phi(z) / z^2 dz = inf`` (so do ``1 / z1^2``, ``z1 / z2``,
    ``1 / (z1 - 1)``, ``1 / (z1^2 + z2^2)``), and one that only comes within ``eps`` of 0 makes the variance
    of order ``eps^(-3/2)`` (``1 / (eps + z1^2)``: past 1e9 at the floor). Interval bounds are not sharp,
    so a few finite links are refused too (``z1^2 / z1``; ``1 / (1 + tanh(z1))``, which only tends to 0 as
    ``z1 -> -inf``; ``1 / (z1^2 - 2 z1 + 2)``: write ``1 / (1 + (z1 - 1)^2)``). No exponent of a variable can
    be negative or fractional (the parser's rule), so there is no other source of a pole or of a tail
    heavier than a polynomial's.
    """
    comp = _Compiler(text, int(kstar), "problem.teacher")
    tree = ast.parse(text.replace("^", "**").strip(), mode="eval")
    found: list[str] = []
    _bounds(tree.body, comp, found)
    if not found:
        return None
    return (f"the denominator '{found[0]}' is not bounded away from 0 (|h| >= {DENOMINATOR_FLOOR:g} everywhere is "
            f"required): near its zeros the label is unbounded and E[y^2] is infinite (a pole is not square-"
            f"integrable under the Gaussian); use a denominator that stays away from 0, e.g. 1 + z1^2 or 2 + tanh(z1)")


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
