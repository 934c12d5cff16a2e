"""The growing Cholesky factor's jitter on covariances of (numerically) low rank (dmft/cholesky.py).

A long GD / GF run has smooth fields: ``w_m`` is nearly a function of its past and ``Cov(r*, w_0..w_m)`` has
numerical rank ~8, while the coordinate recursion computes it to ``~eps`` times its norm, so it has negative
eigenvalues of a few ``eps tr``. With a jitter of only ``1e-12`` of the new field's variance, those passed the
jitter after ~900-1200 steps (logistic GF to t = 100 at dt_max 0.08: "a sample path escaped" at t ~ 64-88):
the Schur complements turned negative and grew until a path escaped. The jitter now has a floor of
``ROUNDING eps sqrt(blocks) tr(cov)``."""

import numpy as np
import pytest

from sgd_dmft import laws
from sgd_dmft.dmft import cholesky, solve
from sgd_dmft.dmft.processes import MonteCarlo
from sgd_dmft.dmft.responses import PathwiseTangents
from sgd_dmft.errors import SolverDiverged
from sgd_dmft.problem import Problem, logistic

EPS = np.finfo(float).eps


def _smooth_covariance(n: int, neg: float, seed: int = 0) -> np.ndarray:
    """``Cov(r*, w_0..w_{n-1})`` of a converging flow (``w(t) = a_0 + sum_j a_j exp(-t / tau_j)``, rank 8) with
    one eigenvalue ``-neg eps tr`` in its null space: the rounding of a recursion that computes it."""
    rng = np.random.default_rng(seed)
    t = np.linspace(0.0, 100.0, n)
    Phi = np.column_stack([np.ones(n)] + [np.exp(-t / tau) for tau in (0.5, 1, 2, 4, 8, 16, 32)])
    G = np.zeros((n + 1, Phi.shape[1] + 1))
    G[0, 0], G[1:, 0], G[1:, 1:] = 1.0, 0.8, Phi
    B = G @ (0.5 * rng.standard_normal((G.shape[1], G.shape[1])))
    u = rng.standard_normal(n + 1)
    u -= B @ np.linalg.lstsq(B, u, rcond=None)[0]
    u /= np.linalg.norm(u)
    C = B @ B.T
    return C - neg * EPS * np.trace(C) * np.outer(u, u)


def test_low_rank_covariance_with_rounding_keeps_every_field_variance():
    """Before the floor the 1000-step factor blew up (a sampled field's variance inf instead of C[m, m])."""
    n = 1000
    C = _smooth_covariance(n, neg=6.0)  # -6 eps tr: measured at ~870 steps of a logistic GF
    ch = cholesky.GrowingCholesky(n + 1, C[:1, :1])
    worst = 0.0
    for m in range(1, n + 1):
        ch.extend(m, C[m : m + 1, :m], C[m : m + 1, m : m + 1])
        worst = max(worst, abs(float(ch.L[m, : m + 1] @ ch.L[m, : m + 1]) / C[m, m] - 1.0))
    assert worst < 1e-8
    assert ch.clip < 1e-8


def test_short_runs_keep_the_fixed_jitter():
    """Up to 100 steps of equal variances the floor stays below the fixed jitter (their numbers unchanged)."""
    assert cholesky.ROUNDING * EPS * np.sqrt(101) * 101 < cholesky.JITTER


@pytest.mark.parametrize("rounding", [0.0, cholesky.ROUNDING])
def test_gf_march_on_a_low_rank_covariance(monkeypatch, rounding):
    """The march-level failure in 195 steps: a 1000x smaller fixed jitter (1e-15) is passed at t ~ 0.5 without
    the floor (the old rule: "a sample path escaped"); with the floor the run is fine."""
    monkeypatch.setattr(cholesky, "JITTER", 1e-15)
    monkeypatch.setattr(cholesky, "ROUNDING", rounding)
    prob = Problem(logistic(), delta=2.0, ridge=0.1, init_scale=0.5)
    law = laws.GF(0.02, growth=0.02, dt_max=0.08)
    kw = dict(t_max=10.0, paths=128, replicas=2, extrapolate=False, keep_kernels=False,
              process=MonteCarlo(responses=PathwiseTangents()))
    if rounding == 0.0:
        with pytest.raises(SolverDiverged, match="escaped") as info:
            solve(prob, law, **kw)
        assert "lost positive definiteness" in str(info.value) and "lower dt_max" not in str(info.value)
    else:
        ds = solve(prob, law, **kw)
        assert np.all(np.isfinite(ds.test_loss)) and float(ds.test_loss[-1]) < 0.5


def test_a_failed_tail_retry_reports_the_first_error(monkeypatch):
    """The same failure with the solver's own choice of process: its retry with tail paths (integration by
    parts, noisy on a deterministic law) diverges too, and the error raised is the first run's, the retry's a
    note on it (before: the retry's own error, at an earlier time than the user's run failed)."""
    monkeypatch.setattr(cholesky, "JITTER", 1e-15)
    monkeypatch.setattr(cholesky, "ROUNDING", 0.0)
    prob = Problem(logistic(), delta=2.0, ridge=0.1, init_scale=0.5)
    with pytest.raises(SolverDiverged, match="escaped") as info:
        solve(prob, laws.GF(0.02, growth=0.02, dt_max=0.08), t_max=10.0, paths=128, replicas=2, extrapolate=False,
              keep_kernels=False)
    notes = getattr(info.value, "__notes__", [])
    assert any("tail=" in n and "diverged too" in n for n in notes), notes
