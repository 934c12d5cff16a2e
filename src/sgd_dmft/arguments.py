"""Argument checks of the Python API entries (``dmft.solve``, ``simulate``, ``solve_online``, ``Problem``).

Every entry checks its arguments before it computes anything and raises
:class:`~sgd_dmft.errors.ConfigError` (``key`` = the parameter's name) with one line naming the
parameter, the value and what is allowed, the way a configuration is checked (config.py):

* a number is any real number: Python ``int`` / ``float`` and numpy scalars (``np.float32(0.5)``,
  ``np.int64(3)``), finite; not a bool, not a string (``"1000"``), not None;
* an integer is an ``int`` or a numpy integer (not a bool, not a float such as ``20.0``);
* a seed is an integer >= 0 (numpy's SeedSequence refuses negative entropy) or a SeedSequence;
* ``problem`` must be a :class:`~sgd_dmft.models.Problem` and ``law`` a :class:`~sgd_dmft.laws.Law`:
  a model name such as ``"logistic"`` is refused with the call that builds one.

Only :mod:`.errors` is imported at module scope, so models/ and laws.py can use these checks.
"""

from __future__ import annotations

import functools
import inspect
import math
import numbers
from typing import Any, Callable

from .errors import ConfigError

__all__ = ["check_paths", "number", "integer", "seed", "flag", "kernels", "problem", "law", "optional", "rule", "checked", "SOLVE"]


def _describe(lo: float | None, hi: float | None, lo_open: bool, hi_open: bool) -> str:
    parts = []
    fmt = lambda v: str(v) if isinstance(v, int) else f"{v:g}"  # noqa: E731  (2^53 as digits, 0.5 as 0.5)
    if lo is not None:
        parts.append(f"{'>' if lo_open else '>='} {fmt(lo)}")
    if hi is not None:
        parts.append(f"{'<' if hi_open else '<='} {fmt(hi)}")
    return " and ".join(parts)


def _in_range(v: float, lo, hi, lo_open: bool, hi_open: bool) -> bool:
    if lo is not None and not (v > lo if lo_open else v >= lo):
        return False
    return hi is None or (v < hi if hi_open else v <= hi)


def number(name: str, value: Any, lo: float | None = None, hi: float | None = None, *, lo_open: bool = False,
           hi_open: bool = False, finite: bool = True, key: str | None = None) -> float:
    """``value`` as a float: a real number (numpy scalars included; not a bool or a string), finite
    (unless ``finite=False``: then +inf passes the range check, NaN never does), within ``[lo, hi]``
    (open ends with ``lo_open`` / ``hi_open``). ``key``: the error's key (default ``name``)."""
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and type(value).__name__ != "bool_"
    v = math.nan
    if ok:
        try:
            v = float(value)
        except (OverflowError, ValueError, TypeError):  # an integer beyond the float range
            ok = False
    ok = ok and not math.isnan(v) and (math.isfinite(v) or not finite) and _in_range(v, lo, hi, lo_open, hi_open)
    if not ok:
        rng = _describe(lo, hi, lo_open, hi_open)
        what = ("a finite number" if finite else "a number (not NaN)") + (f" {rng}" if rng else "")
        raise ConfigError(f"{name}={value!r} is not allowed: must be {what}{_typed(value)}", key=key or name)
    return v


def integer(name: str, value: Any, lo: int | None = None, hi: int | None = None) -> int:
    """``value`` as an int: a Python or numpy integer (not a bool, not a float), within ``[lo, hi]``."""
    ok = isinstance(value, numbers.Integral) and not isinstance(value, bool) and type(value).__name__ != "bool_"
    if not (ok and _in_range(int(value), lo, hi, False, False)):
        rng = _describe(lo, hi, False, False)
        raise ConfigError(f"{name}={value!r} is not allowed: must be an integer{' ' + rng if rng else ''}"
                          f"{_typed(value)}", key=name)
    return int(value)


def _typed(value: Any) -> str:
    """`` (got a str)`` where the type is what is wrong (a string, None, a bool, a float for an integer)."""
    if isinstance(value, (numbers.Number,)) and not isinstance(value, bool):
        return ""
    return f" (got {type(value).__name__})"


def seed(name: str, value: Any):
    """A seed: an integer >= 0 (returned as int) or a ``numpy.random.SeedSequence`` (returned as is)."""
    import numpy as np

    if isinstance(value, np.random.SeedSequence):
        return value
    ok = isinstance(value, numbers.Integral) and not isinstance(value, bool) and int(value) >= 0
    if not ok:
        raise ConfigError(f"{name}={value!r} is not allowed: must be an integer >= 0 or a numpy SeedSequence"
                          f"{_typed(value)}", key=name)
    return int(value)


