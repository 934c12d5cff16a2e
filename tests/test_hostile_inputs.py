"""Issue 23, findings 3, 5 and 7: infinite-variance links, memory outside the estimates, API argument
checks and exit codes (input errors are exit 2, never exit 3 "diverged")."""

from __future__ import annotations

import math
import tracemalloc
import warnings

import numpy as np
import pytest

from sgd_dmft import ConfigError, MemoryLimitExceeded, Problem, laws, make_model
from sgd_dmft.dmft import solve
from sgd_dmft.models.probe import ModelProbeWarning
from sgd_dmft.online import solve_online
from sgd_dmft.simulate import simulate

from clitools import cli, one_line_error

LOGISTIC = Problem(make_model("logistic"), delta=2.0, ridge=0.1, init_scale=0.5)
LINEAR = Problem(make_model("linear"), delta=2.0, ridge=0.1, init_scale=0.5)
LAW = laws.SGD(dt=0.05, gamma=0.5)

from conftest import TINY  # noqa: E402  (the shared tiny config; the `tiny` fixture writes it)




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


# ---- finding 3: links of infinite variance refused before a run -----------------------------
from sgd_dmft import custom  # noqa: E402


def finite_variance_problem(text, kstar):
    from sgd_dmft.models.teachers import finite_variance_problem as rule

    return rule(text, kstar)

INFINITE_LINKS = ["1/z1", "1/z1^2", "z1/z2", "1/(z1-1)", "1/(z1^2+z2^2)", "1/tanh(z1)", "1/he2(z1)", "2/(z1*z2)",
                  "1/(1e-300+z1^2)", "1/(z1+1/z2)", "1/erf(z1)", "1/(he6(z1)+11)"]
FINITE_LINKS = ["z1", "z1*z2", "he3(z1)/sqrt(6)", "tanh(z1+he3(z2))", "relu(z1)", "sign(z1)", "1/(1+z1^2)",
                "1/(2+tanh(z1))", "1/sign(z1)", "1/(1+relu(z1))", "z1/(1+z1^2+z2^2)", "1/(he4(z1)+7)",
                "1/(1+(z1-1)^2)", "(z1+z2)^60", "1/(1e-3+z1^2)", "z1/(1+1/(1+z1^2))", "1/(2-erf(z1))"]


@pytest.mark.parametrize("text", INFINITE_LINKS)
def test_links_with_a_pole_are_refused(text):
    """two_layer with teacher '1/z1' gave test loss 99 +- 1.3 for an infinite loss."""
    assert finite_variance_problem(text, 2)
    with pytest.raises(ConfigError) as e:
        make_model("two_layer", k=2, kstar=2, teacher=text)
    assert e.value.key == "problem.teacher" and repr(text) in str(e.value) and "E[y^2] is infinite" in str(e.value)


@pytest.mark.parametrize("text", FINITE_LINKS)
def test_links_of_finite_variance_are_accepted(text):
    assert finite_variance_problem(text, 2) is None
    make_model("two_layer", k=2, kstar=2, teacher=text)


def test_the_logistic_loss_takes_any_link():
    """y = sign(g + noise eps) is bounded: a pole of g does no harm there."""
    assert make_model("two_layer", k=2, kstar=2, teacher="1/z1", loss="logistic").loss_name == "logistic"


@pytest.mark.parametrize("teacher, fragment", [("1/z1", "the denominator 'z1'"), ("1" + "0" * 400 + "*z1", "401 digits"),
                                               ("1e999*z1", "not a finite number")])
def test_cli_infinite_links_and_huge_literals_are_input_errors(tmp_path, tiny, teacher, fragment):
    """A 400-digit literal was 'int too large to convert to float', exit 3."""
    r = cli("solve", tiny, "--out", tmp_path / "o", "-s", 'problem.model="two_layer"', "-s", f'problem.teacher="{teacher}"')
    one_line_error(r, 2, "problem.teacher", fragment)
    assert not (tmp_path / "o").exists()


def _loss(r, y):
    return 0.5 * (r[..., 0] - y) ** 2


