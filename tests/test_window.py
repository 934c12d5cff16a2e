"""Pathwise tangents on a window of the past (``solve(response_window=)``, ``solver.response_window``):
``R_F[t, s] = 0`` for ``t - s`` beyond the window, work and memory linear in the horizon. The solve
states the relative error this causes (``response_window_error``, from R_F's decay over the window's
oldest fifth); here it is checked against the dense solve on the same random numbers."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from sgd_dmft import dmft, laws
from sgd_dmft import problem as P
from sgd_dmft.dmft import planning

LOGI = P.Problem(P.logistic(), delta=2.0, ridge=0.1, init_scale=0.5)
COMMITTEE = P.Problem(P.committee(2, 2, "erf", 0.1), delta=2.0, ridge=0.05, init_scale=0.5, init_overlap=0.3)


def _solve(prob, law, window, t_max=20.0, share=1.0):
    """Tangents on every path (``share`` 1) unless asked: the window's own error, on the dense solve's paths."""
    proc = dmft.MonteCarlo(responses=dmft.PathwiseTangents(window=window, share=share))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return dmft.solve(prob, law, t_max=t_max, paths=1000, replicas=2, seed=1, extrapolate=False, process=proc)


@pytest.mark.parametrize("case", ["logistic-sgd", "committee-sgd", "logistic-sme"])
def test_windowed_solve_is_within_its_stated_error_of_the_dense_one(case):
    """Measured (t <= 30, windows 5-20, 12 cases): worst relative change of the losses 0.2-2.0x the share of
    R_F cut (the stated error is 2.5x it)."""
    prob, law = {"logistic-sgd": (LOGI, laws.SGD(0.04, 0.5)), "committee-sgd": (COMMITTEE, laws.SGD(0.04, 0.5)),
                 "logistic-sme": (LOGI, laws.SME(0.04, 0.5))}[case]
    dense = _solve(prob, law, None)
    for window in (5.0, 10.0):
        w = _solve(prob, law, window)
        err = w.attrs["response_window_error"]
        assert w.attrs["response_window"] == window and 0 < err < 0.2
        for v in ("train_loss", "test_loss"):
            rel = np.max(np.abs(w[v].values - dense[v].values) / np.abs(dense[v].values))
            assert rel <= err, f"{case} window {window} {v}: {rel:.2e} > stated {err:.2e}"
    # R_F is zero beyond the window (10 time units = 250 steps), the same as the dense one on short rows
    RF, RFd = w.R_F.values[:, :, 0, 0], dense.R_F.values[:, :, 0, 0]
    assert np.all(RF[400, :150] == 0) and np.abs(RFd[400, :150]).max() > 0 and np.abs(RF[400, 151:401]).max() > 0
    np.testing.assert_allclose(RF[:200, :200], RFd[:200, :200], rtol=1e-4, atol=1e-9)


def test_window_longer_than_the_horizon_is_the_dense_solve():
    law = laws.SGD(0.04, 0.5)
    dense, w = _solve(LOGI, law, None, 4.0), _solve(LOGI, law, 10.0, 4.0)
    for v in ("train_loss", "test_loss", "Q"):
        np.testing.assert_allclose(w[v].values, dense[v].values, rtol=1e-5)
    assert w.attrs["response_window_error"] == 0.0


def test_a_short_window_warns():
    with pytest.warns(RuntimeWarning, match="response_window"):
        dmft.solve(LOGI, laws.SGD(0.04, 0.5), t_max=10.0, paths=400, replicas=2, extrapolate=False,
                   keep_kernels=False, response_window=1.0)


def test_window_cuts_the_store_and_the_work():
    """The planner's store and work of a windowed solve grow linearly with the horizon."""
    law = laws.SGD(0.02, 0.5)
    mems, tang = [], []
    for t_max in (50.0, 100.0):
        proc = dmft.choose_process(LOGI, law, window=10.0)
        V, width = planning.window_store(law, t_max, 1000, 10.0)
        assert width == 501 and V < 0.2 * width
        mems.append(planning.estimate_memory(LOGI, law, t_max, 1000, 1, False, proc)
                    - planning.estimate_memory(LOGI, law, t_max, 1000, 1, False, dmft.choose_process(LOGI, law)))
        tang.append(planning.work(LOGI, law, t_max, 1000, proc)["tangents_window"])
    assert mems[0] < 0 and mems[1] < mems[0]  # the windowed store is smaller, more so at the longer horizon
    assert 1.8 < tang[1] / tang[0] < 2.2  # linear in the horizon (the dense store: ~8x)


