"""The algorithm registry (algorithms.py): every name's law and simulator, and a new algorithm added with one
class and one registry line, run end to end (config -> Experiment -> theory and simulation), then taken back."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pytest

from sgd_dmft import algorithms, laws, run
from sgd_dmft.algorithms import AlgorithmSpec, register, unregister
from sgd_dmft.config import parse_config
from sgd_dmft.errors import ConfigError
from sgd_dmft.plot import epoch_length
from sgd_dmft.simulation import LawRecursion, MiniBatchSGD, OnlineSGD, Reshuffling


# ---- the toy algorithm: one class ... ----
@dataclass(frozen=True)
class JitteredSGD(laws.SGD):
    """SGD whose visits jump by ``gamma * 2U``, ``U`` uniform on (0, 1): the mean step of SGD, 4/3 its second
    moment (no exact coupling of the Richardson levels: they are drawn independently)."""

    name: str = field(default="jittered_sgd", kw_only=True)

    def sample(self, rng, n_samples, n_steps):
        return super().sample(rng, n_samples, n_steps) * (2.0 * rng.random((n_samples, n_steps)))

    def second_moment_at(self, dt):
        return 4.0 / 3.0 * super().second_moment_at(dt)

    def coarsen(self, S_fine, rng):
        return None

    @property
    def jump_size(self):
        return 2.0 * super().jump_size


@pytest.fixture
def jittered():
    # ... and one registry line
    register(AlgorithmSpec("jittered_sgd", JitteredSGD, ("gamma",), epoch=True))
    yield
    unregister("jittered_sgd")


TOY = {"problem": {"model": "logistic", "delta": 2.0, "ridge": 0.1, "init_scale": 0.5},
       "dynamics": {"algorithm": "jittered_sgd", "gamma": 0.5, "t_max": 0.4, "dt": 0.05},
       "simulation": {"d": 200, "seeds": 4}, "solver": {"paths": 800, "replicas": 4, "workers": 1}}


def test_a_registered_algorithm_runs_end_to_end(jittered):
    cfg = parse_config(TOY)
    exp = run.experiment(cfg)
    assert isinstance(exp.law, JitteredSGD) and exp.law.gamma == 0.5 and exp.law.dt == 0.05
    assert isinstance(exp.simulator, LawRecursion) and exp.simulator.law is exp.law and not exp.continuous
    theory, sim, disc = run.compare(cfg)  # the raw recursion at dt against its finite-d simulation
    assert theory.attrs["algorithm"] == "jittered_sgd" and sim.attrs["algorithm"] == "jittered_sgd"
    assert theory.attrs["extrapolated"] == 0 and sim.sizes["seed"] == 4
    assert np.all(np.isfinite(theory.test_loss)) and disc["test_loss"]["max_z"] < 5
    assert epoch_length(theory) == 0.5
    alone = run.run_theory(cfg.with_overrides({"simulation.d": 100}))  # solver.extrapolate: the dt -> 0 limit
    assert alone.attrs["extrapolated"] == 1 and "test_loss_dt_error" in alone


def test_an_unregistered_name_is_refused_with_the_choices(jittered):
    parse_config(TOY)
    unregister("jittered_sgd")
    try:
        with pytest.raises(ConfigError, match=r"^dynamics.algorithm = 'jittered_sgd': must be one of gf \| gd .*"
                                              r"persistent$"):
            parse_config(TOY)
    finally:
        register(AlgorithmSpec("jittered_sgd", JitteredSGD, ("gamma",), epoch=True))
    with pytest.raises(ValueError, match="registered already"):
        register(AlgorithmSpec("sgd", laws.SGD, ("gamma",)))


@pytest.mark.parametrize("name, law, sim, batching", [
    ("gf", laws.GF, LawRecursion, "uniform"), ("gd", laws.GD, LawRecursion, "uniform"),
    ("sgd", laws.SGD, MiniBatchSGD, "uniform"), ("sgd", laws.SGD, LawRecursion, "bernoulli"),
    ("sme", laws.SME, LawRecursion, "uniform"), ("reshuffle", laws.Reshuffle, Reshuffling, "uniform"),
    ("online", None, OnlineSGD, "uniform"), ("persistent", laws.Persistent, LawRecursion, "uniform")])
def test_the_builtin_algorithms(name, law, sim, batching):
    args = algorithms.LawArgs(0.05, 0.5, b=0.5, tau=1.0, batch=2, batching=batching)
    s = algorithms.spec(name)
    alg, grid = s.simulator(args)
    assert isinstance(alg, sim) and (grid is None) == (sim is LawRecursion)
    if law is None:
        with pytest.raises(ConfigError, match="no step-multiplier law"):
            algorithms.make_law(name, 0.05, 0.5)
    else:
        assert type(algorithms.make_law(name, 0.05, 0.5)) is law and type(s.make_law(args)) is law
    assert s.simulates_limit(batching) == (sim in (MiniBatchSGD, Reshuffling))
    assert s.epoch == (name in ("sgd", "sme", "reshuffle"))


def test_the_old_names_warn():
    with pytest.warns(DeprecationWarning, match="algorithms.make_law"):
        make_law = laws.make_law
    assert make_law("sgd", 0.05, 0.5) == laws.SGD(0.05, 0.5)
    with pytest.warns(DeprecationWarning, match=r"algorithms.names\(\)"):
        assert laws.LAWS == ("gf", "gd", "sgd", "sme", "reshuffle", "persistent")
    with pytest.raises(ConfigError, match="not one of"):
        algorithms.spec("sdg")
