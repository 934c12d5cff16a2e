"""Issue 14: never a wrong result written as a normal one (divergence before 1e12, whole result sets,
honest caches and budgets). One test per row of the issue's table, plus the 1.5^m growth rule."""

import json
from pathlib import Path

import numpy as np
import pytest

from sgd_dmft import laws, run

from clitools import cli as _cli, one_line_error as _fails
from sgd_dmft.config import parse_config
from sgd_dmft.dmft import divergence, planning
from sgd_dmft.errors import MemoryLimitExceeded, SolverDiverged
from sgd_dmft.problem import Problem, make_model

BASE = """
[problem]
model = "logistic"
delta = 2.0
[dynamics]
algorithm = "sgd"
gamma = 0.5
t_max = 1.0
dt = 0.05
[simulation]
d = 200
seeds = 4
[solver]
paths = 1000
replicas = 4
"""


@pytest.fixture
def base(tmp_path):
    p = tmp_path / "base.toml"
    p.write_text(BASE)
    return p




# ---- the growth rule --------------------------------------------------------------------------
def test_growth_like_1_5_power_m_stopped_far_below_1e12():
    det = divergence.GrowthDetector()
    q = 0.25 * 1.5 ** np.arange(200)
    stops = [m for m, x in enumerate(q) if det.update(x) is not None]
    assert stops and q[stops[0]] < 1e4 <= 1e12  # stopped at trace Q ~ 1e3, not 1e12


def test_stable_curves_never_flagged():
    for curve in (0.25 + np.log1p(np.arange(400.0)), 0.25 * np.exp(-np.arange(400) / 50), 1 + np.arange(400.0) ** 2):
        det = divergence.GrowthDetector()
        assert all(det.update(x) is None for x in curve)


def test_solver_run_growing_like_1_5_power_m_is_stopped_before_it_is_written(base, tmp_path, monkeypatch):
    """The explicit ridge step with |1 - dt ridge| = sqrt(1.5): Q grows like 1.5^m; with the up-front check
    switched off the growth rule stops it (exit 3), long before trace Q = 1e12, and nothing is written."""
    import importlib

    solve_mod = importlib.import_module("sgd_dmft.dmft.driver")
    monkeypatch.setattr(solve_mod, "check_stability", lambda *a, **k: None)
    monkeypatch.setattr(run, "check_theory", lambda *a, **k: 0.0)
    ridge = (1 + 1.5**0.5) / 0.05
    out = tmp_path / "o"
    r = _cli("solve", base, "--out", out, "-s", f"problem.ridge={ridge}", "-s", "dynamics.t_max=5.0",
             "-s", "solver.extrapolate=false", "-s", "solver.paths=200", "-s", "solver.replicas=2")
    _fails(r, 3, "geometric growth")
    t = float(r.stderr.split("at t=")[1].split()[0])
    assert t < 3.0  # trace Q = 0.25 * 1.5^m reaches 1e12 only at m = 72 (t = 3.6)
    assert not out.exists()


# ---- rows --------------------------------------------------------------------------------------
@pytest.mark.slow
def test_compare_phase_retrieval_gd_runaway_is_solved_again_with_tail_paths(base, tmp_path):
    """Phase retrieval GD at dt 0.05: the pathwise tangents of the largest |r*| run away (one replica's trace Q
    90 against 0.66; this once ended as a refusal, exit 3). The solve is run again with integration by parts on
    those paths (tail_retry) and its trace Q lies among the simulation's seeds, not written as a runaway."""
    import xarray as xr

    out = tmp_path / "o"
    r = _cli("compare", base, "--out", out, "-s", 'problem.model="phase_retrieval"', "-s", 'dynamics.algorithm="gd"',
             "-s", "dynamics.t_max=0.5", "-s", "simulation.d=100")
    assert r.exit_code == 0, r.stderr
    with xr.open_dataset(out / "theory.nc") as th, xr.open_dataset(out / "simulation.nc") as sim:
        assert "solved again with integration by parts" in th.attrs["tail_retry"]
        tq = float(np.trace(th.Q.values[-1]))
        seeds = np.trace(sim.Q.values[:, -1], axis1=-2, axis2=-1)
        se = float(th.Q_stderr.values[-1].sum())
        assert seeds.min() - 3 * se <= tq <= seeds.max() + 3 * se, (tq, seeds, se)


