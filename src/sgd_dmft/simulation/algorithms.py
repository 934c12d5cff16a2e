"""The algorithms a finite-d simulation runs, as small frozen objects with one method: ``run``.

Conventions (docs/conventions.md; docs/theory.md sections 1 and 5): sum loss with ridge
``lambda |theta_j|^2 / 2``, so ``grad L = X^T F(X theta, y) + lambda theta`` with ``X`` ``(n, d)``,
``theta`` ``(d, k)``, ``F = d loss / d r`` ``(n, k)``; time is gradient-flow time (one epoch of SGD lasts
``gamma``); record ``m = 0`` is the initial condition.

:class:`LawRecursion` ``(law)``
    the per-sample multiplier recursion that the DMFT solves at d = infinity (the solver's own
    ``law`` argument: GD / gradient flow, SME, Bernoulli SGD, reshuffling, persistent),
    ``theta_{m+1} = (1 - dt_m lambda) theta_m - sum_i x_i F(r_{i,m}, y_i)^T S_{i,m}`` with
    ``r_{i,m} = x_i^T theta_m`` and ``S = law.sample(rng, n, T)``, recorded on the law's grid before
    the update of step m.
:class:`MiniBatchSGD` ``(gamma, batch)``
    ``kappa = batch`` samples drawn uniformly without replacement inside a batch, independently
    across steps; ``eta = gamma kappa / n``, ``theta <- theta - eta ((n / kappa) sum_{i in B} x_i F_i^T
    + lambda theta)``; time ``K eta`` after K steps; grid time ``t_m`` is recorded after step
    ``round(t_m / eta)``.
:class:`Reshuffling` ``(gamma, batch)``
    each epoch a fresh permutation of the n samples is cut into consecutive batches of kappa (the
    last one smaller when kappa does not divide n); a step over B lasts ``gamma |B| / n``, so one
    epoch lasts gamma; ``t_m`` is recorded at the batch boundary nearest to it.
:class:`OnlineSGD` ``(gamma, batch)``
    one-pass SGD: kappa fresh samples at every step, ``eta = gamma kappa / n`` with
    ``n = round(delta d)`` setting only the time scale; no training set (``train_loss`` is NaN).

Each object validates its own parameters on construction (:class:`~sgd_dmft.errors.ConfigError`
naming the parameter); the law validates itself against its grid (laws.py, grid.py).

The interface is in :mod:`.algorithm_base`, :class:`LawRecursion` in :mod:`.law_recursion`, the step
algorithms in :mod:`.sgd_steps`; all are re-exported here (their earlier home).
"""

from __future__ import annotations

from .algorithm_base import Algorithm, Batches  # noqa: F401  (re-exported)
from .law_recursion import LawRecursion, law_step  # noqa: F401  (re-exported)
from .sgd_steps import BatchSchedule, MiniBatchSGD, OnlineSGD, Reshuffling, SGDSteps  # noqa: F401  (re-exported)

__all__ = ["Algorithm", "LawRecursion", "law_step", "BatchSchedule", "MiniBatchSGD", "Reshuffling", "OnlineSGD"]
