"""Is the chosen response estimator right for the model? And how noisy will it be?

* :func:`check_estimator` (called by ``solve`` right after the process is chosen): pathwise tangents
  differentiate ``F`` through ``hess`` and so miss the Dirac mass of a kink (docs/theory.md section
  3). A custom model whose smoothness probe (:mod:`sgd_dmft.models.probe`) finds a kink, or that
  declares one (``smooth=False``), is refused with one line naming the fix. A custom model declared
  ``smooth=True`` against the probe runs, with a warning (the declared flag wins: the escape hatch
  for a false alarm). A preset declaring a kink (relu committee) with pathwise tangents asked for
  explicitly warns (the package knows its presets; its tests measure the bias this way).
* :func:`expected_stderr_note`: a one-line note of the standard error to expect from Gaussian
  integration by parts under GD / GF (full batch: every path contributes at every step, and the
  responses' noise accumulates over steps), for a run's printed plan.
"""

from __future__ import annotations

import warnings

from ..errors import ConfigError
from ..models.base import CustomModel
from ..models.probe import ModelProbeWarning
from .responses import GaussianIBP, PathwiseTangents

__all__ = ["check_estimator", "expected_stderr_note", "kink_evidence", "IBP_GD_STDERR_C", "IBP_GD_STDERR_C_STEP1",
           "IBP_GD_STDERR_C_Q", "IBP_GD_STDERR_C_TEST"]

# s.e. * sqrt(paths) of Gaussian integration by parts under GD (dimensionless), measured on the
# Dandi et al. 2024 multi-index case of tests/test_kinks.py (delta 3, GD step 0.2, relu student k = 2,
# 1.6M paths in 16 replicas, two seeds): worst entry of M 0.34-0.35 after one step, 0.98-1.07 after 6;
# worst entry of Q 1.7, test loss 0.22 after 6 (pathwise tangents on the same model: M 1.4, Q 0.56).
IBP_GD_STDERR_C = 1.0
IBP_GD_STDERR_C_STEP1 = 0.35
IBP_GD_STDERR_C_Q = 1.7
IBP_GD_STDERR_C_TEST = 0.22
IBP_GD_STEPS_MEASURED = 6
_FIX = "leave the estimator to the solver (process=None) or pass process=MonteCarlo(responses=GaussianIBP())"


def kink_evidence(model) -> str | None:
    """Why ``model`` has a kink in ``grad`` (one phrase), or None when it has none that we know of.

    Custom models: the probe's report (made at construction) or a declared ``smooth=False``. Presets: their declared ``smooth`` flag (activations carry their own)."""
    if isinstance(model, CustomModel):
        report = model.probe  # None only where the probe could not run and smooth was declared
        if report is not None and report.kinked:
            return f"the smoothness probe finds {report.describe()}"
        return None if model.smooth else "it is declared smooth=False"
    return None if model.smooth else f"preset {model.name} declares a kink (smooth=False)"


def check_estimator(problem, process) -> None:
    """Refuse (ConfigError, key ``"responses"``) pathwise tangents on a custom model with a kink.

    ``problem``: the :class:`~sgd_dmft.models.Problem`; ``process``: the resolved sample process
    (``choose_process``). Returns None when the estimator is right (exact path, integration by
    parts, or a smooth model); warns :class:`~sgd_dmft.models.probe.ModelProbeWarning` where the
    user's declared flag or explicit request overrides the evidence (see the module docstring)."""
    responses = getattr(process, "responses", None)
    if not getattr(process, "monte_carlo", False) or not isinstance(responses, PathwiseTangents):
        return
    model = problem.model
    why = kink_evidence(model)
    if why is None:
        return
    if isinstance(model, CustomModel) and not model.smooth:
        raise ConfigError(f"responses=pathwise is not allowed for model={model.name}: {why}, and pathwise "
                          f"tangents miss its Dirac mass (wrong curves); {_FIX}", key="responses")
    warnings.warn(f"responses=pathwise on model={model.name}: {why}; pathwise tangents miss the Dirac mass "
                  f"of the kink (biased curves); {_FIX}", ModelProbeWarning, stacklevel=3)


def expected_stderr_note(problem, process, law) -> str | None:
    """A one-line note on the noise of Gaussian integration by parts under GD / GF, or None.

    ``problem``: the Problem; ``process``: the resolved sample process; ``law``: the step law. Only
    integration by parts (``GaussianIBP``) with a deterministic full-batch law (``law.deterministic``:
    GD, GF) gets a note: s.e. of the overlaps ``M`` ~ ``c / sqrt(paths)`` with ``c`` measured (module
    constants, dimensionless) on the Dandi et al. multi-index case, growing with the number of steps.
    """
    if not getattr(process, "monte_carlo", False) or not isinstance(getattr(process, "responses", None),
                                                                     GaussianIBP):
        return None
    if not getattr(law, "deterministic", False):
        return None
    c = IBP_GD_STDERR_C
    return (f"integration by parts with {law.name.upper()}: expect s.e.(M) ~ {c:g} / sqrt(paths) after "
            f"{IBP_GD_STEPS_MEASURED} steps ({IBP_GD_STDERR_C_STEP1:g} after one, growing with the steps; "
            f"s.e.(Q) ~ {IBP_GD_STDERR_C_Q:g}, s.e.(test loss) ~ {IBP_GD_STDERR_C_TEST:g} / sqrt(paths); "
            f"measured on a relu multi-index model): ~{(c / 4e-4) ** 2 / 1e6:.1f}M paths for s.e.(M) 4e-4")
