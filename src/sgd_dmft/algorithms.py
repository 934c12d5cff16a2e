"""The training algorithms by name: one registry that every question "which algorithm?" reads.

An :class:`AlgorithmSpec` says, for one ``dynamics.algorithm`` name, how its step-multiplier law is built
from the ``[dynamics]`` keys (:class:`LawArgs`), which finite-d algorithm simulates it, whether that
simulation is the continuous-time algorithm (so that the theory to compare with is the ``dt -> 0`` limit)
and whether an epoch lasts ``gamma`` units of t (the plots' epoch axis). The config's allowed values
(config_schema), the experiment's law and simulator (experiment.py), the string API of the simulators
(simulate.py) and the plots read it; nothing else branches on the name. Adding an algorithm is one class
(a :class:`~sgd_dmft.laws.Law` subclass, or a simulation :class:`~sgd_dmft.simulation.Algorithm`) and one
line::

    register(AlgorithmSpec("my_sgd", law=MySGD, params=("gamma",), epoch=True))

(``unregister("my_sgd")`` takes it back, e.g. at the end of a test).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

from . import laws
from .errors import ConfigError, did_you_mean
from .grid import TimeGrid

if TYPE_CHECKING:
    from .simulation import Algorithm

__all__ = ["AlgorithmSpec", "LawArgs", "REGISTRY", "register", "unregister", "spec", "names", "make_law"]


@dataclass(frozen=True)
class LawArgs:
    """The values of ``[dynamics]`` (and ``simulation.batch`` / ``batching``) an algorithm is built from:
    grid step ``dt``, step scale ``gamma``, the persistent law's ``b`` / ``tau``, the graded grid's ``growth`` /
    ``dt_max`` (None: no cap), the learning-rate schedule ``lr`` (None: constant)."""

    dt: float
    gamma: float = 1.0
    b: float = 0.5
    tau: float = 1.0
    growth: float = 0.0
    dt_max: float | None = None
    lr: laws.LRSchedule | None = None
    batch: int = 1
    batching: str = "uniform"

    @property
    def grid(self) -> TimeGrid:
        """The record grid ``TimeGrid(dt, growth, dt_max)`` (the step algorithms record on it)."""
        return TimeGrid(self.dt, self.growth, self.dt_max)


@dataclass(frozen=True)
class AlgorithmSpec:
    """One training algorithm (see the module docstring).

    ``law``: the :class:`~sgd_dmft.laws.Law` class, built as ``law(dt, *params, growth=, dt_max=, lr=)`` with
    ``params`` the :class:`LawArgs` fields it takes after ``dt`` (SGD: ``("gamma",)``); None: no step-multiplier
    law (one-pass SGD: fresh samples, no training set; its theory is the online ODEs, online.py).
    ``stepper``: the finite-d algorithm, ``stepper(gamma, batch, lr=)``, recording on the config's grid
    (true mini-batch SGD, reshuffling); None: the simulation runs the law's own recursion
    (:class:`~sgd_dmft.simulation.LawRecursion`, named ``recursion`` or the algorithm's name).
    ``bernoulli``: ``simulation.batching = 'bernoulli'`` simulates the law's recursion instead of the stepper
    (and the simulation records its batching). ``epoch``: one epoch lasts ``gamma`` units of t.
    """

    name: str
    law: type[laws.Law] | None
    params: tuple[str, ...] = ()
    stepper: Callable[..., Algorithm] | None = None
    bernoulli: bool = False
    recursion: str = ""
    epoch: bool = False

    def make_law(self, a: LawArgs) -> laws.Law:
        """The law of ``a`` (ConfigError naming the law's argument where it refuses a value)."""
        if self.law is None:
            raise ConfigError(f"algorithm={self.name!r} has no step-multiplier law (one-pass SGD: "
                              f"sgd_dmft.online.solve_online)", key="algorithm")
        return self.law(a.dt, *(getattr(a, p) for p in self.params), growth=a.growth, dt_max=a.dt_max, lr=a.lr)

    def runs_stepper(self, batching: str) -> bool:
        """Whether the simulation runs :attr:`stepper` (else the law's own recursion)."""
        return self.stepper is not None and not (self.bernoulli and batching == "bernoulli")

    def simulates_limit(self, batching: str) -> bool:
        """Whether the simulation is the continuous-time algorithm of the law (its stepper), so that the
        theory to compare it with is the ``dt -> 0`` limit rather than the raw recursion at ``dt``."""
        return self.law is not None and self.runs_stepper(batching)

    def simulator(self, a: LawArgs, law: laws.Law | None = None) -> tuple[Algorithm, TimeGrid | None]:
        """The simulated algorithm object and its record grid (None: the law's own): the stepper on
        ``a.grid``, or the recursion of ``law`` (default: built from ``a``; it reports ``a.gamma`` where the law
        has none)."""
        if self.runs_stepper(a.batching):
            return self.stepper(a.gamma, a.batch, lr=a.lr), a.grid
        from .simulation import LawRecursion

        law = self.make_law(a) if law is None else law
        gamma = None if hasattr(law, "gamma") else a.gamma  # reported: the law's own where it has one
        return LawRecursion(law, gamma=gamma, name=self.recursion or self.name), None


def _simulation(name: str) -> Callable[..., Any]:
    """The class ``name`` of :mod:`sgd_dmft.simulation`, imported when first called (the simulators load
    their kernels; importing the registry stays cheap)."""

    def build(*args: Any, **kw: Any) -> Any:
        from . import simulation

        return getattr(simulation, name)(*args, **kw)

    build.__name__ = build.__qualname__ = name
    return build


REGISTRY: dict[str, AlgorithmSpec] = {}


def register(s: AlgorithmSpec) -> AlgorithmSpec:
    """Add an algorithm (ValueError where the name is taken)."""
    if s.name in REGISTRY:
        raise ValueError(f"algorithm {s.name!r} is registered already")
    REGISTRY[s.name] = s
    return s


def unregister(name: str) -> None:
    """Remove a registered algorithm."""
    del REGISTRY[name]


def names() -> tuple[str, ...]:
    """The registered names, in registration order (the order of the "one of ..." messages)."""
    return tuple(REGISTRY)


def spec(name: str) -> AlgorithmSpec:
    """The spec of ``name`` (ConfigError naming ``algorithm``, with a did-you-mean, for an unknown one)."""
    try:
        return REGISTRY[name]
    except (KeyError, TypeError):
        raise ConfigError(f"algorithm={name!r} is not one of {names()}{did_you_mean(str(name), names())}",
                          key="algorithm") from None


def make_law(algorithm: str, dt: float, gamma: float = 1.0, b: float = 0.5, tau: float = 1.0,
             growth: float = 0.0, dt_max: float | None = None, lr: laws.LRSchedule | None = None) -> laws.Law:
    """Law for a named algorithm (``gf``/``gd`` -> ``S = dt``); ``growth``/``dt_max``: graded grid; ``lr``: a
    learning-rate schedule. ConfigError for an unknown name and for 'online' (no law)."""
    return spec(algorithm).make_law(LawArgs(dt, gamma, b, tau, growth, dt_max, lr))


# the built-in algorithms, in the order the config's messages list them
register(AlgorithmSpec("gf", laws.GF))
register(AlgorithmSpec("gd", laws.GD))
register(AlgorithmSpec("sgd", laws.SGD, ("gamma",), stepper=_simulation("MiniBatchSGD"), bernoulli=True, epoch=True))
register(AlgorithmSpec("sme", laws.SME, ("gamma",), epoch=True))
register(AlgorithmSpec("reshuffle", laws.Reshuffle, ("gamma",), stepper=_simulation("Reshuffling"), epoch=True))
register(AlgorithmSpec("online", None, stepper=_simulation("OnlineSGD")))
register(AlgorithmSpec("persistent", laws.Persistent, ("b", "tau"), recursion="law"))