def flag(name: str, value: Any, allow_none: bool = False) -> bool | None:
    """A bool (numpy's too); None only where ``allow_none`` (the entry then chooses)."""
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or type(value).__name__ == "bool_":
        return bool(value)
    raise ConfigError(f"{name}={value!r} is not allowed: must be True or False{' or None' if allow_none else ''}",
                      key=name)


def kernels(name: str, value: Any) -> bool | int:
    """Which two-time kernels to keep: a bool (all or none), or an integer >= 2 (at most that many times per
    axis, every stride-th)."""
    if isinstance(value, bool) or type(value).__name__ == "bool_":
        return bool(value)
    if isinstance(value, numbers.Integral) and int(value) >= 2:
        return int(value)
    raise ConfigError(f"{name}={value!r} is not allowed: must be True, False or an integer >= 2 (at most that many "
                      f"kernel times per axis){_typed(value)}", key=name)


def problem(value: Any):
    """``value`` if it is a :class:`~sgd_dmft.models.Problem` (a model name or a Model is refused with
    the call that builds a Problem)."""
    from .models import Model, Problem

    if isinstance(value, Problem):
        return value
    hint = ""
    if isinstance(value, str):
        hint = f": build one, e.g. Problem(make_model({value!r}), delta=2.0, ridge=0.1)"
    elif isinstance(value, Model):
        hint = ": wrap the model, e.g. Problem(model, delta=2.0, ridge=0.1)"
    raise ConfigError(f"problem={_short(value)} is not allowed: must be a sgd_dmft.Problem (model, delta, ridge, "
                      f"initialisation){hint}", key="problem")


def law(value: Any):
    """``value`` if it is a step-multiplier law of :mod:`sgd_dmft.laws` (a name is refused)."""
    from .laws import Law

    if isinstance(value, Law):
        return value
    hint = f": build one, e.g. laws.make_law({value!r}, dt=0.01, gamma=0.5)" if isinstance(value, str) else ""
    raise ConfigError(f"law={_short(value)} is not allowed: must be a sgd_dmft.laws.Law (laws.SGD(dt, gamma), "
                      f"laws.GD(dt), ...){hint}", key="law")


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def optional(check, name: str, value: Any, *args, **kw):
    """None, or ``check(name, value, *args, **kw)``."""
    return None if value is None else check(name, value, *args, **kw)


def check_paths(paths: int, replicas: int, paths_key: str = "paths", replicas_key: str = "replicas") -> None:
    """Monte Carlo paths are split over the replicas: ``paths >= 2 * replicas`` (ConfigError naming
    ``paths_key``): the rule of ``solver.paths`` (config.py); ``solve``'s check (dmft/driver.py) is the same
    rule for Monte Carlo solves (an exact-path solve takes any paths)."""
    if int(paths) < 2 * int(replicas):
        raise ConfigError(f"{paths_key} = {paths}: must be >= 2 * {replicas_key} = {2 * int(replicas)} "
                          f"(the paths are split over the replicas)", key=paths_key)


# ---- rules of whole signatures: @checked(RULES) checks and normalises the arguments of a call ----
Rule = Callable[[str, Any], Any]


def rule(check, *args, none: bool = False, **kw) -> Rule:
    """A rule ``(name, value) -> value``: ``check(name, value, *args, **kw)`` (None passes if ``none``)."""
    return lambda name, value: (None if none and value is None else check(name, value, *args, **kw))


def checked(rules: dict[str, Rule]):
    """Decorator: the function's arguments named in ``rules`` are checked and replaced by what their rule
    returns (floats, ints) before the call; the signature stays the function's (``functools.wraps``)."""
    def decorate(fn):
        sig = inspect.signature(fn)

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            bound = sig.bind(*args, **kwargs)
            bound.apply_defaults()
            for name, check in rules.items():
                bound.arguments[name] = check(name, bound.arguments[name])
            return fn(*bound.args, **bound.kwargs)
        return wrapper
    return decorate


POSITIVE = rule(number, 0.0, lo_open=True)
SOLVE: dict[str, Rule] = dict(
    problem=lambda name, v: problem(v), law=lambda name, v: law(v), t_max=POSITIVE,
    paths=rule(integer, 1, 2**53), replicas=rule(integer, 1, 2**53), seed=seed,
    max_memory_gb=rule(number, 0.0, lo_open=True, finite=False),  # inf: no budget; NaN never
    snapshots=rule(integer, 0, 10**6), progress=flag, keep_kernels=kernels, rao_blackwell=rule(flag, True),
    blas_threads=rule(integer, 1, none=True), workers=rule(integer, 0), extrapolate=rule(flag, True),
    rtol=rule(number, 0.0, lo_open=True, none=True), max_time_s=rule(number, 0.0, lo_open=True, none=True),
    tail=rule(number, 0.0, 1.0), response_window=rule(number, 0.0, lo_open=True, none=True))
"""The rules of :func:`sgd_dmft.dmft.solve` (replicas >= 2 for Monte Carlo is solve's own check)."""
