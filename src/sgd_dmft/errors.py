"""The package's exceptions: one base, classified by ``isinstance``.

* :class:`ConfigError`: invalid input (a config key, a parameter of a law, a grid); the message is
  one line naming the key, the value and what is allowed. CLI exit status 2.
* :class:`Diverged`: a run that blew up (:class:`SolverDiverged`, :class:`SimulationDiverged`) or a
  result holding NaN / inf (:class:`NonFiniteResult`). CLI exit status 3. Never written as a result.
* :class:`MemoryLimitExceeded`, :class:`CostLimitExceeded`: a run refused before it starts because
  its memory or cost estimate exceeds the budget. CLI exit status 2.

All are ``ValueError`` subclasses too, so code written against the earlier ``ValueError``-based
exceptions keeps working. :class:`SgdDmftDeprecationWarning` marks a deprecated name or argument of the
package (its message names the replacement; the tests turn it into an error).
"""

from __future__ import annotations

import difflib
from typing import Iterable


def did_you_mean(word: object, options: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for the option closest to a misspelt ``word`` (case-insensitive: ``'SGD'`` ->
    ``'sgd'``), or '' if none is close (or ``word`` is no string)."""
    if not isinstance(word, str):
        return ""
    low = {o.lower(): o for o in options}
    hit = low.get(word.strip().lower())
    if hit is None:
        close = difflib.get_close_matches(word.strip().lower(), list(low), n=1, cutoff=0.6)
        hit = low[close[0]] if close else None
    return f" (did you mean '{hit}'?)" if hit is not None else ""


class SgdDmftDeprecationWarning(DeprecationWarning):
    """A deprecated name or argument of sgd-dmft; the message names what replaces it."""


class SgdDmftError(Exception):
    """Base class of every error raised on purpose by sgd-dmft."""


class ConfigError(SgdDmftError, ValueError):
    """An invalid configuration or parameter (one-line message naming the key, the value and what is
    allowed). ``key``: the parameter's name where known (e.g. ``"dt"``, ``"dynamics.dt"``)."""

    def __init__(self, message: str, key: str | None = None):
        super().__init__(message)
        self.key = key


class Diverged(SgdDmftError, ValueError):
    """A run blew up (NaN, overflow, past a stability edge) or produced a non-finite result."""


class SolverDiverged(Diverged):
    """The DMFT solution blew up (NaN/overflow), e.g. past a stability edge in gamma."""


class SimulationDiverged(Diverged):
    """The iterates of a finite-d simulation became non-finite or exploded (``Q > 1e12``)."""


class NonFiniteResult(Diverged):
    """A dataset holds NaN or infinite values (diverged or half-computed): it is never written."""


class MemoryLimitExceeded(SgdDmftError, ValueError):
    """The estimated memory of a run exceeds ``max_memory_gb`` (a refusal: CLI exit status 2)."""

    exit_status = 2


class CostLimitExceeded(SgdDmftError, ValueError):
    """The estimated cost of a run (multiply-adds) exceeds the limit; the CLI's ``--force`` lifts it
    (a refusal: CLI exit status 2)."""

    exit_status = 2
