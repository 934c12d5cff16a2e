"""Configuration: defaults, round trips, validation messages (unknown keys, types, ranges, cross-keys)."""

import math
import re

import pytest
from hypothesis import given, settings, strategies as st

from sgd_dmft import laws, problem
from sgd_dmft.config import SCHEMA, Config, ConfigError, defaults, load_config, parse_config


def _err(mapping) -> str:
    with pytest.raises(ConfigError) as ei:
        parse_config(mapping)
    msg = str(ei.value)
    assert "\n" not in msg, msg
    assert isinstance(ei.value, ValueError)
    return msg


def test_defaults_filled_and_round_trip(tmp_path):
    c = parse_config({})
    assert c.to_dict() == defaults()
    assert c.problem["delta"] == 2.0 and c.simulation["d"] == 2000 and c.solver["paths"] == 8000 and c.solver["replicas"] == 8
    p = tmp_path / "c.toml"
    p.write_text(c.to_toml())
    assert load_config(p) == c
    # ints accepted for floats, normalised to float
    c2 = parse_config({"problem": {"delta": 3}})
    assert c2.problem["delta"] == 3.0 and isinstance(c2.problem["delta"], float)


def test_example_config_loads():
    from pathlib import Path

    c = load_config(Path(__file__).parents[1] / "examples" / "demo.toml")
    assert c.problem["model"] == "logistic" and c.dynamics["t_max"] == 3.0 and c.simulation["d"] == 2000
    assert c.solver["paths"] == 8000 and c.simulation["seeds"] == 16 and c.dynamics["dt"] == 0.01


def test_make_problem_and_law():
    c = parse_config({"problem": {"model": "committee", "student_width": 2, "teacher_width": 3,
                                  "activation": "relu", "noise": 0.1, "ridge": 0.2}})
    pb = c.make_problem()
    assert isinstance(pb, problem.Problem)
    assert (pb.k, pb.kstar, pb.delta, pb.ridge) == (2, 3, 2.0, 0.2)
    assert pb.model.meta["activation"] == "relu" and pb.model.noise == 0.1
    law = c.make_law()
    assert isinstance(law, laws.SGD) and law.dt == 0.01 and law.gamma == 0.5
    assert isinstance(c.with_overrides({"dynamics.algorithm": "gf"}).make_law(), laws.GD)
    per = c.with_overrides({"dynamics.algorithm": "persistent", "dynamics.persist_b": 0.3}).make_law()
    assert isinstance(per, laws.Persistent) and per.b == 0.3
    with pytest.raises(ConfigError, match="online"):
        c.with_overrides({"dynamics.algorithm": "online"}).make_law()


def test_with_overrides_validates():
    c = parse_config({})
    c2 = c.with_overrides({"dynamics.gamma": 0.3, "simulation.d": 500})
    assert c2.dynamics["gamma"] == 0.3 and c2.simulation["d"] == 500 and c.dynamics["gamma"] == 0.5
    with pytest.raises(ConfigError, match=r"dynamics\.gamma"):
        c.with_overrides({"dynamics.gamma": -1})
    with pytest.raises(ConfigError, match="did you mean 'dynamics.gamma'"):
        c.with_overrides({"dynamics.gama": 1.0})


@pytest.mark.parametrize("mapping, expected", [
    ({"problem": {"detla": 1.0}}, "unknown key 'problem.detla' (did you mean 'problem.delta'?)"),
    ({"dynamics": {"gama": 1.0}}, "unknown key 'dynamics.gama' (did you mean 'dynamics.gamma'?)"),
    ({"problem": {"gamma": 1.0}}, "did you mean 'dynamics.gamma'?"),
    ({"problm": {}}, "unknown section 'problm' (did you mean 'problem'?)"),
    ({"problem": {"model": "logistc"}}, "did you mean 'logistic'?"),
])
def test_unknown_names_suggest(mapping, expected):
    assert expected in _err(mapping)


@pytest.mark.parametrize("section, key, value", [
    ("simulation", "d", True),          # bool is not an int
    ("simulation", "d", 100.0),         # float is not an int
    ("simulation", "seeds", "4"),
    ("problem", "delta", "2"),
    ("problem", "delta", False),
    ("problem", "model", 3),
    ("dynamics", "gamma", [0.5]),
    ("solver", "paths", {"a": 1}),
])
def test_wrong_types(section, key, value):
    msg = _err({section: {key: value}})
    assert f"{section}.{key}" in msg and repr(value) in msg and "must be" in msg


