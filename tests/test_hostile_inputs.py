"""Issue 23, findings 3, 5 and 7: infinite-variance links, memory outside the estimates, API argument
checks and exit codes (input errors are exit 2, never exit 3 "diverged")."""

from __future__ import annotations

import math
import tracemalloc

import numpy as np
import pytest

from sgd_dmft import ConfigError, MemoryLimitExceeded, Problem, laws, make_model
from sgd_dmft.dmft import solve
from sgd_dmft.online import solve_online
from sgd_dmft.simulate import simulate

from clitools import cli, one_line_error

LOGISTIC = Problem(make_model("logistic"), delta=2.0, ridge=0.1, init_scale=0.5)
LINEAR = Problem(make_model("linear"), delta=2.0, ridge=0.1, init_scale=0.5)
LAW = laws.SGD(dt=0.05, gamma=0.5)

TINY = """
[problem]
model = "logistic"
delta = 2.0
[dynamics]
algorithm = "sgd"
gamma = 0.5
t_max = 0.2
dt = 0.05
[simulation]
d = 20
seeds = 2
[solver]
paths = 40
replicas = 2
"""


@pytest.fixture
def tiny(tmp_path):
    p = tmp_path / "tiny.toml"
    p.write_text(TINY)
    return p


def _solve(**kw):
    a = dict(problem=LOGISTIC, law=LAW, t_max=0.2, paths=40, replicas=2, keep_kernels=False)
    a.update(kw)
    return solve(a.pop("problem"), a.pop("law"), **a)


def _simulate(**kw):
    a = dict(problem=LOGISTIC, algorithm="sgd", t_max=0.2, dt=0.05, d=20, gamma=0.5, seeds=1)
    a.update(kw)
    return simulate(a.pop("problem"), a.pop("algorithm"), **a)


def _online(**kw):
    a = dict(problem=LOGISTIC, gamma=0.5, t_max=0.2, dt=0.05)
    a.update(kw)
    return solve_online(a.pop("problem"), **a)


ENTRIES = {"solve": _solve, "simulate": _simulate, "solve_online": _online}


# ---- finding 7: every API entry checks its arguments ----------------------------------------
@pytest.mark.parametrize("entry", sorted(ENTRIES))
@pytest.mark.parametrize("kw, key", [
    ({"t_max": -1}, "t_max"), ({"t_max": math.nan}, "t_max"), ({"t_max": math.inf}, "t_max"),
    ({"t_max": "1"}, "t_max"), ({"t_max": None}, "t_max"), ({"t_max": True}, "t_max"),
    ({"problem": "logistic"}, "problem"), ({"problem": None}, "problem"),
    ({"problem": make_model("logistic")}, "problem"),
])
def test_api_entries_refuse_bad_arguments_with_config_errors(entry, kw, key):
    """Was: raw IndexError / AttributeError / 'cannot convert float NaN to integer' / TypeError."""
    with pytest.raises(ConfigError) as e:
        ENTRIES[entry](**kw)
    assert e.value.key == key and "\n" not in str(e.value), str(e.value)
    assert repr(kw[key])[:20] in str(e.value) or key == "problem"


@pytest.mark.parametrize("entry, kw, key", [
    ("solve", {"paths": "1000"}, "paths"), ("solve", {"paths": 40.0}, "paths"), ("solve", {"replicas": "2"}, "replicas"),
    ("solve", {"seed": -1}, "seed"), ("solve", {"seed": "x"}, "seed"), ("solve", {"max_memory_gb": math.nan}, "max_memory_gb"),
    ("solve", {"max_memory_gb": "8"}, "max_memory_gb"), ("solve", {"workers": -1}, "workers"),
    ("solve", {"snapshots": "5"}, "snapshots"), ("solve", {"rtol": "0.1"}, "rtol"), ("solve", {"tail": math.nan}, "tail"),
    ("solve", {"response_window": -1.0}, "response_window"), ("solve", {"law": "sgd"}, "law"), ("solve", {"law": None}, "law"),
    ("solve", {"extrapolate": "yes"}, "extrapolate"), ("solve", {"blas_threads": "x"}, "blas_threads"),
    ("simulate", {"seeds": "2"}, "seeds"), ("simulate", {"seeds": [1, "a"]}, "seeds"), ("simulate", {"seed": -1}, "seed"),
    ("simulate", {"max_memory_gb": math.nan}, "max_memory_gb"), ("simulate", {"seeds": 10**9}, "seeds"),
    ("solve_online", {"gamma": "0.5"}, "gamma"), ("solve_online", {"dt": math.nan}, "dt"),
    ("solve_online", {"method": "x"}, "method"), ("solve_online", {"mc_samples": 0}, "mc_samples"),
    ("solve_online", {"dt": 1e-12}, "dt"), ("solve_online", {"seed": -1}, "seed"),
])
def test_api_arguments_strings_nan_and_ranges(entry, kw, key):
    """Strings for numbers refused (paths='1000' was accepted), a NaN memory budget refused (it switched
    the budget off), negative seeds named (numpy's 'expected non-negative integer' before)."""
    with pytest.raises(ConfigError) as e:
        ENTRIES[entry](**kw)
    assert e.value.key == key, str(e.value)


