"""Finite label variance: every denominator of a teacher link bounded away from 0
(:func:`finite_variance_problem`, by interval arithmetic over the ``problem.teacher`` vocabulary).

Re-exported by :mod:`.teachers` (the names' earlier home).
"""

from __future__ import annotations

import ast
import math
from typing import Callable, NamedTuple

import numpy as np

from .teacher_parser import HERMITE, TEACHER_FUNCTIONS, TeacherCompiler

__all__ = ["finite_variance_problem", "DENOMINATOR_FLOOR"]

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


def _bounds(node: ast.AST, comp: "TeacherCompiler", found: list[str]) -> _Bounds:
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
    comp = TeacherCompiler(text, int(kstar), "problem.teacher")
    tree = ast.parse(text.replace("^", "**").strip(), mode="eval")
    found: list[str] = []
    _bounds(tree.body, comp, found)
    if not found:
        return None
    return (f"the denominator '{found[0]}' is not bounded away from 0 (|h| >= {DENOMINATOR_FLOOR:g} everywhere is "
            f"required): near its zeros the label is unbounded and E[y^2] is infinite (a pole is not square-"
            f"integrable under the Gaussian); use a denominator that stays away from 0, e.g. 1 + z1^2 or 2 + tanh(z1)")