CUSTOM_INFINITE = {
    "1/z1": lambda z, e: 1 / z[..., 0], "1/z1**2": lambda z, e: 1 / z[..., 0] ** 2, "z1/z2": lambda z, e: z[..., 0] / z[..., 1],
    "exp(z1**2)": lambda z, e: np.exp(z[..., 0] ** 2), "exp(z1**2/4)": lambda z, e: np.exp(z[..., 0] ** 2 / 4),
    "1/(z1^2+z2^2)": lambda z, e: 1 / (z[..., 0] ** 2 + z[..., 1] ** 2), "1/(z1-5)": lambda z, e: 1 / (z[..., 0] - 5),
    "tan(z1)": lambda z, e: np.tan(z[..., 0]), "1/eps": lambda z, e: 1 / e, "exp(z1**3)": lambda z, e: np.exp(z[..., 0] ** 3),
    "z1**400": lambda z, e: z[..., 0] ** 400, "NaN for z1 > 3": lambda z, e: np.where(z[..., 0] > 3, np.nan, z[..., 0]),
}
CUSTOM_FINITE = {
    "z1**3": lambda z, e: z[..., 0] ** 3, "tanh": lambda z, e: np.tanh(z[..., 0]), "relu": lambda z, e: np.maximum(z[..., 0], 0),
    "sign": lambda z, e: np.sign(z[..., 0]), "exp(z1)": lambda z, e: np.exp(z[..., 0]),
    "1/(1+z1**2)": lambda z, e: 1 / (1 + z[..., 0] ** 2), "abs(z1)**0.5": lambda z, e: np.abs(z[..., 0]) ** 0.5,
    "log(1+z1**2)": lambda z, e: np.log(1 + z[..., 0] ** 2), "log|z1|": lambda z, e: np.log(np.abs(z[..., 0])),
    "abs(z1)**-0.25": lambda z, e: np.abs(z[..., 0]) ** -0.25, "z1**60": lambda z, e: z[..., 0] ** 60,
    "exp(0.2 z1**2)": lambda z, e: np.exp(0.2 * z[..., 0] ** 2), "z1 + 0.1 eps": lambda z, e: z[..., 0] + 0.1 * e,
    "tanh(100 z1)": lambda z, e: np.tanh(100 * z[..., 0]),
}


@pytest.mark.parametrize("name", sorted(CUSTOM_INFINITE))
def test_custom_labels_of_infinite_variance_or_nan_are_refused(name):
    """A NaN custom label was reported as a diverged run (exit 3)."""
    with pytest.raises(ConfigError) as e:
        custom(_loss, CUSTOM_INFINITE[name], kstar=2, smooth=True)
    assert e.value.key == "problem.model" and ("infinite" in str(e.value) or "non-finite" in str(e.value))


@pytest.mark.parametrize("name", sorted(CUSTOM_FINITE))
def test_custom_labels_of_finite_variance_are_accepted(name):
    with warnings.catch_warnings():  # huge labels (z1**60) can make the probe see grad jumps: its finding, not ours
        warnings.simplefilter("ignore", ModelProbeWarning)
        assert custom(_loss, CUSTOM_FINITE[name], kstar=2, smooth=True).kstar == 2


def test_a_callable_teacher_is_checked_like_user_code():
    with pytest.raises(ConfigError) as e:
        Problem(make_model("two_layer", k=2, kstar=1, teacher=lambda rs: 1.0 / rs[..., 0]), delta=2.0)
    assert e.value.key == "problem.teacher"
    Problem(make_model("two_layer", k=2, kstar=1, teacher=lambda rs: np.tanh(rs[..., 0])), delta=2.0)


# ---- finding 5: every batch and process bounded ----------------------------------------------
import time  # noqa: E402
import warnings  # noqa: E402

import xarray as xr  # noqa: E402

from sgd_dmft.dmft import accuracy  # noqa: E402
from sgd_dmft.dmft.accuracy import Target, extra_replicas  # noqa: E402