def test_exploded_standard_error_is_not_agreement():
    import xarray as xr

    from sgd_dmft.results import discrepancy

    t = np.arange(5) * 0.1
    th = xr.Dataset({"train_loss": ("time", np.array([0.7, 0.6, 0.5, 0.4, 23682.0])),
                     "train_loss_stderr": ("time", np.array([0.01, 0.01, 0.01, 0.01, 23682.0]))}, coords={"time": t})
    th.attrs["replicas"] = 4
    sim = xr.Dataset({"train_loss": (("seed", "time"), np.tile([0.7, 0.6, 0.5, 0.4, 0.38], (4, 1)) + 0.01 * np.arange(4)[:, None])},
                     coords={"time": t})
    d = discrepancy(th, sim, "train_loss")
    assert d["max_z"] < 3 and not d["reliable"] and "t=0.4" in d["unreliable"]
    with pytest.raises(Exception, match="not a meaningful comparison"):
        run.check_discrepancy({"train_loss": d})


@pytest.mark.parametrize("command", ["solve", "simulate", "compare"])
@pytest.mark.parametrize("overrides, fragment", [
    (["problem.ridge=50"], "ridge step is unstable"),
    (['problem.model="linear"', 'dynamics.algorithm="gd"', "dynamics.dt=0.5", "dynamics.t_max=10"], "stability edge"),
    (['problem.model="linear"', 'dynamics.algorithm="sme"', "dynamics.gamma=5"], "E[S^2]"),
    (['problem.model="linear"', "dynamics.gamma=2.5"], "gamma = 2"),
])
def test_unstable_steps_refused_up_front(base, tmp_path, monkeypatch, command, overrides, fragment):
    """ridge 50 (dt ridge = 2.5), linear gd dt 0.5, linear sme gamma 5, linear sgd gamma 2.5: exit 3 from
    solve, compare and (where the simulated algorithm has that step) simulate, before anything runs."""
    if command == "simulate" and overrides == ["problem.ridge=50"]:
        # true mini-batch SGD decays with eta ridge = 0.0625: stable; the Bernoulli recursion is the grid's
        overrides = overrides + ['simulation.batching="bernoulli"']
    monkeypatch.setattr(planning, "plan_run", lambda *a, **k: pytest.fail("ran past the up-front checks"))
    out = tmp_path / "o"
    r = _cli(command, base, "--out", out, *[a for o in overrides for a in ("-s", o)])
    _fails(r, 3, fragment)
    assert not out.exists()


def test_simulate_true_sgd_with_large_ridge_runs(base, tmp_path):
    """The same ridge 50 in true mini-batch SGD (step eta = gamma / n) is stable: simulate runs it."""
    r = _cli("simulate", base, "--out", tmp_path / "o", "-s", "problem.ridge=50", "-s", "simulation.d=40",
             "-s", "dynamics.t_max=0.2")
    assert r.exit_code == 0, r.stderr


