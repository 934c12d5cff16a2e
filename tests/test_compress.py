"""``solver.compress = 'auto'``: a long run gets a graded grid (and, if still long, a response window)
without the user asking; the plan, the attrs and the result's config say so, and the compressed curve
agrees with the uniform whole-past one within their stated errors (standard errors + dt errors)."""

from __future__ import annotations

import numpy as np
import pytest

from sgd_dmft import compression, run
from sgd_dmft.config import parse_config

BASE = {"problem": {"model": "logistic", "delta": 2.0, "ridge": 0.1, "init_scale": 0.5},
        "dynamics": {"algorithm": "sgd", "gamma": 0.5, "dt": 0.01, "t_max": 3.0}}


def _exp(t_max, **solver):
    cfg = parse_config({**BASE, "dynamics": {**BASE["dynamics"], "t_max": t_max}, "solver": solver})
    return run.compress(run.experiment(cfg))


def test_short_runs_are_left_alone():
    exp = _exp(3.0)
    assert exp.compressed == "" and not exp.law.graded and exp.config.solver["response_window"] == 0.0


def test_fifty_epochs_get_a_graded_grid_up_to_a_quarter_of_gamma():
    """The CLI defaults at 50 epochs (8000 paths, 8 replicas): estimated ~77 s on one core on the uniform grid,
    ~7 s graded (docs/notes.md: the measured times)."""
    exp = _exp(25.0)
    assert exp.law.graded and exp.law.dt_max == 0.125 and exp.law.growth == run.LONG_GROWTH
    assert exp.config.dynamics["growth"] == run.LONG_GROWTH and exp.config.solver["response_window"] == 0.0
    assert "dynamics.dt_max = 0.125" in exp.compressed and "instead of" in exp.compressed


def test_a_thousand_epochs_also_get_the_response_window_and_coarser_steps():
    """Past 5 min on one core even with the window, steps up to gamma / 2 (measured at 1000 epochs: 113 s,
    1.63 % against 346 s, 1.55 % with gamma / 4; docs/notes.md)."""
    exp = _exp(500.0)
    assert exp.law.graded and exp.config.solver["response_window"] == run.LONG_WINDOW
    assert "solver.response_window = 30" in exp.compressed and exp.law.dt_max == 0.25
    assert _exp(100.0).law.dt_max == 0.125  # (200 epochs: under 5 min with gamma / 4)


def test_off_and_user_keys_are_kept_and_the_hint_names_the_keys():
    off = _exp(25.0, compress="off")
    assert off.compressed == "" and not off.law.graded
    assert "dynamics.growth = 0.02" in run.window_hint(off, True, 77.0)
    own = _exp(500.0, response_window=50.0)  # the user's window stays; the grid is graded
    assert own.config.solver["response_window"] == 50.0 and own.law.graded


def test_laws_whose_grid_stays_uniform_are_not_graded():
    cfg = parse_config({**BASE, "dynamics": {**BASE["dynamics"], "algorithm": "reshuffle", "t_max": 100.0}})
    assert not run.compress(run.experiment(cfg)).law.graded  # (epochs need a uniform grid)


def test_no_grading_where_the_graded_grid_would_lose_the_limit():
    exp = _exp(25.0, extrapolate_graded=False)  # a graded grid would run its raw recursion
    assert not exp.law.graded


@pytest.fixture
def eager(monkeypatch):
    """Compress from 1 ms on: a cheap run goes through the whole auto path."""
    monkeypatch.setattr(compression, "COMPRESS_AFTER_S", 0.001)


def test_compressed_run_agrees_with_the_uniform_one_within_the_stated_errors(eager):
    over = {"dynamics.t_max": 8.0, "solver.paths": 2000, "solver.replicas": 4}
    cfg = parse_config(BASE).with_overrides(over)
    said = []
    auto = run.run_theory(cfg, announce=said.append)
    uniform = run.run_theory(cfg.with_overrides({"solver.compress": "off"}))
    assert any("long run, compressed" in s for s in said)
    assert "dynamics.growth" in auto.attrs["compressed"] and "compressed" not in uniform.attrs
    assert auto.attrs["dynamics.growth"] == run.LONG_GROWTH  # the result's config is what ran
    assert auto.sizes["time"] < uniform.sizes["time"] / 3
    auto = auto.sel(time=auto.time <= uniform.time[-1])  # (the graded grid ends at its point nearest t_max)
    t = auto.time.values
    for v in ("train_loss", "test_loss"):
        ref = uniform[v].interp(time=t).values
        se = np.hypot(auto[f"{v}_stderr"].values, uniform[f"{v}_stderr"].interp(time=t).values)
        dte = np.abs(auto[f"{v}_dt_error"].values) + np.abs(uniform[f"{v}_dt_error"].interp(time=t).values)
        gap = np.abs(auto[v].values - ref)
        assert np.all(gap <= 3 * se + dte + 1e-12), f"{v}: worst {np.max(gap / (3 * se + dte + 1e-12)):.2f}"


def test_a_simulation_alone_keeps_the_configured_records():
    cfg = parse_config({**BASE, "dynamics": {**BASE["dynamics"], "t_max": 25.0}})
    assert not run.experiment(cfg).law.graded and run.compress(run.experiment(cfg)).law.graded


def test_compare_records_the_simulation_on_the_compressed_grid(eager):
    cfg = parse_config({**BASE, "dynamics": {**BASE["dynamics"], "t_max": 6.0},
                        "simulation": {"d": 100, "seeds": 2}, "solver": {"paths": 400, "replicas": 2}})
    res = run.compare(cfg)
    assert "dynamics.growth" in res.theory.attrs["compressed"]
    np.testing.assert_allclose(res.simulation.time.values, res.theory.time.values)
    assert res.simulation.attrs["compressed"] == res.theory.attrs["compressed"]


def test_sweep_points_share_one_graded_grid():
    """A gamma sweep of long runs: each point alone would be graded up to its own gamma / 4; the sweep puts
    every point on the smallest cap, so that the gathered curves share their times."""
    from sgd_dmft.sweep import build_grid

    cfg = parse_config({**BASE, "dynamics": {**BASE["dynamics"], "t_max": 50.0}})
    g = build_grid(cfg, {"gamma": [0.5, 1.0], "delta": [2.0, 3.0]})
    times = [run.compress(run.experiment(c)).law.times(50.0) for c in g.configs]
    assert all(c.dynamics["dt_max"] == 0.125 and c.dynamics["growth"] == run.LONG_GROWTH for c in g.configs)
    assert all(np.array_equal(t, times[0]) for t in times)
    short = build_grid(parse_config(BASE), {"gamma": [0.5, 1.0]})  # short runs: the configured grid
    assert all(c.dynamics["growth"] == 0.0 for c in short.configs)
