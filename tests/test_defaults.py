"""One set of defaults for the API and the configuration (issue 21): every API signature default equals the
config default of the key it stands for (both read src/sgd_dmft/defaults.py), the deliberate differences are
listed here with their reason, and docs/conventions.md's table matches the module."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

from sgd_dmft import defaults, simulate as named
from sgd_dmft.config import SCHEMA
from sgd_dmft.dmft import solve
from sgd_dmft.models import Problem, committee, make_model, two_layer
from sgd_dmft.simulation import simulate

ROOT = Path(__file__).resolve().parents[1]

# (API callable, argument) -> the config key it stands for
SAME = {
    (named.simulate, "gamma"): "dynamics.gamma",
    (named.simulate, "batch"): "simulation.batch",
    (named.simulate, "batching"): "simulation.batching",
    (named.simulate, "seeds"): "simulation.seeds",
    (named.simulate, "seed"): "simulation.seed",
    (named.simulate, "max_memory_gb"): "simulation.max_memory_gb",
    (named.simulate, "growth"): "dynamics.growth",
    (named.algorithm_for, "gamma"): "dynamics.gamma",
    (named.algorithm_for, "batch"): "simulation.batch",
    (named.algorithm_for, "batching"): "simulation.batching",
    (named.algorithm_for, "growth"): "dynamics.growth",
    (named.algorithm_for, "dt_max"): "dynamics.dt_max",
    (named.simulate, "dt_max"): "dynamics.dt_max",
    (simulate, "seeds"): "simulation.seeds",
    (simulate, "seed"): "simulation.seed",
    (simulate, "max_memory_gb"): "simulation.max_memory_gb",
    (solve, "paths"): "solver.paths",
    (solve, "replicas"): "solver.replicas",
    (solve, "seed"): "solver.seed",
    (solve, "max_memory_gb"): "solver.max_memory_gb",
    (solve, "tail"): "solver.tail",
    (solve, "rtol"): "solver.rtol",
    (solve, "max_time_s"): "solver.max_time_s",
    (solve, "response_window"): "solver.response_window",
    (make_model, "activation"): "problem.activation",
    (make_model, "noise"): "problem.noise",
    (make_model, "k"): "problem.student_width",
    (make_model, "kstar"): "problem.teacher_width",
    (committee, "activation"): "problem.activation",
    (committee, "noise"): "problem.noise",
    (two_layer, "activation"): "problem.activation",
    (two_layer, "noise"): "problem.noise",
    (two_layer, "loss"): "problem.loss",
    (two_layer, "kstar"): "problem.teacher_width",
    (two_layer, "teacher"): "problem.teacher",
    (two_layer, "second_layer"): "problem.second_layer",
    (two_layer, "bias"): "problem.bias",
    (Problem, "init_scale"): "problem.init_scale",
    (Problem, "init_overlap"): "problem.init_overlap",
    (Problem, "init_q"): "problem.init_q",
    (Problem, "init_m"): "problem.init_m",
}
# deliberate differences (docs/conventions.md, "Defaults"): (callable, argument) -> (config key, reason)
DIFFERENT = {
    (Problem, "ridge"): ("problem.ridge", "a hand-built Problem has no penalty unless asked; 0.1 is the demo's"),
    (solve, "workers"): ("solver.workers", "the API runs in-process; the config's 0 (one per core) is run.py's"),
    (solve, "extrapolate"): ("solver.extrapolate", "None = the limit for continuous-time laws = the config's true"),
    (committee, "k"): ("problem.student_width", "a committee's constructor defaults to a committee"),
    (committee, "kstar"): ("problem.teacher_width", "a committee's constructor defaults to a committee"),
    (two_layer, "k"): ("problem.student_width", "a two-layer constructor defaults to a two-layer net"),
}
# the config's "none" (no cap, no target, not given, the mean of s) where the API says None
NONE_IS = {"problem.teacher": "", "problem.second_layer": "mean", "problem.bias": 0.0, "dynamics.dt_max": 0.0, "problem.init_q": 0.0, "problem.init_m": 0.0, "solver.rtol": 0.0, "solver.max_time_s": 0.0, "solver.response_window": 0.0}


def _config_default(dotted: str):
    section, key = dotted.split(".")
    return SCHEMA[section][key].default


def _api_default(fn, arg: str):
    p = inspect.signature(fn).parameters[arg]
    assert p.default is not inspect.Parameter.empty, f"{fn.__name__}({arg}=) has no default"
    return p.default


@pytest.mark.parametrize("fn, arg", list(SAME), ids=[f"{f.__name__}-{a}" for f, a in SAME])
def test_api_default_equals_config_default(fn, arg):
    want = _config_default(SAME[fn, arg])
    got = _api_default(fn, arg)
    if got is None and SAME[fn, arg] in NONE_IS:
        got = NONE_IS[SAME[fn, arg]]
    assert got == want and type(got) is type(want), (
        f"{fn.__name__}({arg}={got!r}) but {SAME[fn, arg]} = {want!r}: change sgd_dmft/defaults.py, not one side")


def test_deliberate_differences_still_differ():
    """An entry of DIFFERENT that has come to agree belongs in SAME."""
    for (fn, arg), (dotted, reason) in DIFFERENT.items():
        assert _api_default(fn, arg) != _config_default(dotted), f"{fn.__name__}({arg}=) now agrees: {reason}"


def test_every_argument_named_like_a_config_key_is_checked():
    """A new argument of an entry that shares a config key's name must be listed (SAME or DIFFERENT)."""
    keys = {k for body in SCHEMA.values() for k in body}
    listed = set(SAME) | set(DIFFERENT)
    for fn in {f for f, _ in listed}:
        for name, p in inspect.signature(fn).parameters.items():
            if name in keys and p.default is not inspect.Parameter.empty:
                assert (fn, name) in listed, f"{fn.__name__}({name}=) has a default and no entry in test_defaults.py"


def test_config_reads_the_defaults_module():
    for name in defaults.__all__:
        value = getattr(defaults, name)
        keys = [f"{s}.{k}" for s, body in SCHEMA.items() for k, spec in body.items()
                if k == name.lower() and spec.default == value]
        assert keys, f"defaults.{name} = {value!r} is no config default of a key '{name.lower()}'"


def test_the_documented_table_matches_the_module():
    text = (ROOT / "docs" / "conventions.md").read_text()
    rows = dict(re.findall(r"^\| `([A-Z_]+)` \| `([^`]*)` \|", text[text.index("## Defaults"):], re.M))
    assert set(rows) == set(defaults.__all__), sorted(set(rows) ^ set(defaults.__all__))
    for name, shown in rows.items():
        assert shown == repr(getattr(defaults, name)).replace("'", '"'), (name, shown)
