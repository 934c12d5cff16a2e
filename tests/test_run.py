"""run.py: config -> experiment -> theory / simulation / comparison (no CLI involved)."""

import subprocess
import sys

import numpy as np
import pytest

from sgd_dmft import laws, run
from sgd_dmft.config import parse_config

# linear model + sgd: the exact DMFT path (second-moment closure), fast and deterministic
BASE = {
    "problem": {"model": "linear", "delta": 2.0, "ridge": 0.1},
    "dynamics": {"algorithm": "sgd", "gamma": 0.5, "t_max": 0.6, "dt": 0.1},
    "simulation": {"d": 40, "seeds": 2},
    "solver": {"paths": 100, "replicas": 2, "workers": 1},
}


@pytest.fixture
def cfg():
    return parse_config(BASE)


def test_experiment(cfg):
    exp = run.experiment(cfg)
    assert isinstance(exp.law, laws.SGD) and exp.law.gamma == 0.5 and exp.algorithm == "sgd"
    assert exp.problem.delta == 2.0 and exp.problem.ridge == 0.1
    assert run.experiment(cfg.with_overrides({"dynamics.algorithm": "online"})).law is None


def test_theory_announces_through_the_callable(cfg):
    said = []
    ds = run.run_theory(cfg, announce=said.append)
    assert len(said) == 1 and said[0].startswith("DMFT sgd: 6 grid steps") and "estimated memory" in said[0]
    assert ds.attrs["kind"] == "theory" and ds.attrs["dynamics.gamma"] == 0.5 and "config_toml" in ds.attrs
    assert ds.attrs["wall_time_s"] >= 0
    assert run.run_theory(cfg, announce=False).attrs["kind"] == "theory"


def test_compare(cfg):
    theory, sim, disc = run.compare(cfg)
    assert sim.attrs["kind"] == "simulation" and sim.sizes["seed"] == 2
    assert set(disc) == {"train_loss", "test_loss"}
    assert disc == run.compare_datasets(theory, sim)
    for ds in (theory, sim):
        assert ds.attrs["discrepancy.test_loss.max_z"] == disc["test_loss"]["max_z"]
    np.testing.assert_allclose(theory.time.values, sim.time.values)


def test_online_simulation_drops_nan_train_loss(cfg):
    sim = run.run_simulation(cfg.with_overrides({"dynamics.algorithm": "online"}))
    assert "train_loss" not in sim and "test_loss" in sim
    assert sim.attrs["train_loss_note"].startswith("dropped")


