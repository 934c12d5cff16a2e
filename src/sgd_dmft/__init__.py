"""sgd-dmft: exact high-dimensional learning curves of multi-pass SGD, SME and gradient flow.

Implements the dynamical mean-field theory (DMFT) of Fan & Wang (arXiv:2601.21093) for
multi-index teacher-student models, and finite-d simulators to check it against. The same
specification (a :class:`Problem` and a step-multiplier :mod:`law <sgd_dmft.laws>`) drives both::

    from sgd_dmft import Problem, make_model, laws, solve
    from sgd_dmft.simulate import simulate
    prob = Problem(make_model("logistic"), delta=2.0, ridge=0.1, init_scale=0.5)
    law = laws.SGD(dt=0.01, gamma=0.5)                 # visits at rate 1/gamma, time t = steps * eta
    theory = solve(prob, law, t_max=4.0, paths=8000)   # d = infinity, with Monte Carlo s.e.
    sim = simulate(prob, "sgd", t_max=4.0, dt=0.01, d=2000, gamma=0.5, batch=1, seeds=8)

``solve`` returns the continuous-time limit (dt -> 0) for GF, SGD, SME, reshuffling and persistent
selection, with its error estimate (``<var>_dt_error``); ``extrapolate=False`` gives the raw grid
recursion. Conventions (x ~ N(0, I/d), sum loss, time = gradient-flow time): docs/conventions.md;
derivation: docs/theory.md; layout: docs/architecture.md.
"""

from ._version import __version__  # noqa: E402
from . import laws  # noqa: E402
from .errors import (  # noqa: E402
    ConfigError, CostLimitExceeded, Diverged, MemoryLimitExceeded, NonFiniteResult, SgdDmftError, SimulationDiverged,
    SolverDiverged,
)
from .grid import TimeGrid  # noqa: E402
from .models import Model, Problem, custom, make_model, population_loss  # noqa: E402


def __getattr__(name: str):
    # heavy modules (numba kernels, xarray) load on first use
    if name in ("solve", "estimate_memory", "MonteCarlo", "ExactLinearPath"):
        from . import dmft

        return getattr(dmft, name)
    if name == "solve_online":
        from .online import solve_online

        return solve_online
    if name in ("gf_linear", "gd_linear", "sgd_linear_poisson"):
        from . import exact

        return getattr(exact, name)
    if name == "from_arrays":
        from .curves import from_arrays

        return from_arrays
    if name in ("discrepancy", "seeds_needed"):
        from . import results

        return getattr(results, name)
    if name in ("load_config", "parse_config", "Config"):
        from . import config

        return getattr(config, name)
    raise AttributeError(f"module 'sgd_dmft' has no attribute {name!r}")


__all__ = [
    "__version__", "laws", "TimeGrid", "Model", "Problem", "custom", "make_model", "population_loss", "solve",
    "MonteCarlo", "ExactLinearPath", "estimate_memory", "solve_online", "gf_linear", "gd_linear",
    "sgd_linear_poisson", "load_config", "parse_config", "Config", "from_arrays", "discrepancy",
    "seeds_needed", "SgdDmftError", "ConfigError", "Diverged",
    "SolverDiverged", "SimulationDiverged", "NonFiniteResult", "MemoryLimitExceeded", "CostLimitExceeded",
]