def test_an_unreachable_rtol_adds_no_replicas_and_says_so(monkeypatch):
    """rtol = 1e-9 without max_time_s sized the next batch at ~1e14 replicas (memory +2.6 GB in 60 s)."""
    from sgd_dmft.dmft import replicas

    def bounded(*args, **kw):  # fails (instead of allocating) where a batch is past any bound
        n = original(*args, **kw)
        assert n <= 4096, f"a batch of {n} replicas"
        return n

    original = replicas.extra_replicas
    monkeypatch.setattr(replicas, "extra_replicas", bounded)
    with pytest.warns(RuntimeWarning, match="out of reach"):
        ds = solve(LOGISTIC, laws.SGD(0.1, 1.0), t_max=1.0, paths=1000, replicas=4, rtol=1e-9, keep_kernels=False)
    a = ds.attrs
    assert a["rtol_met"] == 0 and a["replicas"] == 4 and "replicas would be needed" in a["rtol_note"]


def test_batches_are_bounded_by_count_memory_and_time():
    t = Target(rtol=1e-9)
    with pytest.warns(RuntimeWarning, match=f"limit of {accuracy.MAX_REPLICAS} replicas"):
        assert extra_replicas(t, 4, 0.01, 1.0) == 0
    assert len(t.notes) == 1
    mem = Target(rtol=1e-3, memory_bytes=1e6)  # 5 replicas of 1e5 bytes fit in half of it
    with pytest.warns(RuntimeWarning, match="max_memory_gb"):
        assert extra_replicas(mem, 4, 0.01, 1.0, kept_bytes=1e5) == 0
    slow = Target(rtol=1e-3)  # 4 replicas took an hour: 440 would take 4.6 days
    with pytest.warns(RuntimeWarning, match="without max_time_s"):
        assert extra_replicas(slow, 4, 0.01, 3600.0 * 4) == 0
    timed = Target(rtol=1e-9, deadline=time.perf_counter() + 1e9)  # a deadline: up to the bound, no further
    with pytest.warns(RuntimeWarning, match="adding up to"):
        assert extra_replicas(timed, 4, 0.01, 1.0) == accuracy.MAX_REPLICAS - 4
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert extra_replicas(Target(rtol=0.005), 4, 0.01, 1.0) == int(math.ceil(4 * 4 * 1.1)) - 4  # reachable: as before


def test_a_tiny_rtol_with_a_huge_time_limit_is_not_a_divergence(tmp_path, tiny, monkeypatch):
    """rtol = 1e-300 with max_time_s = 1e300 overflowed: exit 3 'Numerical result out of range'."""
    monkeypatch.setattr(accuracy, "MAX_REPLICAS", 6)
    r = cli("solve", tiny, "--out", tmp_path / "o", "-s", "solver.rtol=1e-300", "-s", "solver.max_time_s=1e300",
            "-s", "solver.extrapolate=false")
    assert r.exit_code == 0, r.output
    with xr.open_dataset(tmp_path / "o" / "result.nc") as ds:
        assert ds.attrs["rtol_met"] == 0 and ds.attrs["replicas"] == 6 and "out of reach" in ds.attrs["rtol_note"]


def test_workers_are_capped_at_the_cores(tmp_path, tiny, monkeypatch):
    """solver.workers = 16 on 2 cores started 17 processes (4.1 GB, 4x slower)."""
    from sgd_dmft import experiment, run
    from sgd_dmft.dmft import planning

    monkeypatch.setattr(planning, "cores", lambda: 1)
    with pytest.warns(RuntimeWarning, match="capped at the 1 CPU cores"):
        ds = _solve(workers=16, replicas=4, paths=80)
    assert ds.attrs["workers"] == 1
    monkeypatch.setattr(run, "cores", lambda: 1)
    monkeypatch.setattr(experiment, "cores", lambda: 1)  # the experiment's workers: capped when compiled
    r = cli("solve", tiny, "--out", tmp_path / "o", "-s", "solver.workers=16", "-s", "solver.extrapolate=false")
    assert r.exit_code == 0 and "up to 1 at a time (solver.workers = 16 capped at the 1 CPU cores)" in r.output, r.output


# ---- finding 5 and 7: show reads untrusted files lazily and prints them escaped --------------
import json  # noqa: E402

import netCDF4  # noqa: E402

from sgd_dmft import results  # noqa: E402