def test_no_cli_below_the_cli():
    # run and sweep never import the CLI (nor click): data flows cli -> sweep -> run
    code = ("import sys, sgd_dmft.run, sgd_dmft.sweep; "
            "bad = [m for m in ('sgd_dmft.cli', 'click') if m in sys.modules]; print(bad); sys.exit(bool(bad))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_compare_checks_once(monkeypatch):
    """One config, loaded and compared, builds its law once (validation's: the Config keeps it) and checks the model,
    the stability of the law and the plan once (the solver's own internal checks not counted: the solve below runs
    with the counters off)."""
    import sgd_dmft.dmft
    from sgd_dmft.algorithms import AlgorithmSpec
    from sgd_dmft.dmft import divergence, planning
    from sgd_dmft.models import problem as problem_mod

    counts, on = {}, [True]

    def counting(name, fn):
        def wrapper(*a, **k):
            if on[0]:
                counts[name] = counts.get(name, []) + [a]
            return fn(*a, **k)
        return wrapper

    real_solve = sgd_dmft.dmft.solve

    def solve(*a, **k):
        on[0] = False
        try:
            return real_solve(*a, **k)
        finally:
            on[0] = True

    monkeypatch.setattr(sgd_dmft.dmft, "solve", solve)
    monkeypatch.setattr(AlgorithmSpec, "make_law", counting("make_law", AlgorithmSpec.make_law))
    monkeypatch.setattr(problem_mod, "check_model", counting("check_model", problem_mod.check_model))
    monkeypatch.setattr(divergence, "check_stability", counting("check_stability", divergence.check_stability))
    monkeypatch.setattr(planning, "plan_replicas", counting("plan_replicas", planning.plan_replicas))
    cfg = parse_config({**BASE, "problem": {"model": "logistic", "delta": 2.0, "ridge": 0.1},
                        "dynamics": {**BASE["dynamics"], "t_max": 0.3}, "solver": {"paths": 40, "replicas": 2,
                                                                                    "workers": 1}})
    assert len(counts["make_law"]) == 1  # validation built it ...
    res = run.compare(cfg)
    assert res.theory.attrs["extrapolated"] == 1  # the continuous-time limit: levels 2 dt, 4 dt checked too
    assert len(counts["make_law"]) == 1 and len(counts["check_model"]) == 1  # ... and the experiment kept it
    own = [a for a in counts["check_stability"] if a[1].dt == cfg.dynamics["dt"]]  # the law itself, not a level's
    assert len(own) == 1 and len(counts["plan_replicas"]) == 1


def test_solve_takes_options_or_flags():
    from sgd_dmft.dmft import Raw, Richardson, TheoryOptions, solve
    from sgd_dmft.errors import ConfigError
    from sgd_dmft.models import Problem, make_model

    prob = Problem(make_model("linear"), delta=2.0, ridge=0.1)
    law = laws.SGD(0.1, 0.5)
    a = solve(prob, law, t_max=0.5, paths=40, replicas=2, extrapolate=False)
    b = solve(prob, law, t_max=0.5, options=TheoryOptions(paths=40, replicas=2, extrapolate=Raw()))
    np.testing.assert_array_equal(a.test_loss.values, b.test_loss.values)
    assert TheoryOptions(extrapolate=True).extrapolate == Richardson()
    with pytest.raises(ConfigError, match="paths"):
        solve(prob, law, t_max=0.5, paths=40, options=TheoryOptions())
    with pytest.raises(ConfigError, match="options.replicas|replicas"):
        TheoryOptions(replicas=0)


def test_experiment_errors_name_the_config_key(cfg):
    """A value the objects refuse is named by the key it was read from (the config bypassed here)."""
    import dataclasses

    from sgd_dmft.errors import ConfigError

    bad = dataclasses.replace(cfg, solver={**cfg.solver, "rtol": -1.0})
    with pytest.raises(ConfigError, match=r"^solver\.rtol: ") as e:
        run.experiment(bad)
    assert e.value.key == "solver.rtol"
    bad = dataclasses.replace(cfg, simulation={**cfg.simulation, "batch": 0})
    with pytest.raises(ConfigError, match=r"^simulation\.batch: "):
        run.experiment(bad)


def test_one_answer_per_question(cfg):
    """Which algorithm is simulated and which limit the theory takes: the experiment's objects."""
    from sgd_dmft.simulation import LawRecursion, MiniBatchSGD

    exp = run.experiment(cfg)
    assert isinstance(exp.simulator, MiniBatchSGD) and exp.continuous and exp.extrapolate
    bern = run.experiment(cfg.with_overrides({"simulation.batching": "bernoulli"}))
    assert isinstance(bern.simulator, LawRecursion) and bern.simulator.law is bern.law and not bern.continuous
    assert not bern.with_limit(bern.continuous).extrapolate and exp.with_limit(False).options.richardson is False
    assert run.experiment(cfg.with_overrides({"dynamics.algorithm": "gd"})).extrapolate is False  # no limit


def test_theory_options_fields_are_solve_flags():
    """Every field of TheoryOptions is a keyword flag of solve with the same default (the flags build it)."""
    import dataclasses
    import inspect

    from sgd_dmft.dmft import TheoryOptions, solve

    params = inspect.signature(solve).parameters
    assert TheoryOptions.FIELDS == tuple(f.name for f in dataclasses.fields(TheoryOptions))
    for f in dataclasses.fields(TheoryOptions):
        assert params[f.name].default == f.default, f.name
