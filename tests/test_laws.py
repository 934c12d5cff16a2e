"""Every law's moments against its own samples, and the grid a law lives on (one parametrised set
of law cases, shared with other tests through ``LAW_CASES``)."""

from __future__ import annotations

import numpy as np
import pytest

from sgd_dmft import laws
from sgd_dmft.errors import ConfigError
from sgd_dmft.grid import TimeGrid

LAW_CASES = {
    "gd": laws.GD(0.05),
    "sgd": laws.SGD(0.05, 0.5),
    "sme": laws.SME(0.05, 0.5),
    "reshuffle": laws.Reshuffle(0.05, 0.5),
    "persistent": laws.Persistent(0.05, 0.4, 1.0),
    "gd-graded": laws.GD(0.02, growth=0.2, dt_max=0.3),
    "sgd-graded": laws.SGD(0.02, 0.5, growth=0.2, dt_max=0.1),
    "sme-graded": laws.SME(0.02, 0.5, growth=0.2, dt_max=0.1),
}


@pytest.mark.parametrize("name", list(LAW_CASES))
def test_moments_match_samples(name):
    """E[S_m] and E[S_m^2] per step from 200000 samples within 5 standard errors of ``moments()``."""
    law = LAW_CASES[name]
    n_steps, N = 30, 200_000
    S = law.sample(np.random.default_rng(1), N, n_steps)
    assert S.shape == (N, n_steps)
    m1, m2 = law.moments(n_steps)
    for k, want in ((1, m1), (2, m2)):
        x = S**k
        mean, se = x.mean(axis=0), x.std(axis=0, ddof=1) / np.sqrt(N)
        ok = (np.abs(mean - want) < 5 * se) | (np.abs(mean - want) <= 1e-9 * np.abs(want))  # deterministic: rounding of the mean
        assert np.all(ok), f"{name} E[S^{k}]: z = {np.round((mean - want) / se, 1)}"
    # every law matches gradient flow on average: E[S_m] = dt_m
    np.testing.assert_allclose(m1, law.steps(n_steps), rtol=1e-14)


@pytest.mark.parametrize("name", list(LAW_CASES))
def test_schedule_is_the_grid(name):
    """``schedule`` computes times, steps and moments once, consistently with the grid."""
    law = LAW_CASES[name]
    sch = law.schedule(2.0)
    assert sch.T == len(sch.times) - 1 == law.grid.n_steps(2.0)
    np.testing.assert_allclose(np.diff(sch.times), sch.steps[:-1], rtol=1e-12, atol=1e-15)
    m1, m2 = law.moments(sch.T + 1)
    np.testing.assert_array_equal(sch.mean, m1)
    np.testing.assert_array_equal(sch.second, m2)
    assert abs(sch.times[-1] - 2.0) <= 0.5 * law.grid.largest_step + 1e-12


def test_independence_over_steps():
    """Laws declared i.i.d. over steps have (empirically) uncorrelated multipliers; reshuffling and
    persistent selection are not declared so, and are correlated."""
    rng = np.random.default_rng(2)
    for name, law in LAW_CASES.items():
        S = law.sample(rng, 100_000, 12)
        c = 0.0 if law.deterministic else np.corrcoef(S[:, 3], S[:, 4])[0, 1]
        if law.independent_steps:
            assert abs(c) < 0.02, (name, c)
        else:
            assert abs(c) > 0.02, (name, c)


@pytest.mark.parametrize("bad, key", [
    (lambda: laws.SGD(0.6, 0.5), "dt"),
    (lambda: laws.SGD(0.01, 0.5, growth=0.1, dt_max=0.6), "dt_max"),
    (lambda: laws.Reshuffle(0.03, 0.5), "dt"),
    (lambda: laws.Reshuffle(0.05, 0.5, growth=0.1, dt_max=0.1), "growth"),
    (lambda: laws.Persistent(0.5, 0.5, 0.1), "tau"),
    (lambda: laws.Persistent(0.05, 1.5, 1.0), "b"),
    (lambda: laws.GD(-0.1), "dt"),
    (lambda: laws.GD(float("nan")), "dt"),
    (lambda: laws.GD(0.1, growth=-1.0), "growth"),
    (lambda: laws.GD(0.1, growth=0.1, dt_max=0.05), "dt_max"),
    (lambda: TimeGrid(0.0), "dt"),
])
def test_bad_parameters_name_the_key(bad, key):
    with pytest.raises(ConfigError) as e:
        bad()
    assert e.value.key == key
    assert "\n" not in str(e.value) and key.split("_")[0] in str(e.value)


