"""``solver.compress = 'auto'`` for gradient flow, full-batch GD and the SME: no jumps ``gamma`` to cap a graded
grid's steps by, so the cap comes from an upper bound on the empirical risk's Hessian (the model's
``hessian_bound``: sup of the loss's curvature times the Marchenko-Pastur edge ``(1 + sqrt delta)^2``, plus the
ridge); the coarsest Richardson level ``4 dt_max`` stays below the explicit step's edge. A compressed GD is
answered by its ``dt -> 0`` limit with the distance of a GD recursion from it in ``dt_error``."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from sgd_dmft import compression, dmft, laws, run, stability
from sgd_dmft import problem as P
from sgd_dmft.config import ConfigError, parse_config
from sgd_dmft.models.presets import two_layer

BASE = {"problem": {"model": "logistic", "delta": 2.0, "ridge": 0.1, "init_scale": 0.5},
        "dynamics": {"algorithm": "gf", "gamma": 0.5, "dt": 0.01, "t_max": 3.0}}


def _cfg(alg="gf", t_max=3.0, problem=None, **solver):
    return parse_config({"problem": problem or BASE["problem"],
                         "dynamics": {**BASE["dynamics"], "algorithm": alg, "t_max": t_max}, "solver": solver})


def _exp(alg="gf", t_max=3.0, problem=None, **solver):
    return run.compress(run.experiment(_cfg(alg, t_max, problem, **solver)))


def test_hessian_bounds_per_model():
    mp = (1 + math.sqrt(2.0)) ** 2  # Marchenko-Pastur edge of X^T X, x ~ N(0, I/d), n = 2 d
    assert P.linear().hessian_bound(2.0) == pytest.approx(P.linear().hessian_edge(2.0)) == pytest.approx(mp)
    assert P.logistic().hessian_bound(2.0) == pytest.approx(mp / 4)
    tanh = two_layer(2, 1, "tanh", loss="logistic")  # 1/4 |a|^2 sup s'^2 + sup |l'| max |a| sup |s''|
    assert tanh.curvature_bound == pytest.approx(0.25 * 0.5 + 0.5 * 4 / (3 * math.sqrt(3)))
    assert two_layer(2, 1, "linear").curvature_bound == pytest.approx(0.5)  # square loss, s'' = 0: |a|^2
    for unbounded in (P.phase_retrieval(), P.committee(2, 2, "erf"), two_layer(2, 1, "tanh"),
                      two_layer(2, 1, "relu", loss="logistic")):
        assert unbounded.hessian_bound(2.0) is None


def test_the_curvature_bounds_hold_at_random_points():
    rng = np.random.default_rng(0)
    for model in (P.logistic(), two_layer(2, 1, "tanh", loss="logistic"), two_layer(3, 1, "erf", loss="logistic")):
        r = 3.0 * rng.standard_normal((20000, model.k))
        y = np.where(rng.random(20000) < 0.5, 1.0, -1.0)
        norms = np.linalg.norm(model.hess(r, y), ord=2, axis=(-2, -1))
        assert norms.max() <= model.curvature_bound
        assert norms.max() > (0.99 if model.k == 1 else 0.3) * model.curvature_bound  # (logistic: attained at r = 0)


def test_long_gf_gd_and_sme_runs_are_graded_up_to_the_bound_cap():
    """Logistic, delta 2, ridge 0.1: lambda <= (1 + sqrt 2)^2 / 4 + 0.1 = 1.557; the 4 dt_max level at 80 % of
    2 / lambda (dt_max 0.25), past 5 min on one core at its edge (0.32; measured at t = 1000: docs/notes.md)."""
    edge = stability.risk_edge_bound(run.experiment(_cfg()).problem)
    for alg in ("gf", "gd", "sme"):
        mid, long = _exp(alg, 50.0), _exp(alg, 1000.0)
        assert mid.law.graded and mid.law.growth == compression.LONG_GROWTH and mid.law.dt_max == 0.25
        assert long.law.dt_max == 0.32 and long.config.solver["response_window"] == compression.LONG_WINDOW
        assert 4 * long.law.dt_max * edge < 2 <= 4 * 0.33 * edge  # the coarsest level below the edge
        assert "dynamics.dt_max = 0.32" in long.compressed
        limit = run.gd_limit(long)  # (run_theory: a compressed GD is answered by its dt -> 0 limit)
        assert ("GD at dt=0.01 answered by its dt -> 0 limit" in limit.compressed) == (alg == "gd")
        assert limit.extrapolate and limit.law.name == alg and limit.law.continuous_time
    assert not _exp("gf", 3.0).law.graded  # short: left alone


def test_off_user_keys_and_models_without_a_bound():
    assert not _exp("gf", 1000.0, compress="off").law.graded
    own = _exp("gf", 1000.0, response_window=50.0)
    assert own.config.solver["response_window"] == 50.0 and own.law.graded
    assert "dynamics.dt_max = 0.32" in run.window_hint(run.experiment(_cfg("gf", 1000.0, compress="off")), True, 1e4)
    phase = {"model": "phase_retrieval", "delta": 3.0, "init_scale": 0.3, "init_overlap": 0.3}
    exp = _exp("gf", 100.0, phase)  # (l'' = 6 r^2 - 2 y is unbounded)
    assert not exp.law.graded and "no bound on the Hessian" in compression.ungraded_note(exp)
    assert compression.ungraded_note(_exp("sgd", 100.0, phase)) == ""  # (jump laws: capped by gamma)


def test_the_coarsest_level_at_the_cap_is_stable_and_two_and_a_half_times_it_is_not():
    """Ridge 1 keeps the weights small, so the loss's curvature stays near its bound 1/4: GD at the coarsest
    level's step (4 dt_max, 80 % of the edge) converges; at 2.5x that step it oscillates with growing loss."""
    prob = P.Problem(P.logistic(), delta=2.0, ridge=1.0, init_scale=0.05)
    h = 4 * stability.graded_step_cap(prob, laws.GD(0.01), compression.STEP_SHARE)
    assert h * stability.risk_edge_bound(prob) == pytest.approx(2 * compression.STEP_SHARE)
    ok = dmft.solve(prob, laws.GD(h), t_max=40 * h, paths=2000, replicas=2, keep_kernels=False)
    loss = ok.train_loss.values
    assert np.all(np.isfinite(loss)) and abs(loss[-1] - loss[-2]) < 1e-5 * loss[-1]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # (an unstable run's curves are noisy)
        bad = dmft.solve(prob, laws.GD(2.5 * h), t_max=40 * 2.5 * h, paths=2000, replicas=2, keep_kernels=False)
    loss = bad.train_loss.values  # period two: 5.5, 2.8, 5.5 against 0.44
    assert abs(loss[-1] - loss[-2]) > 0.3 * loss[-1] and loss[-1] > 5 * ok.train_loss.values[-1]