def test_rerun_interrupted_during_write_keeps_the_old_set(base, tmp_path, monkeypatch):
    from sgd_dmft import plot

    args = ["compare", base, "--out", tmp_path / "o", "-s", 'problem.model="linear"', "-s", "simulation.d=40",
            "-s", "dynamics.t_max=0.3", "-s", "simulation.seeds=2"]
    assert _cli(*args).exit_code == 0
    before = {p.name: p.read_bytes() for p in (tmp_path / "o").iterdir()}

    def boom(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(plot, "plot_curves", boom)
    r = _cli(*args, "-s", "dynamics.gamma=0.3")
    assert r.exit_code == 130
    assert {p.name: p.read_bytes() for p in (tmp_path / "o").iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["base.toml", "o"]  # no staging directory left
    assert _cli("show", tmp_path / "o").exit_code == 0


def test_show_refuses_a_mixed_set(base, tmp_path):
    args = ["-s", 'problem.model="linear"', "-s", "simulation.d=40", "-s", "dynamics.t_max=0.3", "-s", "simulation.seeds=2"]
    assert _cli("compare", base, "--out", tmp_path / "a", *args).exit_code == 0
    assert _cli("compare", base, "--out", tmp_path / "b", *args).exit_code == 0
    (tmp_path / "a" / "theory.nc").write_bytes((tmp_path / "b" / "theory.nc").read_bytes())
    _fails(_cli("show", tmp_path / "a"), 1, "different runs")


@pytest.mark.parametrize("name", ["summary.json", "theory.nc"])
def test_out_with_a_directory_where_a_file_goes(base, tmp_path, monkeypatch, name):
    (tmp_path / "o" / name).mkdir(parents=True)
    monkeypatch.setattr(run, "compare", lambda *a, **k: pytest.fail("ran before checking --out"))
    _fails(_cli("compare", base, "--out", tmp_path / "o"), 2, name, "is a directory")
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == [name]


@pytest.mark.parametrize("command", ["solve", "simulate", "compare", "sweep"])
def test_out_empty_string(base, tmp_path, monkeypatch, command):
    monkeypatch.chdir(tmp_path)
    extra = ["-s", "gamma=0.3"] if command == "sweep" else []
    _fails(_cli(command, base, "--out", "", *extra), 2, "--out")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["base.toml"]


def test_sweep_cache_key_includes_the_code(monkeypatch):
    from sgd_dmft import sweep

    cfg = parse_config({})
    a = sweep.task_hash(cfg, "theory")
    monkeypatch.setattr(sweep.cache, "_CODE_HASH", "another solver")
    assert sweep.task_hash(cfg, "theory") != a
    monkeypatch.setattr(sweep.cache, "_CODE_HASH", None)
    assert sweep.task_hash(cfg, "theory") == a and len(sweep.code_hash()) == 64


def test_exact_path_memory_refused_up_front(base, tmp_path):
    prob = Problem(make_model("linear"), delta=2.0, ridge=0.1)
    with pytest.raises(MemoryLimitExceeded, match="exact path"):
        planning.plan_replicas(prob, laws.GD(0.01), 100.0, 1000, 4, 0.1)
    r = _cli("solve", base, "--out", tmp_path / "o", "-s", 'problem.model="linear"', "-s", 'dynamics.algorithm="gd"',
             "-s", "dynamics.t_max=100", "-s", "dynamics.dt=0.01", "-s", "solver.max_memory_gb=1", "--force",
             "-s", 'solver.compress="off"')  # (auto grades this long GD: 1589 steps, which fit)
    _fails(r, 2, "solver.max_memory_gb")


def test_paths_1e12_refused(base, tmp_path):
    _fails(_cli("solve", base, "--out", tmp_path / "o", "-s", "solver.paths=1000000000000"), 2, "solver.paths", "--force")


def test_show_corrupt_summary_and_truncated_netcdf(base, tmp_path):
    args = ["-s", 'problem.model="linear"', "-s", "simulation.d=40", "-s", "dynamics.t_max=0.3", "-s", "simulation.seeds=2"]
    assert _cli("compare", base, "--out", tmp_path / "o", *args).exit_code == 0
    (tmp_path / "o" / "summary.json").write_text('{"discrepancy": {"train_loss": ')
    _fails(_cli("show", tmp_path / "o"), 1, "summary.json", "corrupt")
    nc = tmp_path / "o" / "theory.nc"
    nc.write_bytes(nc.read_bytes()[:300])
    _fails(_cli("show", tmp_path / "o"), 1, "theory.nc", "truncated")


def test_dask_killed_worker_one_line_no_temporary(tmp_path, monkeypatch):
    distributed = pytest.importorskip("distributed")
    from sgd_dmft import sweep

    class Future:
        def __init__(self, key):
            self.key = key

        def result(self):
            raise distributed.KilledWorker(self.key, "tcp://127.0.0.1:1", [])

    class FakeClient:
        def __init__(self, *a, **k):
            pass

        def submit(self, fn, toml, kind, cache, **kw):  # a task killed while writing its cache file
            Path(cache).parent.mkdir(parents=True, exist_ok=True)
            Path(cache).with_name(f".{Path(cache).name}.x1y2.tmp").write_text("half")
            return Future(kw["key"])

        def cancel(self, futs):
            pass

        def close(self):
            pass

    monkeypatch.setattr(distributed, "Client", FakeClient)
    monkeypatch.setattr(distributed, "as_completed", lambda futs: iter(futs))
    cfg = tmp_path / "c.toml"
    cfg.write_text(BASE.replace('"logistic"', '"linear"'))
    r = _cli("sweep", cfg, "--out", tmp_path / "sw", "-s", "gamma=0.3,0.5", "--scheduler", "tcp://nowhere:1")
    _fails(r, 1, "grid point", "gamma", "KilledWorker")
    assert not list((tmp_path / "sw" / "cache").glob(".*.tmp"))


def test_summary_json_valid_with_one_seed_against_an_exact_path(base, tmp_path):
    out = tmp_path / "o"
    r = _cli("compare", base, "--out", out, "-s", 'problem.model="linear"', "-s", 'dynamics.algorithm="gd"',
             "-s", "simulation.seeds=1", "-s", "simulation.d=40", "-s", "dynamics.t_max=0.3")
    assert r.exit_code == 0, r.stderr
    text = (out / "summary.json").read_text()

    def no_constants(name):
        raise AssertionError(f"non-JSON token {name}")

    s = json.loads(text, parse_constant=no_constants)
    assert s["discrepancy"]["train_loss"]["max_z"] is None  # inf: zero combined standard error
    assert _cli("show", out).exit_code == 0


def test_online_simulation_writes(tmp_path):
    """Issue 11: results.write_dataset accepts simulate(..., 'online') (its NaN train_loss is dropped)."""
    from sgd_dmft.results import read_dataset, write_dataset
    from sgd_dmft.simulate import simulate

    prob = Problem(make_model("logistic"), delta=2.0, ridge=0.1)
    ds = simulate(prob, "online", t_max=0.2, dt=0.05, d=40, gamma=0.5, seeds=2)
    back = read_dataset(write_dataset(ds, tmp_path / "o.nc"))
    assert "train_loss" not in back and "dropped" in back.attrs["train_loss_note"]


# ---- slow geometric growth: a two-layer relu student on the edge of its visit map ---------------
def test_slow_geometric_growth_stopped_polynomial_growth_not():
    """The long rule: 1.09^m (a few % per step) is stopped near the floor; m^2 and m^6 never are."""
    det = divergence.GrowthDetector()
    q = 0.5 * 1.09 ** np.arange(400) * (1 + 0.02 * np.random.default_rng(0).standard_normal(400))
    stops = [m for m, x in enumerate(q) if det.update(x) is not None]
    assert stops and q[stops[0]] < 3e3
    for curve in (1 + np.arange(400.0) ** 2, 1 + np.arange(1000.0) ** 6 / 1e6):
        det = divergence.GrowthDetector()
        assert all(det.update(x) is None for x in curve)


def test_two_layer_relu_at_its_edge_is_warned_and_stopped_in_theory_and_simulation():
    """relu student, a = (1, 1), gamma 1: gamma |a|^2 = 2, the edge of a fitted sample's visit map. Both the
    d = infinity theory and a d = 500 simulation grow like ~2.3x per unit time (measured: trace Q 2e4 at
    t = 10 at d = 500 and 1000); before the long rule both returned that as a normal result."""
    from sgd_dmft import Problem, laws, solve
    from sgd_dmft.errors import SimulationDiverged, SolverDiverged
    from sgd_dmft.models.presets import two_layer
    from sgd_dmft.simulate import simulate

    prob = Problem(two_layer(2, 2, "relu", teacher="z1 + he3(z2)/sqrt(6)", second_layer=[1, 1]), delta=4.0,
                   init_scale=0.5, init_overlap=0.05, ridge=0.0)
    with pytest.warns(RuntimeWarning, match=r"gamma \|a\|\^2 sup s'\^2 = 2 >= 2"), \
            pytest.raises(SolverDiverged, match="steady rate"):
        solve(prob, laws.SGD(0.1, 1.0), t_max=10, paths=4000, replicas=2, seed=0, extrapolate=False)
    with pytest.raises(SimulationDiverged, match="steady rate"):  # (the up-front checks run in run.py)
        simulate(prob, "sgd", batching="bernoulli", t_max=10, dt=0.1, d=500, gamma=1.0, seeds=2, seed=1)


def test_mean_step_past_the_linear_edge_refused_for_every_law():
    """A grid recursion's mean step is GD's: on the linear model (delta 2, lambda_max = 5.83) a graded SGD
    grid with dt_max = 0.4 (0.4 x 5.83 = 2.3 >= 2) is refused up front, naming dt_max."""
    from sgd_dmft import Problem, laws, solve
    from sgd_dmft.errors import SolverDiverged
    from sgd_dmft.models.presets import linear

    prob = Problem(linear(0.5), delta=2.0, ridge=0.0, init_scale=0.0)
    with pytest.raises(SolverDiverged, match=r"mean step of algorithm=sgd .* past its stability edge.*dt_max=0.4"):
        solve(prob, laws.SGD(0.01, 1.0, growth=0.05, dt_max=0.4), t_max=20.0, extrapolate=False)


def test_quadratic_student_escape_rule():
    """f = a r^2 has phase retrieval's visit map in u = a r with label a y: at gamma 0.5 (He2 label, a =
    0.5) a sample escapes with probability P(z^2 > 5) ~ 0.025, refused up front (both the theory and a
    d = 1000 simulation diverged there); gamma 0.1 (probability 5e-6: a warning) runs, and its theory
    matched a d = 1000 simulation (measured once, max z 2.1 at noise 0.1; not rerun here)."""
    from scipy import stats

    from sgd_dmft import Problem, laws, solve
    from sgd_dmft.errors import SolverDiverged
    from sgd_dmft.models.presets import two_layer
    from sgd_dmft.stability import escape_probability

    q = Problem(two_layer(k=1, kstar=1, activation="quadratic", teacher="he2(z1)", second_layer=[0.5]), delta=2.0,
                ridge=0.05, init_scale=0.5, init_overlap=0.2)
    assert escape_probability(q, 0.5) == pytest.approx(stats.chi2.sf(5.0, 1), rel=1e-3)
    assert escape_probability(q, 0.05) == pytest.approx(stats.chi2.sf(41.0, 1), rel=1e-2)
    with pytest.raises(SolverDiverged, match=r"quadratic student .* lower dynamics.gamma below 0.14"):
        solve(q, laws.SGD(0.05, 0.5), t_max=2.0, paths=200, replicas=2, extrapolate=False)
    biased = Problem(two_layer(k=1, kstar=1, activation="quadratic", teacher="he2(z1)", bias=[0.3]), delta=2.0)
    assert escape_probability(biased, 0.5) == 0.0  # the rule covers the unbiased one-unit student only
