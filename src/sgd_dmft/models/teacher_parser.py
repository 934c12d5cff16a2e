"""The parser of teacher links: the ``problem.teacher`` vocabulary (:mod:`.teachers`' docstring) checked node
by node on Python's :mod:`ast` and compiled to a tree of numpy functions (:func:`parse_teacher`), and the
polynomial degree of a link (:func:`teacher_degree`).

Re-exported by :mod:`.teachers` (the names' earlier home).
"""

from __future__ import annotations

import ast
import math
import operator
from functools import lru_cache
from typing import Callable

import numpy as np
from numpy.typing import NDArray

from ..errors import ConfigError
from .activations import get_activation

Array = NDArray[np.float64]
Node = Callable[[Array], Array]

__all__ = ["parse_teacher", "teacher_degree", "TeacherCompiler", "HERMITE", "TEACHER_FUNCTIONS", "ALLOWED",
           "MAX_LENGTH"]

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


class TeacherCompiler:
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
    comp = TeacherCompiler(text, int(kstar), key)
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


@lru_cache(maxsize=64)
def teacher_degree(text: str) -> float:
    """The polynomial degree of a valid link text (``inf`` for tanh, erf, relu, sign of a variable)."""
    try:
        return _degree(ast.parse(text.replace("^", "**").strip(), mode="eval").body)
    except (ValueError, SyntaxError, TypeError):
        return math.inf
