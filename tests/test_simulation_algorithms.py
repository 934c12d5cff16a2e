"""The algorithm-object API of sgd_dmft.simulation: same numbers as the string-named call, its own
checks (one-line ConfigError naming the parameter), the law's grid, the model's kernel codes."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sgd_dmft import laws
from sgd_dmft import problem as P
from sgd_dmft import simulate as legacy
from sgd_dmft.errors import ConfigError, SimulationDiverged
from sgd_dmft.grid import TimeGrid
from sgd_dmft.simulation import (LawRecursion, MiniBatchSGD, OnlineSGD, Reshuffling, kernel_codes, make_instance,
                                 simulate)

DT, GAMMA = 0.05, 0.5
ARGS = dict(t_max=0.6, d=30, seeds=2, seed=4)


def _prob():
    return P.Problem(P.committee(2, 2, "tanh", 0.1), delta=2.0, ridge=0.1, init_overlap=0.3)


# every named algorithm and its object (with the labels the named call reports)
CASES = {
    "sgd": (dict(batch=3), lambda: (MiniBatchSGD(GAMMA, 3), TimeGrid(DT))),
    "sgd_graded": (dict(batch=2, growth=0.3, dt_max=0.2),
                   lambda: (MiniBatchSGD(GAMMA, 2), TimeGrid(DT, growth=0.3, dt_max=0.2))),
    "reshuffle": (dict(batch=4), lambda: (Reshuffling(GAMMA, 4), TimeGrid(DT))),
    "online": (dict(batch=2), lambda: (OnlineSGD(GAMMA, 2), TimeGrid(DT))),
    "gd": ({}, lambda: (LawRecursion(laws.GD(DT), name="gd", gamma=GAMMA), None)),
    "gf": ({}, lambda: (LawRecursion(laws.GF(DT), name="gf", gamma=GAMMA), None)),  # GD's recursion, law "gf"
    "sme": ({}, lambda: (LawRecursion(laws.SME(DT, GAMMA), name="sme"), None)),
    "sgd_bernoulli": (dict(batching="bernoulli"), lambda: (LawRecursion(laws.SGD(DT, GAMMA), name="sgd"), None)),
    "law": (dict(law=laws.Persistent(DT, 0.5, 0.4)),
            lambda: (LawRecursion(laws.Persistent(DT, 0.5, 0.4), gamma=GAMMA), None)),
}


@pytest.mark.parametrize("case", list(CASES))
def test_object_call_equals_named_call(case):
    kw, make = CASES[case]
    name = case.split("_")[0] if case != "sgd_bernoulli" else "sgd"
    old = legacy.simulate(_prob(), name, dt=DT, gamma=GAMMA, **kw, **ARGS)
    alg, grid = make()
    new = simulate(_prob(), alg, grid=grid, **ARGS)
    assert new.identical(old)  # values, coordinates and attributes
    assert list(new.attrs) == list(old.attrs)
    assert legacy.algorithm_for(name, dt=DT, gamma=GAMMA, **kw) == (alg, grid)


def test_law_recursion_records_on_the_law_grid():
    law = laws.GD(0.02, growth=0.2, dt_max=0.1)
    ds = simulate(_prob(), LawRecursion(law), t_max=1.0, d=20)
    np.testing.assert_array_equal(ds.time.values, law.times(1.0))
    again = simulate(_prob(), LawRecursion(law), t_max=1.0, d=20, grid=law.grid)  # its own grid: accepted
    assert again.identical(ds)
    # labels of the object call: name 'law', no gamma for a law without one, law's own attributes
    assert ds.attrs["algorithm"] == "law" and math.isnan(ds.attrs["gamma"]) and ds.attrs["law"] == "gd"
    assert ds.attrs["grid_growth"] == 0.2 and ds.attrs["eta"] == 0.02
    sgd = simulate(_prob(), LawRecursion(laws.SGD(0.05, 0.5)), t_max=0.2, d=20)
    assert sgd.attrs["gamma"] == 0.5 and sgd.attrs["batching"] == "bernoulli"
    pers = simulate(_prob(), LawRecursion(laws.Persistent(0.05, 0.3, 0.7)), t_max=0.2, d=20)
    assert pers.attrs["law_b"] == 0.3 and pers.attrs["law_tau"] == 0.7


def _one_line_config_error(excinfo, key, *words):
    msg = str(excinfo.value)
    assert isinstance(excinfo.value, ConfigError) and isinstance(excinfo.value, ValueError)
    assert excinfo.value.key == key and "\n" not in msg and msg.startswith(f"{key}=")
    for w in words:
        assert w in msg, msg


@pytest.mark.parametrize("cls", [MiniBatchSGD, Reshuffling, OnlineSGD])
@pytest.mark.parametrize("kw, key", [(dict(gamma=0.0), "gamma"), (dict(gamma=-1.0), "gamma"),
                                     (dict(gamma=math.nan), "gamma"), (dict(gamma=math.inf), "gamma"),
                                     (dict(gamma="0.5"), "gamma"), (dict(gamma=0.5, batch=0), "batch"),
                                     (dict(gamma=0.5, batch=1.5), "batch"), (dict(gamma=0.5, batch=True), "batch")])
def test_step_algorithms_reject_bad_parameters(cls, kw, key):
    with pytest.raises(ConfigError) as e:
        cls(**kw)
    _one_line_config_error(e, key, "not allowed", "must be")


def test_step_algorithms_accept_good_parameters():
    a = MiniBatchSGD(1, np.int64(3))
    assert a.batch == 3 and a.name == "sgd" and a == MiniBatchSGD(1, 3)
    assert Reshuffling(0.5).name == "reshuffle" and OnlineSGD(0.5).name == "online"
    with pytest.raises(AttributeError):
        a.gamma = 2.0  # frozen


def test_law_recursion_rejects_bad_parameters():
    with pytest.raises(ConfigError) as e:
        LawRecursion("sgd")
    _one_line_config_error(e, "law", "sgd_dmft.laws.Law")
    with pytest.raises(ConfigError) as e:
        LawRecursion(laws.GD(0.1), gamma="fast")
    _one_line_config_error(e, "gamma")


@pytest.mark.parametrize("alg, kw, key", [
    ("sgd", dict(), "algorithm"),  # a string: the named call lives in sgd_dmft.simulate
    (MiniBatchSGD(0.5), dict(), "grid"),  # no record grid
    (MiniBatchSGD(0.5), dict(grid=0.05), "grid"),
    (LawRecursion(laws.GD(0.05)), dict(grid=TimeGrid(0.1)), "grid"),  # not the law's grid
    (MiniBatchSGD(0.5, 61), dict(grid=TimeGrid(0.05)), "batch"),  # n = 60
    (Reshuffling(0.5, 61), dict(grid=TimeGrid(0.05)), "batch"),
    (MiniBatchSGD(0.5), dict(grid=TimeGrid(0.05), d=0), "d"),
    (MiniBatchSGD(0.5), dict(grid=TimeGrid(0.05), d=2.5), "d"),
    (MiniBatchSGD(0.5), dict(grid=TimeGrid(0.05), seeds=[]), "seeds"),
    (MiniBatchSGD(0.5), dict(grid=TimeGrid(0.05), seeds=0), "seeds"),
    (MiniBatchSGD(0.5), dict(grid=TimeGrid(0.05), t_max=-1.0), "t_max"),
    (LawRecursion(laws.GD(0.05)), dict(t_max=math.inf), "t_max"),
])
def test_simulate_rejects_bad_arguments(alg, kw, key):
    args = {"t_max": 0.2, "d": 30, **kw}
    with pytest.raises(ConfigError) as e:
        simulate(_prob(), alg, **args)
    _one_line_config_error(e, key, "not allowed")


def test_online_batch_may_exceed_n():
    ds = simulate(_prob(), OnlineSGD(0.5, 100), t_max=0.2, d=30, grid=TimeGrid(0.1))  # n = 60
    assert np.all(np.isnan(ds.train_loss.values)) and np.all(np.isfinite(ds.test_loss.values))


def test_divergence_names_the_algorithm():
    prob = P.Problem(P.linear(0.1), delta=2.0, ridge=0.0)
    with pytest.raises(SimulationDiverged, match=r"algorithm=reshuffle, gamma=3, at t="):
        simulate(prob, Reshuffling(3.0, 2), t_max=200.0, d=50, grid=TimeGrid(0.5))
    with pytest.raises(SimulationDiverged, match=r"algorithm=law, gamma=nan, at t="):
        simulate(prob, LawRecursion(laws.GD(2.0)), t_max=200.0, d=50)


# --------------------------------------------------------------------------------------------
# the init projection and the kernel codes come from the problem / the model where they have them
# --------------------------------------------------------------------------------------------
class _Delegate:
    """``obj`` with some attributes replaced."""

    def __init__(self, obj, **over):
        self._obj = obj
        self.__dict__.update(over)

    def __getattr__(self, name):
        return getattr(self._obj, name)


def test_instance_uses_the_problems_init_projection():
    prob = P.Problem(P.committee(2, 2, "erf", 0.1), delta=1.0, init_scale=0.0, init_overlap=1.0)
    swap = np.array([[0.0, 1.0], [1.0, 0.0]])
    stub = _Delegate(prob, init_projection=lambda: swap)
    a = make_instance(prob, 20, np.random.default_rng(0))
    b = make_instance(stub, 20, np.random.default_rng(0))
    np.testing.assert_array_equal(a.theta0, a.theta_star)
    np.testing.assert_array_equal(b.theta0, b.theta_star[:, ::-1])


def test_kernel_codes_follow_kernel_spec_and_are_validated():
    logi = P.logistic(0.1)
    assert kernel_codes(logi) == (1, 0)
    assert kernel_codes(P.committee(2, 2, "relu", 0.1)) == (3, 1)
    assert kernel_codes(_Delegate(logi, kernel_spec=(1, 0))) == (1, 0)
    assert kernel_codes(_Delegate(logi, kernel_spec=None)) is None  # no kernel: the numpy loop
    assert kernel_codes(_Delegate(logi, kernel_spec=(0, 0))) is None  # claims linear: fails the check