def test_jump_size():
    assert LAW_CASES["sgd"].jump_size == 0.5 and LAW_CASES["reshuffle"].jump_size == 0.5
    assert LAW_CASES["gd"].jump_size is None and LAW_CASES["sme"].jump_size is None


@pytest.mark.parametrize("name", ["gd", "sgd", "sme", "reshuffle", "persistent"])
def test_coarsen_has_the_coarse_law_and_is_coupled(name):
    """``law.coarsen`` maps multipliers at dt to multipliers at 2 dt with exactly the law of
    ``with_step(2)`` (moments per step, and for the jump laws the visit structure), correlated with
    the fine ones (common random numbers for Richardson extrapolation)."""
    fine = LAW_CASES[name].with_step(0.5)
    coarse_law = fine.with_step(2.0)
    T, N = 12, 200_000
    rng = np.random.default_rng(3)
    Sf = fine.sample(rng, N, 2 * T + 1)
    Sc = fine.coarsen(Sf, rng)
    assert Sc.shape == (N, T + 1)
    ref = coarse_law.sample(np.random.default_rng(4), N, T + 1)
    for k in (1, 2):
        a, b = (Sc[:, :T] ** k), (ref[:, :T] ** k)
        se = np.sqrt(a.var(0) / N + b.var(0) / N) + 1e-12 * np.abs(b.mean(0))
        assert np.all(np.abs(a.mean(0) - b.mean(0)) < 5 * se + 1e-9 * np.abs(b.mean(0))), (name, k)
    if name == "reshuffle":  # one visit per epoch window of the coarse grid
        q = coarse_law.steps_per_epoch
        counts = (Sc[:, : (T // q) * q] != 0).reshape(N, -1, q).sum(axis=2)
        assert np.all(counts == 1)
    if name == "persistent":  # a Markov chain: its one-step moves (on -> on, off -> on) as the coarse law's
        for X, Y in ((Sc, ref), (Sc[:, ::-1], ref[:, ::-1])):
            a, b = X[:, :T] != 0, Y[:, :T] != 0
            for prev, nxt in ((True, True), (False, True)):
                fa = ((a[:, :-1] == prev) & (a[:, 1:] == nxt)).sum() / (a[:, :-1] == prev).sum()
                fb = ((b[:, :-1] == prev) & (b[:, 1:] == nxt)).sum() / (b[:, :-1] == prev).sum()
                se = np.sqrt(fb * (1 - fb) / ((b[:, :-1] == prev).sum()))
                assert abs(fa - fb) < 5 * np.sqrt(2) * se, (prev, nxt, fa, fb)
    if not fine.deterministic:
        c = np.corrcoef(Sc[:, 2], Sf[:, 4] + Sf[:, 5])[0, 1]
        assert c > 0.5, c


@pytest.mark.parametrize("law", [laws.SGD(0.02, 0.5, growth=0.2, dt_max=0.1), laws.SME(0.02, 0.5, growth=0.2, dt_max=0.1),
                                 laws.Persistent(0.02, 0.4, 0.5, growth=0.2, dt_max=0.1)], ids=["sgd", "sme", "persistent"])
def test_graded_coarsen_has_the_merged_law(law):
    """On nested graded grids (``refined``) the pair coupling gives the law of the merged steps: the
    visit probability / moments per step of ``law.refined(-1)`` from ``law`` (unequal pairs included)."""
    T, N = 10, 200_000
    rng = np.random.default_rng(3)
    Sf = law.sample(rng, N, 2 * T + 1)
    Sc = law.coarsen(Sf, rng)
    ref = law.refined(-1).sample(np.random.default_rng(4), N, T + 1)
    for k in (1, 2):
        a, b = Sc[:, :T] ** k, ref[:, :T] ** k
        se = np.sqrt(a.var(0) / N + b.var(0) / N) + 1e-12
        assert np.all(np.abs(a.mean(0) - b.mean(0)) < 5 * se), (k, a.mean(0), b.mean(0))
    a, b = Sc[:, :T] != 0, ref[:, :T] != 0  # and the time structure: joint visits of consecutive steps
    fa, fb = (a[:, 1:] & a[:, :-1]).mean(0), (b[:, 1:] & b[:, :-1]).mean(0)
    assert np.all(np.abs(fa - fb) < 5 * np.sqrt(2 * fb * (1 - fb) / N) + 1e-12)


def test_coarsen_refuses_where_no_exact_coupling():
    assert laws.SGD(0.3, 0.5).coarsen(np.zeros((3, 5)), np.random.default_rng(0)) is None  # 2 dt > gamma