@pytest.fixture
def eager(monkeypatch):
    """Compress from 1 ms on: a cheap run goes through the whole auto path."""
    monkeypatch.setattr(compression, "COMPRESS_AFTER_S", 0.001)


def _agree(auto, uniform):
    auto = auto.sel(time=auto.time <= uniform.time[-1])  # (the graded grid ends at its point nearest t_max)
    t = auto.time.values
    for v in ("train_loss", "test_loss"):
        ref = uniform[v].interp(time=t).values
        se = np.hypot(auto[f"{v}_stderr"].values, uniform[f"{v}_stderr"].interp(time=t).values)
        dte = auto[f"{v}_dt_error"].values + (uniform[f"{v}_dt_error"].interp(time=t).values
                                              if f"{v}_dt_error" in uniform else 0.0)
        gap = np.abs(auto[v].values - ref)
        assert np.all(gap <= 3 * se + dte + 1e-12), f"{v}: worst {np.max(gap / (3 * se + dte + 1e-12)):.2f}"


@pytest.mark.parametrize("alg", ["gf", "gd"])
def test_compressed_gf_and_gd_agree_with_the_uniform_grid_within_the_stated_errors(eager, alg):
    """dt 0.05 to t = 20: the graded steps reach the cap 0.25 at t = 12.5. GD: the limit on the graded grid, whose
    dt_error includes the GD recursion's distance from it, against GD at dt = 0.05 itself."""
    cfg = _cfg(alg, 20.0, paths=2000, replicas=4).with_overrides({"dynamics.dt": 0.05})
    said = []
    auto = run.run_theory(cfg, announce=said.append)
    uniform = run.run_theory(cfg.with_overrides({"solver.compress": "off"}))
    assert any(s.startswith("long run, compressed: dynamics.growth = 0.02, dynamics.dt_max = 0.25") for s in said)
    assert auto.attrs["dynamics.dt_max"] == 0.25 and auto.attrs["algorithm"] == alg
    assert auto.sizes["time"] < uniform.sizes["time"] / 2 and "compressed" not in uniform.attrs
    assert ("gd_limit" in auto.attrs) == (alg == "gd") and int(uniform.attrs["extrapolated"]) == (alg == "gf")
    if alg == "gd":  # the limit's error plus the graded recursion's distance from it
        raw = np.abs(auto["train_loss_raw"] - auto["train_loss"]).values
        assert np.all(auto["train_loss_dt_error"].values >= raw) and raw.max() > 0
    _agree(auto, uniform)