def test_long_run_refusal_and_plan_suggest_the_window():
    """Logistic SGD over 1000 epochs with tangents over the whole past: the cost refusal names
    solver.response_window and what it would take; with the window the estimate is many times smaller."""
    from sgd_dmft.config import parse_config
    from sgd_dmft.errors import CostLimitExceeded
    from sgd_dmft.run import check_theory, compress, experiment, window_hint

    base = {"problem": {"model": "logistic", "delta": 2.0, "ridge": 0.1, "init_scale": 0.5},
            "dynamics": {"algorithm": "sgd", "gamma": 0.5, "dt": 0.01, "growth": 0.02, "dt_max": 0.125, "t_max": 500.0},
            "solver": {"compress": "off"}}  # (the default 'auto' sets the window itself: tests/test_compress.py)
    exp = experiment(parse_config(base))
    with pytest.raises(CostLimitExceeded, match="solver.response_window = 30"):
        check_theory(exp, True)
    whole = planning.estimate_seconds(exp.problem, exp.law, 500.0, 8000, 8, extrapolate=True)
    assert "would take" in window_hint(exp, True, whole)
    windowed = experiment(parse_config({**base, "solver": {"response_window": 30.0, "compress": "off"}}))
    cost = check_theory(windowed, True)  # within the limit: not refused
    assert cost / planning.RATE < whole / 10 and window_hint(windowed, True, cost / planning.RATE) == ""
    auto = compress(experiment(parse_config({**base, "solver": {}})))
    assert auto.config.solver["response_window"] == 30.0 and "response_window = 30" in auto.compressed


def test_a_windowed_dense_law_carries_tangents_on_a_share_of_its_paths():
    """A long GF / GD / SME run (windowed, dense) estimates R_F from the first quarter of each replica's paths
    (at least 256), scaled to all of them: the same curves within their errors, the planner's tangent work and
    store cut to that share. (Logistic GF to t = 100, 8000 paths: 5x faster, stated s.e. 1.0-1.2x.)"""
    law = laws.GD(0.05)
    assert dmft.choose_process(LOGI, law, window=5.0).responses.share == 0.25
    assert dmft.choose_process(LOGI, law).responses.share == 1.0  # no window: a short run, every path
    assert dmft.choose_process(LOGI, laws.SGD(0.05, 0.5), window=5.0).responses.share == 1.0  # sparse: cheap
    resp = dmft.choose_process(LOGI, law, window=5.0).responses
    assert [resp.tangent_paths(P) for P in (100, 500, 1000, 4000)] == [100, 256, 256, 1000]
    with pytest.raises(ValueError, match="share"):
        dmft.PathwiseTangents(share=0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # the short window's own error (not what is tested here)
        full, part = (dmft.solve(LOGI, law, t_max=8.0, paths=2000, replicas=4, seed=3, extrapolate=False,
                                 process=dmft.MonteCarlo(responses=dmft.PathwiseTangents(window=4.0, share=s)))
                      for s in (1.0, None))
    for v in ("train_loss", "test_loss"):
        se = np.hypot(full[v + "_stderr"].values, part[v + "_stderr"].values)[1:]
        z = np.abs(part[v].values - full[v].values)[1:] / se
        assert z.max() < 3.0, f"{v}: share 1/4 is {z.max():.2f} s.e. from every path's tangents"
        assert 0.5 < np.median(part[v + "_stderr"].values[1:] / full[v + "_stderr"].values[1:]) < 3.0
    procs = [dmft.MonteCarlo(responses=dmft.PathwiseTangents(window=4.0, share=s)) for s in (1.0, None)]
    work = [planning.work(LOGI, law, 8.0, 1000, p)["tangents_window"] for p in procs]
    mem = [planning.estimate_memory(LOGI, law, 8.0, 1000, 1, False, p) for p in procs]
    assert work[1] == pytest.approx(work[0] * 256 / 1000) and mem[1] < mem[0]
