"""What a solve is asked for, as one typed object: ``solve(problem, law, t_max=, options=TheoryOptions(...))``.

:class:`TheoryOptions` holds every option of :func:`~sgd_dmft.dmft.solve` but the sample process (``process=``,
an object already: the estimator, its tail, ``MonteCarlo(responses=PathwiseTangents(tail=0.05))``) and the
progress bar; the limit is an object too: :class:`Richardson` (the ``dt -> 0`` limit, extrapolate.py) or
:class:`Raw` (the recursion at ``dt``), None letting the law decide (continuous-time laws: Richardson). The
keyword numbers of ``solve`` (``paths=``, ``extrapolate=True``, ...) build the same object
(:meth:`TheoryOptions.from_flags`); the two are not mixed in one call. ``response_window`` stays an option (a
time, like ``t_max``): the window of the pathwise tangents where the solver chooses the process.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, fields
from typing import Any, ClassVar

from .. import defaults as _defaults
from ..arguments import SOLVE, flag
from ..errors import ConfigError, SgdDmftDeprecationWarning

__all__ = ["Richardson", "Raw", "Limit", "TheoryOptions", "limit", "deprecated_process_flags"]


@dataclass(frozen=True)
class Richardson:
    """The continuous-time limit ``dt -> 0``: Richardson extrapolation over the levels ``dt, 2 dt, 4 dt``
    (or ``dt/2, dt, 2 dt``; extrapolate.py), with an error estimate; for continuous-time laws only."""

    extrapolate: ClassVar[bool] = True


@dataclass(frozen=True)
class Raw:
    """The raw recursion at the law's grid step ``dt`` (no extrapolation)."""

    extrapolate: ClassVar[bool] = False


Limit = Richardson | Raw


def limit(value: Any, name: str = "extrapolate") -> Limit | None:
    """``value`` as a limit object: True -> :class:`Richardson`, False -> :class:`Raw`, None stays None (the law
    decides), a limit object stays itself."""
    if value is None or isinstance(value, (Richardson, Raw)):
        return value
    return Richardson() if flag(name, value) else Raw()


@dataclass(frozen=True)
class TheoryOptions:
    """The options of a DMFT solve (:func:`~sgd_dmft.dmft.solve` documents each), validated and normalised
    on construction by the rules of the keyword flags (``arguments.SOLVE``: one-line ConfigError naming the
    field). ``extrapolate``: :class:`Richardson`, :class:`Raw`, or None (the law decides; a bool is accepted
    and converted). Units: ``max_memory_gb`` GiB, ``max_time_s`` seconds, ``response_window`` time t."""

    paths: int = _defaults.PATHS
    replicas: int = _defaults.REPLICAS
    seed: Any = _defaults.SEED  # an int >= 0 or a numpy SeedSequence
    max_memory_gb: float = _defaults.MAX_MEMORY_GB
    workers: int = 1
    extrapolate: Limit | None = None
    rtol: float | None = None
    max_time_s: float | None = None
    response_window: float | None = None
    keep_kernels: bool | int = True
    snapshots: int = 5
    blas_threads: int | None = 1

    FIELDS: ClassVar[tuple[str, ...]] = ("paths", "replicas", "seed", "max_memory_gb", "workers", "extrapolate", "rtol",
                                         "max_time_s", "response_window", "keep_kernels", "snapshots", "blas_threads")

    def __post_init__(self):
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "extrapolate":
                value = limit(value)
            elif f.name in SOLVE:
                value = SOLVE[f.name](f.name, value)
            object.__setattr__(self, f.name, value)

    @property
    def richardson(self) -> bool | None:
        """The limit as the solver's flag: True (Richardson), False (raw), None (the law decides)."""
        return None if self.extrapolate is None else self.extrapolate.extrapolate

    @classmethod
    def from_flags(cls, **flags: Any) -> "TheoryOptions":
        """The options the keyword flags of ``solve`` stand for (names as the fields)."""
        return cls(**flags)

    @classmethod
    def merge(cls, options: "TheoryOptions | None", flags: dict[str, Any]) -> "TheoryOptions":
        """``options``, or the flags' options where it is None; a flag set away from its default beside
        ``options`` is refused (ConfigError naming it): one call says each option once."""
        if options is None:
            return cls.from_flags(**flags)
        if not isinstance(options, TheoryOptions):
            raise ConfigError(f"options={options!r} is not allowed: must be a sgd_dmft.dmft.TheoryOptions or None",
                              key="options")
        default = cls()
        for name, value in flags.items():
            if value is not getattr(default, name) and value != getattr(default, name):
                raise ConfigError(f"{name}={value!r} is not allowed beside options=: set it in the TheoryOptions "
                                  f"(options.{name})", key=name)
        return options


def deprecated_process_flags(responses: str = "auto", rao_blackwell: bool | None = None, tail: float = 0.0) -> None:
    """SgdDmftDeprecationWarning for ``solve``'s flags that choose the Monte Carlo estimator, where set: they
    are thin aliases of the sample process ``solve`` takes as ``process=``, named in the message (attributed
    to the caller of ``solve``)."""
    given = {k: v for k, v, default in (("responses", responses, "auto"), ("rao_blackwell", rao_blackwell, None),
                                        ("tail", tail, 0.0)) if v != default}
    if not given:
        return
    args = ", ".join(f"{k}={v!r}" for k, v in given.items() if k != "responses")
    est = "GaussianIBP()" if responses == "stein" else f"PathwiseTangents({args})"
    warnings.warn(f"solve({', '.join(f'{k}={v!r}' for k, v in given.items())}) is deprecated: pass "
                  f"process=MonteCarlo(responses={est}) (sgd_dmft.dmft)", SgdDmftDeprecationWarning, stacklevel=4)