def _result_dir(tmp_path, attrs=None, big=None, loss_shape=("time",), set_id="s1", summary=None, time_name="time"):
    """A result directory by hand: result.nc (time, train_loss, a `big` = (n, n) compressed junk variable
    never written: a few KB on disk) and optionally summary.json."""
    d = tmp_path / "res"
    d.mkdir()
    with netCDF4.Dataset(d / "result.nc", "w") as nc:
        nc.createDimension(time_name, 3)
        t = nc.createVariable(time_name, "f8", (time_name,))
        t[:] = [0.0, 0.5, 1.0]
        dims = tuple(time_name if x == "time" else x for x in loss_shape)
        for name, n in zip(dims, (None,) * len(dims)):
            if name not in nc.dimensions:
                nc.createDimension(name, 4)
        v = nc.createVariable("train_loss", "f8", dims)
        v[:] = np.ones(v.shape) * 0.25
        if big:
            nc.createDimension("a", big)
            nc.createDimension("b", big)
            nc.createVariable("junk", "f8", ("a", "b"), zlib=True, chunksizes=(100, big), fill_value=0.0)
        nc.setncatts({"result_set": set_id, "kind": "theory", **(attrs or {})})
    if summary is not None:
        (d / "summary.json").write_text(json.dumps({"result_set": set_id, **summary}))
    return d


def test_show_reads_only_what_it_prints(tmp_path):
    """A 94 KB file with a compressed 20000^2 variable took 6.8 GB: show loaded every variable."""
    d = _result_dir(tmp_path, big=4000)  # 128 MB uncompressed
    assert (d / "result.nc").stat().st_size < 2**20
    tracemalloc.start()
    try:
        r = cli("show", d)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert r.exit_code == 0 and "train_loss(t=1) = 0.25" in r.output, r.output
    assert peak < 64 * 2**20, peak


def test_show_refuses_variables_past_the_cap(tmp_path, monkeypatch):
    monkeypatch.setattr(results, "READ_MAX_BYTES", 28)  # the time coordinate: 24 bytes, read at opening
    d = _result_dir(tmp_path, loss_shape=("seed", "time"))  # the last time of 4 seeds: 32 bytes
    one_line_error(cli("show", d), 1, "'train_loss'", "32 bytes, more than the 28 bytes read")
    monkeypatch.setattr(results, "READ_MAX_BYTES", 16)
    one_line_error(cli("show", d), 1, "'time'", "24 bytes, more than the 16 bytes read")


def test_show_escapes_what_it_prints(tmp_path):
    """show printed attributes raw: terminal escapes and a fake 'all checks passed' line."""
    config = '[problem]\nmodel = "x\\u001b[2J"\n# all checks passed\ndelta = 2.0\n'
    d = _result_dir(tmp_path, attrs={"kind": "theory\x1b[31m\nall checks passed", "created": "\u202eevil",
                                     "config_toml": config})
    r = cli("show", d)
    assert r.exit_code == 0, r.output
    lines = r.output.splitlines()
    assert "all checks passed" not in [x.strip() for x in lines] and not any("\x1b" in x or "\u202e" in x for x in lines)
    assert "theory\\x1b[31m\\nall checks passed" in r.output and "\\u202eevil" in r.output
    assert "# configuration" in lines and 'model = "x\\u001b[2J"' in r.output and "# all checks passed" not in r.output


def test_show_survives_wrong_types_and_a_renamed_time(tmp_path):
    summary = {"discrepancy": {"test_loss": {"max_z": "9.9\nall checks passed", "z_t": [1], "at_time": None},
                               "train_loss": "oops"}}
    d = _result_dir(tmp_path, summary=summary, time_name="tyme", attrs={"config_toml": "not [toml"})
    r = cli("show", d)
    assert r.exit_code == 0 and r.exception is None, r.output
    assert "no time dimension" in r.output and "configuration (unreadable" in r.output
    assert "all checks passed" not in [x.strip() for x in r.output.splitlines()]


def test_a_stray_overflow_is_not_reported_as_a_divergence():
    """_classify mapped every ArithmeticError to exit 3 'diverged'; divergences are raised as Diverged."""
    from sgd_dmft.cli import _classify
    from sgd_dmft.errors import SolverDiverged

    assert _classify(OverflowError("int too large to convert to float")) == 1
    assert _classify(SolverDiverged("blew up")) == 3 and _classify(ConfigError("x")) == 2
    with pytest.raises(SolverDiverged):
        from sgd_dmft.exact import gd_linear

        gd_linear(LINEAR, dt=2.5, n_steps=2000)