@pytest.mark.parametrize("section, key, value", [
    ("problem", "delta", 0.0), ("problem", "delta", -1), ("problem", "delta", math.inf),
    ("problem", "noise", -0.1), ("problem", "ridge", -1e-9), ("problem", "student_width", 0),
    ("problem", "init_scale", -1.0), ("problem", "activation", "sigmoid"), ("problem", "init_overlap", math.nan),
    ("dynamics", "algorithm", "adam"), ("dynamics", "gamma", 0), ("dynamics", "t_max", -1.0),
    ("dynamics", "dt", 0.0), ("dynamics", "persist_b", 0.0), ("dynamics", "persist_b", 1.5),
    ("dynamics", "persist_tau", 0.0),
    ("simulation", "d", 9), ("simulation", "batch", 0), ("simulation", "batching", "poisson"),
    ("simulation", "seeds", 0), ("simulation", "seed", -1),
    ("solver", "paths", 9), ("solver", "replicas", 1), ("solver", "seed", -3), ("solver", "max_memory_gb", 0.0),
])
def test_out_of_range(section, key, value):
    msg = _err({section: {key: value}})
    assert f"{section}.{key}" in msg and "must be" in msg


@pytest.mark.parametrize("mapping, fragment", [
    ({"problem": {"model": "linear", "student_width": 2}}, "problem.student_width"),
    ({"problem": {"model": "logistic", "teacher_width": 2}}, "problem.teacher_width"),
    ({"problem": {"model": "committee", "student_width": 2, "teacher_width": 3, "init_overlap": 0.5}},
     "problem.init_overlap"),
    ({"dynamics": {"algorithm": "sgd", "gamma": 0.1, "dt": 0.2}}, "dynamics.dt"),
    ({"dynamics": {"t_max": 1.0, "dt": 2.0}}, "dynamics.dt"),
    ({"dynamics": {"algorithm": "reshuffle", "gamma": 0.5, "dt": 0.3}}, "gamma/dt"),
    ({"dynamics": {"algorithm": "persistent", "dt": 0.5, "persist_tau": 0.1}}, "dynamics.persist_tau"),
    ({"problem": {"delta": 0.5}, "simulation": {"d": 100, "batch": 51}}, "simulation.batch"),
    ({"dynamics": {"dt": 0.01, "dt_max": 0.001}}, "dynamics.dt_max"),
    ({"dynamics": {"algorithm": "sgd", "gamma": 0.5, "growth": 0.1}}, "dynamics.dt_max"),
    ({"dynamics": {"algorithm": "sgd", "gamma": 0.5, "growth": 0.1, "dt_max": 0.6}}, "dynamics.dt_max"),
    ({"dynamics": {"algorithm": "reshuffle", "gamma": 0.5, "dt": 0.05, "growth": 0.1}}, "dynamics.growth"),
    ({"dynamics": {"algorithm": "online", "dt": 0.01, "dt_max": 0.001}}, "dynamics.dt_max"),
    ({"dynamics": {"algorithm": "persistent", "growth": 0.1}}, "dynamics.dt_max"),
])
def test_cross_key_checks(mapping, fragment):
    assert fragment in _err(mapping)


def test_cross_key_ok_cases():
    parse_config({"dynamics": {"algorithm": "online", "growth": 0.1}})  # graded records for the online ODE
    parse_config({"problem": {"model": "committee", "student_width": 3, "teacher_width": 3, "init_overlap": 0.5}})
    parse_config({"dynamics": {"algorithm": "reshuffle", "gamma": 0.5, "dt": 0.05}})
    parse_config({"dynamics": {"algorithm": "gd", "gamma": 0.1, "dt": 0.2}})  # dt > gamma fine for GD
    parse_config({"problem": {"delta": 0.5}, "simulation": {"d": 100, "batch": 50}})
    cfg = parse_config({"dynamics": {"algorithm": "sgd", "gamma": 0.5, "dt": 0.01, "growth": 0.1, "dt_max": 0.05}})
    law = cfg.make_law()
    assert law.graded and law.largest_step == 0.05 and law.times(2.0)[-1] == pytest.approx(2.0, abs=0.03)
    assert not parse_config({"dynamics": {"algorithm": "gd", "growth": 0.0, "dt_max": 0.5}}).make_law().graded