@pytest.mark.parametrize("kw", [{"delta": np.float32(2.0)}, {"ridge": np.float32(0.1)}, {"init_scale": np.int64(1)},
                                {"init_overlap": np.float32(0.5)}])
def test_problem_accepts_numpy_scalars(kw):
    """np.float32 delta was refused ('must be a finite number > 0')."""
    args = dict(delta=2.0, ridge=0.1, init_scale=0.5)
    args.update(kw)
    p = Problem(make_model("linear"), **args)
    assert all(isinstance(getattr(p, k), float) for k in ("delta", "ridge", "init_scale"))


@pytest.mark.parametrize("kw, key", [({"delta": "2"}, "problem.delta"), ({"delta": True}, "problem.delta"),
                                     ({"ridge": math.nan}, "problem.ridge"), ({"init_overlap": math.nan}, "problem.init_overlap"),
                                     ({"init_overlap": 1e6}, "problem.init_overlap"), ({"init_scale": 1e5}, "problem.init_scale")])
def test_problem_refuses_bad_numbers(kw, key):
    args = dict(delta=2.0, ridge=0.1, init_scale=0.5)
    args.update(kw)
    with pytest.raises(ConfigError) as e:
        Problem(make_model("linear"), **args)
    assert e.value.key == key


def test_numpy_scalars_run_like_python_numbers():
    a = _solve(t_max=np.float32(0.2), paths=np.int64(40), replicas=np.int32(2), max_memory_gb=np.float32(8))
    b = _solve(t_max=float(np.float32(0.2)))
    np.testing.assert_array_equal(a.test_loss.values, b.test_loss.values)
    s = _simulate(t_max=np.float32(0.2), d=np.int32(20), gamma=np.float32(0.5), seeds=np.int64(1))
    assert s.sizes["seed"] == 1


def test_one_replica_is_refused_for_monte_carlo_only():
    """solve(replicas=1) returned a zero standard error; the exact path needs no replicas."""
    with pytest.raises(ConfigError) as e:
        _solve(replicas=1)
    assert e.value.key == "replicas" and "standard error" in str(e.value)
    exact = _solve(problem=LINEAR, law=laws.GD(0.05), replicas=1)
    assert exact.attrs["exact_path"] == 1


def test_simulator_refuses_a_huge_d_by_its_memory_estimate():
    """d = 1e7 was a MemoryError (1.42 PiB) after the allocation was tried; refused before now."""
    tracemalloc.start()
    try:
        with pytest.raises(MemoryLimitExceeded, match="max_memory_gb"):
            _simulate(d=10**7)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 50 * 2**20
    with pytest.raises(MemoryLimitExceeded):
        _simulate(d=2000, max_memory_gb=1e-3)
    assert _simulate(d=20, max_memory_gb=math.inf).sizes["seed"] == 1


@pytest.mark.parametrize("command", ["simulate", "solve", "compare"])
def test_huge_initial_overlap_is_an_input_error(tmp_path, tiny, command):
    """init_overlap = 1e6 made trace Q_0 = 1e12: 'simulation diverged at t = 0', exit 3."""
    r = cli(command, tiny, "--out", tmp_path / "o", "-s", "problem.init_overlap=1e6")
    one_line_error(r, 2, "problem.init_overlap", "trace Q_0")
    assert not (tmp_path / "o").exists()