def test_sweep_points_share_the_smallest_cap():
    """A ridge x delta sweep of long GF runs: every point on the smallest cap (delta 4, ridge 0.5: its own
    coarsest level at the edge), so that the gathered curves share their times."""
    from sgd_dmft.sweep import build_grid

    g = build_grid(_cfg("gf", 1000.0), {"ridge": [0.1, 0.5], "delta": [2.0, 4.0]})
    caps = {c.dynamics["dt_max"] for c in g.configs}
    assert len(caps) == 1 and all(c.dynamics["growth"] == compression.LONG_GROWTH for c in g.configs)
    own = [compression.step_cap(e, e.law, very_long=True) for e in map(run.experiment, g.configs)]
    assert caps.pop() == min(own) < max(own)
    times = [run.compress(run.experiment(c)).law.times(1000.0) for c in g.configs]
    assert all(np.array_equal(t, times[0]) for t in times)


def test_a_compressed_gf_carries_tangents_on_a_quarter_of_its_paths():
    """The windowed GF of a long run: tangents on a quarter of the paths by default (solver.tangent_share = 0),
    on the share the key asks otherwise, handed to the solve; the attrs say what ran."""
    auto = _exp("gf", 1000.0)
    assert auto.config.solver["response_window"] and auto.process.responses.share == 0.25
    assert auto.given_process is None  # the solver's own choice (the same process)
    every = _exp("gf", 1000.0, tangent_share=1.0)
    assert every.process.responses.share == 1.0 and every.given_process is every.process
    assert _exp("gf", 3.0).process.responses.share == 1.0  # short: no window, every path
    with pytest.raises(ConfigError, match=r"solver\.tangent_share.*1\.5"):
        _cfg("gf", 3.0, tangent_share=1.5)
    said = []  # a window the user set: the plan says where the tangents run, the attrs what ran
    cfg = _cfg("gf", 2.0, paths=2000, replicas=2, response_window=5.0).with_overrides({"dynamics.dt": 0.05})
    ds = run.run_theory(cfg, announce=said.append)
    assert any(s.startswith("pathwise tangents on 256 of each replica's 1000 paths") for s in said), said
    assert ds.attrs["tangent_share"] == 0.25