def test_load_errors(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.toml")
    p = tmp_path / "bad.toml"
    p.write_text("[problem]\ndelta = = 2\n")
    with pytest.raises(ConfigError, match="invalid TOML"):
        load_config(p)


# ---- random bad values (hypothesis) ----
_ALL_KEYS = [(s, k) for s, keys in SCHEMA.items() for k in keys]
_bad_type_values = st.one_of(st.booleans(), st.text(max_size=5), st.lists(st.integers(), max_size=2),
                             st.none(), st.dictionaries(st.text(max_size=2), st.integers(), max_size=1))


@settings(max_examples=150, deadline=None)
@given(sk=st.sampled_from(_ALL_KEYS), value=_bad_type_values)
def test_random_bad_types_rejected(sk, value):
    section, key = sk
    spec = SCHEMA[section][key]
    if value is None:  # TOML has no null; a None must still be rejected cleanly
        pass
    if spec.kind == "str" and isinstance(value, str):
        if value in spec.allowed:  # pragma: no cover - tiny chance of a valid choice
            return
    if spec.kind == "bool" and isinstance(value, bool):
        return  # a valid value
    if spec.kind == "times" and isinstance(value, list):
        return  # a list of numbers may be a valid schedule (its rules: tests/test_schedules.py)
    msg = _err({section: {key: value}})
    assert f"{section}.{key}" in msg


@settings(max_examples=150, deadline=None)
@given(section=st.sampled_from(list(SCHEMA)), key=st.text(min_size=1, max_size=12))
def test_random_unknown_keys_rejected(section, key):
    if key in SCHEMA[section]:
        return
    msg = _err({section: {key: 1}})
    assert msg.startswith("unknown key")


@settings(max_examples=150, deadline=None)
@given(key=st.sampled_from([("problem", "delta"), ("problem", "noise"), ("problem", "ridge"),
                            ("dynamics", "gamma"), ("dynamics", "t_max"), ("dynamics", "dt"),
                            ("solver", "max_memory_gb"), ("problem", "init_scale")]),
       value=st.floats(max_value=-1e-12) | st.just(math.nan) | st.just(math.inf))
def test_random_negative_floats_rejected(key, value):
    section, k = key
    assert f"{section}.{k}" in _err({section: {k: value}})


@settings(max_examples=100, deadline=None)
@given(key=st.sampled_from([("simulation", "d", 10), ("simulation", "batch", 1), ("simulation", "seeds", 1),
                            ("solver", "paths", 10), ("solver", "replicas", 2), ("problem", "student_width", 1)]),
       below=st.integers(min_value=1, max_value=10**6))
def test_random_small_ints_rejected(key, below):
    section, k, lo = key
    assert f"{section}.{k}" in _err({section: {k: lo - below}})


@settings(max_examples=60, deadline=None)
@given(gamma=st.floats(0.01, 2.0), t_max=st.floats(0.1, 5.0), frac=st.floats(0.01, 1.0))
def test_random_valid_dynamics_accepted(gamma, t_max, frac):
    dt = min(gamma, t_max) * frac
    c = parse_config({"dynamics": {"gamma": gamma, "t_max": t_max, "dt": dt}})
    assert isinstance(c, Config) and c.make_law().dt == dt


# ---- the law's own rules (laws.py) reported under the config key they come from ----
@pytest.mark.parametrize("dynamics, key, value, allowed", [
    ({"algorithm": "sgd", "gamma": 0.1, "dt": 0.2}, "dynamics.dt", "0.2", "dt <= gamma"),
    ({"algorithm": "sgd", "gamma": 0.5, "growth": 0.1, "dt_max": 0.6}, "dynamics.dt_max", "0.6", "dt_max <= gamma"),
    ({"algorithm": "sgd", "gamma": 0.5, "growth": 0.1}, "dynamics.dt_max", "0.0", "needs a cap dt_max > 0"),
    ({"algorithm": "reshuffle", "gamma": 0.5, "dt": 0.3}, "dynamics.dt", "0.3", "positive integer"),
    ({"algorithm": "reshuffle", "gamma": 0.5, "dt": 0.05, "growth": 0.1}, "dynamics.growth", "0.1", "uniform grid"),
    ({"algorithm": "persistent", "dt": 0.5, "persist_tau": 0.1}, "dynamics.persist_tau", "0.1", "exceeds 1"),
    ({"algorithm": "persistent", "growth": 0.1}, "dynamics.dt_max", "0.0", "needs a cap dt_max > 0"),
    ({"algorithm": "online", "dt_max": 0.001}, "dynamics.dt_max", "0.001", ">= dt"),
])
def test_law_rules_name_config_key_value_and_rule(dynamics, key, value, allowed):
    with pytest.raises(ConfigError) as ei:
        parse_config({"dynamics": dynamics})
    msg = str(ei.value)
    assert msg.startswith(f"{key} = {value}:") and allowed in msg and "\n" not in msg
    assert ei.value.key == key


def test_algorithms_are_the_registry():
    from sgd_dmft import algorithms
    from sgd_dmft.config import ALGORITHMS

    assert tuple(ALGORITHMS) == ("gf", "gd", "sgd", "sme", "reshuffle", "online", "persistent")
    assert tuple(ALGORITHMS) == algorithms.names()
    assert [n for n in ALGORITHMS if algorithms.spec(n).law is None] == ["online"]


def test_parse_value():
    from sgd_dmft.config import parse_value

    assert parse_value("0.5") == 0.5 and parse_value("[1, 2]") == [1, 2] and parse_value("true") is True
    assert parse_value('"sgd"') == "sgd" and parse_value("sgd") == "sgd"


def test_config_error_is_the_package_one():
    from sgd_dmft import errors

    assert ConfigError is errors.ConfigError and issubclass(ConfigError, errors.SgdDmftError)


def test_solver_accuracy_keys():
    c = parse_config({"solver": {"extrapolate": False, "rtol": 0.01, "max_time_s": 30}})
    assert c.solver["extrapolate"] is False and c.solver["rtol"] == 0.01 and c.solver["max_time_s"] == 30.0
    assert parse_config({}).solver["extrapolate"] is True
    for key, bad in (("extrapolate", 1), ("extrapolate", "no"), ("rtol", -0.1), ("max_time_s", float("inf"))):
        msg = _err({"solver": {key: bad}})
        assert f"solver.{key}" in msg and "\n" not in msg


@pytest.mark.parametrize("mapping, expected", [
    ({"dynamics": {"algorithm": "SGD"}}, "did you mean 'sgd'?"),
    ({"dynamics": {"algorithm": "resuffle"}}, "did you mean 'reshuffle'?"),
    ({"problem": {"model": "Logistic"}}, "did you mean 'logistic'?"),
    ({"problem": {"activation": "ReLU"}}, "did you mean 'relu'?"),
    ({"simulation": {"batching": "Uniform"}}, "did you mean 'uniform'?"),
])
def test_enumerated_values_get_a_suggestion(mapping, expected):
    """Issue 21: did-you-mean for values too, case-insensitive (keys had it already)."""
    with pytest.raises(ConfigError, match=re.escape(expected)):
        parse_config(mapping)


def test_overrides_take_short_keys_like_the_sweeps():
    c = parse_config({})
    assert c.with_overrides({"gamma": 0.3}).dynamics["gamma"] == 0.3
    with pytest.raises(ConfigError, match="ambiguous: write one of simulation.seed, solver.seed"):
        c.with_overrides({"seed": 1})
    with pytest.raises(ConfigError, match="did you mean 'gamma'"):
        c.with_overrides({"gama": 1})


def test_api_names_get_a_suggestion():
    from sgd_dmft import make_model
    from sgd_dmft.simulate import algorithm_for

    with pytest.raises(ConfigError, match="did you mean 'sgd'"):
        algorithm_for("SGD", dt=0.1)
    with pytest.raises(ValueError, match="did you mean 'logistic'"):
        make_model("Logistic")
    with pytest.raises(ValueError, match="did you mean 'tanh'"):
        make_model("committee", activation="Tanh")
