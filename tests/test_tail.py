"""Tail paths: integration by parts conditional on r* for the paths whose visit map expands.

docs/theory.md section 3c. A sample whose label the student cannot fit stably (phase retrieval with
``y > 1 / (2 gamma)``) runs a chaotic orbit: its pathwise tangent grows like ``|1 - 2 gamma y| ^ visits``
and one such path in a replica drives the kernels away, while its integration-by-parts term stays
bounded. ``PathwiseTangents(tail=q)`` uses integration by parts at fixed ``r*`` on the paths with the
largest ``|r*|`` (probability ``q``); the conditional identity makes the mixture unbiased.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import chi2

from sgd_dmft import laws
from sgd_dmft.dmft import solve
from sgd_dmft.dmft.march import march
from sgd_dmft.dmft.processes import Inputs, MonteCarlo
from sgd_dmft.dmft.responses import PathwiseTangents, tail_paths
from sgd_dmft.errors import SolverDiverged
from sgd_dmft.models.presets import logistic, phase_retrieval
from sgd_dmft.models.problem import Problem


@pytest.mark.parametrize("ks", [1, 2, 3])
def test_tail_partition_has_the_requested_mass(ks):
    """The fixed chi-square threshold selects each path with probability ``tail`` (binomial, 5 s.e.)."""
    rng = np.random.default_rng(ks)
    n, q = 200_000, 0.02
    frac = tail_paths(rng.standard_normal((n, ks)), q).mean()
    assert abs(frac - q) < 5 * np.sqrt(q * (1 - q) / n)
    assert not tail_paths(np.zeros((3, ks)), q).any() and tail_paths(np.zeros((3, ks)), 1.0).all()
    with pytest.raises(ValueError, match="tail"):
        PathwiseTangents(tail=1.5)
    assert chi2.isf(q, ks) > 0


def test_tail_estimator_is_unbiased():
    """Tangents on every path and integration by parts on every path (at fixed r*) estimate the same
    kernels: logistic SGD curves agree within 4 combined standard errors (common random numbers)."""
    prob = Problem(logistic(), delta=2.0, ridge=0.1, init_scale=0.5, init_overlap=0.3)
    law = laws.SGD(0.05, 0.5)
    out = {}
    for tail in (0.0, 1.0):
        out[tail] = solve(prob, law, t_max=1.5, paths=8000, replicas=4, seed=3, extrapolate=False,
                          process=MonteCarlo(responses=PathwiseTangents(tail=tail)), keep_kernels=False)
    a, b = out[0.0], out[1.0]
    for var in ("test_loss", "train_loss"):
        se = np.hypot(a[f"{var}_stderr"].values, b[f"{var}_stderr"].values)[1:]
        z = np.abs(a[var].values - b[var].values)[1:] / se
        assert z.max() < 4.0, (var, z.max())
    # and they are different estimators (not the same numbers by accident)
    assert np.abs(a.test_loss.values - b.test_loss.values)[1:].max() > 0


def _planted(problem, law, schedule, P, seed, rstar0):
    """A replica's random inputs with path 0's teacher field set to ``rstar0`` (S* = I, so r* = Z[0])."""
    inp = MonteCarlo.draw(problem, schedule, P, np.random.default_rng(seed), law)
    Z = inp.Z.copy()
    Z[0, 0] = rstar0
    return Inputs(Z, inp.eps, inp.S)


def test_chaotic_path_runs_away_with_tangents_not_with_tail():
    """Phase retrieval, SGD gamma = 0.05: a sample with y = 18 (between 1/(2 gamma) = 10 and 1/gamma = 20)
    has a bounded chaotic orbit. Planted in a replica of 4000 paths it blows the tangent estimator up;
    with tail = 0.01 the replica stays within 0.05 of the same replica without the planted path."""
    prob = Problem(phase_retrieval(), delta=3.0, ridge=0.0, init_scale=0.3, init_overlap=0.3)
    law = laws.SGD(0.01, 0.05)
    sched = law.schedule(1.0)
    P, snap = 4000, np.array([0])

    def trace_q_end(tail, rstar0=None):
        proc = MonteCarlo(responses=PathwiseTangents(tail=tail)).resolve(prob, law)
        inputs = _planted(prob, law, sched, P, 1, rstar0) if rstar0 is not None else \
            MonteCarlo.draw(prob, sched, P, np.random.default_rng(1), law)
        K, _, _ = march(prob, law, sched, proc, P, None, snap, inputs=inputs)
        return float(K.C[-1, -1])

    with pytest.raises(SolverDiverged):
        trace_q_end(0.0, np.sqrt(18.0))
    base = trace_q_end(0.01)
    assert np.isfinite(base)
    assert abs(trace_q_end(0.01, np.sqrt(18.0)) - base) < 0.05


def test_escaping_path_is_reported():
    """y = 30 > 1/gamma: the orbit escapes (the d = infinity limit diverges once such samples occur):
    the solve raises SolverDiverged, never returns."""
    prob = Problem(phase_retrieval(), delta=3.0, ridge=0.0, init_scale=0.3, init_overlap=0.3)
    law = laws.SGD(0.01, 0.05)
    sched = law.schedule(2.0)
    proc = MonteCarlo(responses=PathwiseTangents(tail=0.01)).resolve(prob, law)
    with pytest.raises(SolverDiverged, match="diverged"):
        march(prob, law, sched, proc, 2000, None, np.array([0]), inputs=_planted(prob, law, sched, 2000, 2, np.sqrt(30.0)))


def test_tail_from_config():
    """``solver.tail``: checked (one-line error naming the key), passed to the solver, recorded in attrs."""
    from sgd_dmft.config import parse_config
    from sgd_dmft.errors import ConfigError
    from sgd_dmft.run import run_theory

    base = {"problem": {"model": "phase_retrieval", "delta": 3.0, "init_overlap": 0.3, "init_scale": 0.3},
            "dynamics": {"algorithm": "sgd", "gamma": 0.05, "dt": 0.02, "t_max": 0.2},
            "solver": {"paths": 400, "replicas": 2, "extrapolate": False}}
    with pytest.raises(ConfigError, match=r"solver\.tail.*1\.5.*\[0, 1\]"):
        parse_config({**base, "solver": {**base["solver"], "tail": 1.5}})
    ds = run_theory(parse_config({**base, "solver": {**base["solver"], "tail": 0.05}}))
    assert ds.attrs["tail"] == 0.05 and ds.attrs["responses"] == "pathwise"
    assert np.all(np.isfinite(ds.test_loss.values))


@pytest.mark.parametrize("gamma", [0.02, 0.05, 0.1])
def test_visit_map_escapes_exactly_past_one_over_gamma(gamma):
    """The single-sample visit map g(r) = r (1 - 2 gamma (r^2 - y)) from near its fitted point stays in
    |r| <= sqrt(y + 1/gamma) for y < 1/gamma and escapes for y > 1/gamma (theory.md 3c)."""
    def orbit_max(y, n=20000):
        r, top = np.sqrt(y) * (1 + 1e-6), 0.0
        for _ in range(n):
            r = r * (1 - 2 * gamma * (r * r - y))
            top = max(top, abs(r))
            if top > 1e6:
                break
        return top

    for y in (0.3 / gamma, 0.8 / gamma, 0.98 / gamma):
        assert orbit_max(y) <= np.sqrt(y + 1 / gamma) * (1 + 1e-9)
    for y in (1.05 / gamma, 1.5 / gamma):
        assert orbit_max(y) > 1e6


def test_escaping_labels_refused_up_front_and_warned():
    """Phase retrieval under SGD: P(y > 1/gamma) > 1e-4 is refused by solver and simulator alike, with
    the key to lower; a smaller but positive escape probability is a warning."""
    from sgd_dmft.config import parse_config
    from sgd_dmft.errors import SimulationDiverged
    from sgd_dmft.run import run_simulation
    from sgd_dmft.stability import escape_probability

    prob = Problem(phase_retrieval(), delta=3.0, ridge=0.0, init_scale=0.3, init_overlap=0.3)
    assert escape_probability(prob, 0.1) == pytest.approx(chi2.sf(10.0, 1), rel=1e-12)
    with pytest.raises(SolverDiverged, match=r"y > 1/gamma = 10.*lower dynamics.gamma below 0.066"):
        solve(prob, laws.SGD(0.01, 0.1), t_max=0.5, paths=400, replicas=2)
    cfg = parse_config({"problem": {"model": "phase_retrieval", "delta": 3.0, "init_overlap": 0.3, "init_scale": 0.3},
                        "dynamics": {"algorithm": "sgd", "gamma": 0.1, "dt": 0.01, "t_max": 0.5},
                        "simulation": {"d": 100, "seeds": 1}})
    with pytest.raises(SimulationDiverged, match="escapes"):
        run_simulation(cfg)
    with pytest.warns(RuntimeWarning, match="escapes for labels y > 1/gamma = 20"):
        solve(prob, laws.SGD(0.01, 0.05), t_max=0.1, paths=400, replicas=2, extrapolate=False)
    assert escape_probability(Problem(logistic(), delta=2.0), 0.5) == 0.0
