"""Issue 12: bad input and huge requests refused up front with one-line errors (exit 2), nothing hangs,
nothing half-written; Ctrl-C / SIGTERM / SIGKILL end everything; random TOML documents never crash."""

import json
import os
import signal
import subprocess
import sys
import threading
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import tomli_w
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sgd_dmft import run
from sgd_dmft.cli import main

from clitools import cli as _cli, one_line_error as _one_line_error
from sgd_dmft.config import SCHEMA, ConfigError, load_config

from conftest import TINY  # noqa: E402  (the shared tiny config; the `tiny` fixture writes it)






# ---- the rows of issue 12's table ----------------------------------------------------------
@pytest.mark.parametrize("data", [b"\xed\xa0\x80\x00\xff binary", "[problem]\nmodel = 'logístico'\n".encode("latin-1")])
def test_not_utf8_config(tmp_path, data):
    p = tmp_path / "bad.toml"
    p.write_bytes(data)
    with pytest.raises(ConfigError, match="not UTF-8 text"):
        load_config(p)
    r = _cli("solve", p, "--out", tmp_path / "o")
    _one_line_error(r, 2, str(p), "not UTF-8")
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("override, key", [
    ("simulation.d=9223372036854775808", "simulation.d"), ("solver.seed=18446744073709551616", "solver.seed"),
    ("simulation.seed=18446744073709551616", "simulation.seed"), ("solver.paths=10", "solver.paths"),
    ("problem.init_scale=1e200", "problem.init_scale"), ("problem.init_overlap=1e300", "problem.init_overlap"),
    ("simulation.seeds=1e9", "simulation.seeds"), ("simulation.seeds=1000000000", "simulation.seeds"),
])
@pytest.mark.parametrize("command", ["solve", "simulate"])
def test_ranges_validated_up_front(tmp_path, tiny, override, key, command):
    """2^63 / 2^64 integers, paths < 2 replicas, huge initialisations, 1e9 seeds: exit 2 naming the key."""
    extra = ["-s", "solver.replicas=8"] if key == "solver.paths" else []
    r = _cli(command, tiny, "--out", tmp_path / "o", "-s", override, *extra)
    _one_line_error(r, 2, key)
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("overrides, key", [
    (["problem.delta=1e6", "simulation.d=100000"], "simulation.max_memory_gb"),
    (["simulation.d=100000"], "simulation.max_memory_gb"),
    (["simulation.d=1000000000"], "simulation.max_memory_gb"),
    (["dynamics.t_max=1e6", "simulation.d=200"], "--force"),
    (["dynamics.dt=1e-7", "simulation.d=200", "dynamics.t_max=1.0"], "--force"),
])
def test_simulation_memory_and_cost_refused(tmp_path, tiny, overrides, key):
    args = [a for o in overrides for a in ("-s", o)]
    t0 = time.perf_counter()
    r = _cli("simulate", tiny, "--out", tmp_path / "o", *args)
    _one_line_error(r, 2, key)
    assert time.perf_counter() - t0 < 10 and not (tmp_path / "o").exists()


@pytest.mark.parametrize("override", ["solver.replicas=1000000", "solver.paths=1000000000000", "dynamics.t_max=1e6",
                                      "dynamics.dt=1e-7"])
def test_solver_cost_refused(tmp_path, tiny, override):
    extra = (["-s", "solver.paths=2000000"] if "replicas" in override else []) + ["-s", "dynamics.t_max=1.0"] * ("t_max" not in override)
    extra += ["-s", 'solver.compress="off"'] * ("dt=" in override)  # (auto would grade it: 1e-7 growing to 0.125)
    r = _cli("solve", tiny, "--out", tmp_path / "o", "-s", override, *extra)
    _one_line_error(r, 2, "--force")
    assert not (tmp_path / "o").exists()


def test_force_lifts_the_cost_limit_and_the_plan_is_printed(tmp_path, tiny, monkeypatch):
    from sgd_dmft.dmft import planning
    from sgd_dmft.simulation import cost

    monkeypatch.setattr(planning, "COST_LIMIT", 1.0)
    monkeypatch.setattr(cost, "COST_LIMIT", 1.0)
    monkeypatch.setattr(planning.check_cost, "__defaults__", (False, 1.0))
    monkeypatch.setattr(cost.check_budget, "__defaults__", (False, 1.0))
    _one_line_error(_cli("simulate", tiny, "--out", tmp_path / "o"), 2, "--force")
    r = _cli("simulate", tiny, "--out", tmp_path / "o", "--force")
    assert r.exit_code == 0, r.stderr
    assert "estimated memory" in r.output and "multiply-adds" in r.output
    assert (tmp_path / "o" / "result.nc").exists()


def test_out_parent_is_a_file(tmp_path, tiny, monkeypatch):
    (tmp_path / "afile").write_text("x")
    monkeypatch.setattr(run, "run_theory", lambda *a, **k: pytest.fail("ran before checking --out"))
    r = _cli("solve", tiny, "--out", tmp_path / "afile" / "sub")
    _one_line_error(r, 2, str(tmp_path / "afile"), "is a file")


def _interrupt(*a, **k):
    raise KeyboardInterrupt


def test_ctrl_c_exit_130_nothing_written(tmp_path, tiny, monkeypatch):
    monkeypatch.setattr(run, "run_simulation", _interrupt)
    r = _cli("simulate", tiny, "--out", tmp_path / "o")
    _one_line_error(r, 130, "interrupted")
    assert not (tmp_path / "o").exists()


def test_ctrl_c_during_sweep_exit_130_names_the_cache(tmp_path, tiny, monkeypatch):
    from sgd_dmft import sweep

    monkeypatch.setattr(sweep.tasks, "compute", _interrupt)
    r = _cli("sweep", tiny, "--out", tmp_path / "sw", "-s", "gamma=0.3,0.5", "--workers", "1")
    _one_line_error(r, 130, "interrupted", str(tmp_path / "sw" / "cache"), "resume")


def test_two_runs_writing_the_same_out_at_once(tmp_path):
    """Concurrent writers: the directory always ends as one whole set (last writer wins)."""
    from sgd_dmft.results import write_result_set

    out = tmp_path / "o"
    errors = []

    def writer(tag):
        def put(p):
            time.sleep(0.01)
            Path(p).write_text(tag)
        try:
            for _ in range(10):
                write_result_set(out, {"theory.nc": put, "summary.json": put})
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    th = [threading.Thread(target=writer, args=(t,)) for t in ("a", "b")]
    for t in th:
        t.start()
    for t in th:
        t.join()
    assert not errors
    assert (out / "theory.nc").read_text() == (out / "summary.json").read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o"]  # no staging directory left


# ---- SIGTERM / SIGKILL of a sweep with a process pool (subprocesses) ------------------------
def _children(pid):
    out = subprocess.run(["ps", "-e", "-o", "pid=,ppid="], capture_output=True, text=True).stdout.split()
    pairs = list(zip(map(int, out[::2]), map(int, out[1::2])))
    kids, frontier = set(), {pid}
    while frontier:
        new = {c for c, p in pairs if p in frontier} - kids
        kids |= new
        frontier = new
    return kids


def _alive(pids):
    alive = set()
    for p in pids:
        try:
            os.kill(p, 0)
            with open(f"/proc/{p}/stat") as f:
                if f.read().split()[2] != "Z":
                    alive.add(p)
        except (OSError, FileNotFoundError):
            pass
    return alive


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
def test_sweep_workers_end_with_their_parent(tmp_path, sig):
    cfg = tmp_path / "c.toml"
    cfg.write_text(TINY.replace("t_max = 0.2", "t_max = 3.0").replace("paths = 40", "paths = 40000"))
    exe = Path(sys.executable).with_name("sgd-dmft")
    proc = subprocess.Popen([str(exe), "sweep", str(cfg), "--out", str(tmp_path / "sw"), "-s", "gamma=0.3,0.4,0.5,0.6",
                             "--workers", "2"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    kids = set()
    for _ in range(120):  # wait for the two workers
        time.sleep(0.5)
        kids = _children(proc.pid)
        if len(kids) >= 3:
            break
    assert len(kids) >= 2, "the pool did not start"
    time.sleep(2.0)
    proc.send_signal(sig)
    proc.wait(timeout=30)
    if sig == signal.SIGTERM:
        assert proc.returncode == 143, proc.stderr.read()
    for _ in range(20):
        if not _alive(kids):
            break
        time.sleep(0.5)
    assert not _alive(kids), f"still running 10 s after the parent: {_alive(kids)}"


# ---- the solver's memory estimate against the measured peak (issue 14) -----------------------
def test_solver_memory_estimate_within_20_percent_of_peak():
    """Many paths, short horizon (the 0.5 GB case of issue 14, scaled down): data peak by tracemalloc."""
    from sgd_dmft import laws
    from sgd_dmft.dmft import solve
    from sgd_dmft.problem import Problem, make_model

    prob = Problem(make_model("logistic"), delta=2.0, ridge=0.1, init_scale=0.5)
    for law in (laws.SGD(0.05, 0.5), laws.SME(0.05, 0.5)):
        solve(prob, law, t_max=0.1, paths=100, replicas=2, extrapolate=False)  # compile outside the measurement
        tracemalloc.start()
        try:
            ds = solve(prob, law, t_max=1.0, paths=60000, replicas=2, extrapolate=False, max_memory_gb=0.5)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        est = ds.attrs["memory_estimate_bytes"]
        assert 0.8 <= peak / est <= 1.2, (law.name, peak / 2**20, est / 2**20)


# ---- random TOML documents -----------------------------------------------------------------
KEYS = [(s, k) for s, keys in SCHEMA.items() for k in keys] + [("problem", "detla"), ("bogus", "x")]
_numbers = st.one_of(
    st.integers(min_value=-2**70, max_value=2**70),
    st.sampled_from([0, 1, 2, 10, 2**63, 2**64, -1, 10**9]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([1e-300, 1e300, 1e-7, 1e6, 1e12, 0.5, -0.0, 5e-324]),
)
_values = st.one_of(
    _numbers, st.booleans(), st.text(max_size=12), st.sampled_from(["linear", "gd", "sgd", "online", "uniform"]),
    st.datetimes(), st.dates(), st.times(), st.lists(st.integers(0, 3), max_size=3),
    st.dictionaries(st.sampled_from(["a", "b"]), st.integers(0, 3), max_size=2),
)


def _document(draw_items):
    doc = {s: dict(body) for s, body in __import__("tomllib").loads(TINY).items()}
    for (section, key), value in draw_items:
        doc.setdefault(section, {})[key] = value
    return tomli_w.dumps(doc).encode("utf-8")


_docs = st.one_of(
    st.lists(st.tuples(st.sampled_from(KEYS), _values), min_size=1, max_size=3).map(_document),
    st.binary(max_size=64),
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@given(doc=_docs, command=st.sampled_from(["solve", "simulate"]))
def test_random_documents(tmp_path_factory, doc, command):
    """Exit 2 with one line naming the key (or the file), or a normal run (0, or 3 for a divergence
    report); never a traceback, never exit 1, never a file in --out after a failure."""
    d = tmp_path_factory.mktemp("doc")
    p = d / "c.toml"
    p.write_bytes(doc)
    out = d / "out"
    try:
        cfg = load_config(p)
    except ConfigError as e:
        cfg, msg = None, str(e)
        assert "\n" not in msg and msg
    if cfg is not None:  # valid: keep the run tiny unless it is refused up front anyway
        try:
            exp = run.experiment(cfg)
            cost = run.check_theory(exp, False) if command == "solve" else run.check_simulation(exp).cost
            small = cost < 1e8 and cfg.dynamics["t_max"] / cfg.dynamics["dt"] <= 200
        except Exception:  # noqa: BLE001 - refused: the CLI must say so in one line
            small = True
        if not small:
            return
    r = CliRunner().invoke(main, [command, str(p), "--out", str(out), "--no-progress"])
    assert r.exception is None or isinstance(r.exception, SystemExit), repr(r.exception)
    assert r.exit_code in (0, 2, 3), (r.exit_code, r.stderr)
    if r.exit_code:
        assert r.stderr.startswith("error: ") and r.stderr.count("\n") == 1, r.stderr
        assert not out.exists()
        if r.exit_code == 2:
            named = [f"{s}.{k}" for s, k in KEYS] + [str(p), "section", "key", "configuration"]
            assert any(n in r.stderr for n in named), r.stderr
    if cfg is None:
        assert r.exit_code == 2


# ---- issue 23, finding 1: a config file is not code unless trusted ---------------------------
COLLEAGUE = """import pathlib
pathlib.Path(__file__).with_name("IMPORTED").write_text("module code ran")
from sgd_dmft import make_model
def make():
    return make_model("logistic")
"""


@pytest.fixture
def colleague(tmp_path, monkeypatch):
    """``colleague.py`` in the working directory: importing it creates ``IMPORTED`` beside it. sys.path and
    sys.modules are restored after the test."""
    (tmp_path / "colleague.py").write_text(COLLEAGUE)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    yield tmp_path / "IMPORTED"
    sys.modules.pop("colleague", None)


@pytest.mark.parametrize("spec", ["sys:exit", "code:interact", "colleague:make", "colleague.py:make",
                                  "./colleague.py:make"])
@pytest.mark.parametrize("command", ["solve", "simulate", "compare", "sweep"])
def test_config_is_not_code_without_trust(tmp_path, tiny, colleague, spec, command):
    """Without --trust-code nothing is imported or called: exit 2, one line naming problem.model, the value and
    the flag; no module code ran (was: `sys:exit` exit 0 with nothing written, colleague.py imported)."""
    args = ["-s", "gamma=0.3,0.5", "--workers", "1"] if command == "sweep" else []
    if command == "sweep":  # a sweep takes the model from its config file
        tiny.write_text(TINY.replace('model = "logistic"', f'model = "{spec}"'))
    else:
        args = ["-s", f'problem.model="{spec}"']
    r = _cli(command, tiny, "--out", tmp_path / "o", *args)
    _one_line_error(r, 2, f"problem.model = '{spec}'", "--trust-code")
    assert not colleague.exists() and not (tmp_path / "o").exists()


def test_process_control_targets_refused_in_a_subprocess(tmp_path, tiny):
    """`os:abort` aborted and `os:fork` forked the CLI: now exit 2 with one line, in a real process."""
    for spec in ("os:abort", "os:fork"):
        r = subprocess.run([sys.executable, "-m", "sgd_dmft.cli", "solve", str(tiny), "--out", str(tmp_path / "o"),
                            "-s", f'problem.model="{spec}"'], capture_output=True, text=True, timeout=120,
                           stdin=subprocess.DEVNULL, env={**os.environ, "PYTHONPATH": str(Path(run.__file__).parents[1])})
        assert r.returncode == 2, (spec, r.returncode, r.stderr)
        assert r.stderr.startswith("error: problem.model") and r.stderr.count("\n") == 1 and "--trust-code" in r.stderr


def test_config_is_not_code_in_the_api(tmp_path, colleague):
    from sgd_dmft.config import Config, parse_config

    p = tmp_path / "c.toml"
    p.write_text(TINY.replace('model = "logistic"', 'model = "colleague.py:make"'))
    for call in (lambda: load_config(p), lambda: parse_config({"problem": {"model": "colleague:make"}}),
                 lambda: parse_config({"problem": {"model": "sys:exit"}}, trust_code="yes")):
        with pytest.raises(ConfigError, match=r"problem.model = .*trust_code=True") as e:
            call()
        assert e.value.key == "problem.model" and "\n" not in str(e.value)
    trusted = load_config(p, trust_code=True)  # the file's own directory is searched: here the working one
    assert colleague.exists()
    colleague.unlink()
    # a Config built by hand (or a rebuild that lost the flag) does not load code either
    untrusted = Config(trusted.problem, trusted.dynamics, trusted.simulation, trusted.solver)
    with pytest.raises(ConfigError, match="--trust-code"):
        untrusted.make_model()
    assert not colleague.exists()


def test_trust_does_not_import_from_the_working_directory(colleague):
    """With trust, 'module:function' comes from the installed environment only (was: the working directory
    appended to sys.path silently); the file is named by its path instead."""
    from sgd_dmft.config import parse_config

    with pytest.raises(ConfigError, match=r"cannot import module 'colleague'.*'path/to/colleague.py:function'"):
        parse_config({"problem": {"model": "colleague:make"}}, trust_code=True)
    assert not colleague.exists()


def test_trusted_file_model_relative_to_the_config_and_picklable(tmp_path, tiny, monkeypatch):
    """A relative path is resolved against the config file's directory (not the working directory), stored
    absolute, carried by rebuilds, and the model unpickles in a spawn process (the solver's workers)."""
    import multiprocessing
    import pickle

    from sgd_dmft.config import parse_config

    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "h23_model.py").write_text(COLLEAGUE)
    (tmp_path / "cfg").mkdir()
    p = tmp_path / "cfg" / "c.toml"
    p.write_text(TINY.replace('model = "logistic"', 'model = "../models/h23_model.py:make"'))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    monkeypatch.setattr(sys, "path", list(sys.path))
    try:
        r = _cli("solve", p, "--out", tmp_path / "o", "--trust-code", "-s", "solver.workers=2")
        assert r.exit_code == 0, r.output
        assert (tmp_path / "models" / "IMPORTED").exists()
        cfg = load_config(p, trust_code=True)
        assert cfg.problem["model"] == f"{tmp_path / 'models' / 'h23_model.py'}:make"
        assert cfg.with_overrides({"problem.delta": 3.0}).trust_code is True
        again = parse_config(__import__("tomllib").loads(cfg.to_toml()), trust_code=True)  # a sweep task's rebuild
        model = again.make_model()
        ctx = multiprocessing.get_context("spawn")
        with ctx.Pool(1) as pool:  # the child unpickles the model: its module must be importable there
            assert pool.apply(pickle.loads, (pickle.dumps(model),)).name == model.name
        with pytest.raises(ConfigError, match=r"the module name 'json' is taken"):
            (tmp_path / "json.py").write_text("def make():\n    return None\n")
            parse_config({"problem": {"model": f"{tmp_path / 'json.py'}:make"}}, trust_code=True)
    finally:
        sys.modules.pop("h23_model", None)


# ---- issue 23, finding 7: SIGTERM inside a numba-compiled call (surfaces as SystemError) ------
def test_sigterm_surfacing_as_system_error_exits_143_with_one_line(tmp_path, tiny, monkeypatch):
    from sgd_dmft import cli

    def kernel(*a, **k):  # what numba's dispatcher does when the SIGTERM handler raised inside it
        try:
            cli._on_sigterm(signal.SIGTERM, None)
        except cli.Terminated as e:
            raise SystemError("<built-in method> returned a result with an exception set") from e

    for target in ("run_simulation", "run_theory"):
        monkeypatch.setattr(run, target, kernel)
    for command in ("simulate", "solve"):
        r = _cli(command, tiny, "--out", tmp_path / command)
        _one_line_error(r, 143, "terminated; nothing was written")
        assert not (tmp_path / command).exists()

    def swallowed(*a, **k):  # a handler that raised where the exception was turned into another error
        try:
            cli._on_sigterm(signal.SIGTERM, None)
        except cli.Terminated:
            pass
        raise ValueError("numba: could not convert the argument")

    monkeypatch.setattr(run, "run_theory", swallowed)
    _one_line_error(_cli("solve", tiny, "--out", tmp_path / "s2"), 143, "terminated")


def test_sigterm_swallowed_in_a_compiler_callback_still_exits_143(tmp_path, tiny, monkeypatch):
    """numba's compiler calls back into Python through ctypes: a SIGTERM raised there is 'Exception
    ignored' and the run went on to exit 0 and write its result (1 of 3 real trials)."""
    import ctypes

    from sgd_dmft import cli

    def compile_then_finish(*a, **k):
        ctypes.CFUNCTYPE(None)(lambda: cli._on_sigterm(signal.SIGTERM, None))()  # swallowed
        return object()  # ... and the run finished: its "result" must not be written

    monkeypatch.setattr(run, "run_theory", compile_then_finish)
    r = _cli("solve", tiny, "--out", tmp_path / "o")
    _one_line_error(r, 143, "terminated; nothing was written")
    assert not (tmp_path / "o").exists()


def test_sigterm_during_the_simulation_kernel_subprocess(tmp_path):
    """A real SIGTERM while the simulation runs its numba kernels: exit 143, one line, nothing written."""
    cfg = tmp_path / "long.toml"
    cfg.write_text(TINY.replace("t_max = 0.2", "t_max = 6.0").replace("d = 20", "d = 2000").replace("seeds = 2", "seeds = 4"))
    src = str(Path(__file__).resolve().parents[1] / "src")
    for trial in range(2):
        p = subprocess.Popen([sys.executable, "-m", "sgd_dmft.cli", "simulate", str(cfg), "--out", str(tmp_path / "o"),
                              "--force"], env={**os.environ, "PYTHONPATH": src}, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
        p.stdout.readline()  # the plan, printed just before the kernels start
        time.sleep(0.2 + 0.5 * trial)
        p.send_signal(signal.SIGTERM)
        _, err = p.communicate(timeout=120)
        assert p.returncode == 143 and err.splitlines() == ["error: terminated; nothing was written"], err
        assert not (tmp_path / "o").exists()


# ---- issue 23, finding 5: the population-loss quadrature inside the memory budget -------------
TWO_LAYER = TINY.replace('model = "logistic"', 'model = "two_layer"\nactivation = "erf"')


@pytest.mark.parametrize("command", ["solve", "simulate"])
@pytest.mark.parametrize("overrides, key", [
    (["problem.teacher='(0*z1)^60+z1+z2+z3+z4'", "problem.teacher_width=4"], "problem.teacher = '(0*z1)^60"),
    (["problem.teacher='(0*z1)^400+z1+z2+z3+z4'", "problem.teacher_width=4"], "problem.teacher = '(0*z1)^400"),
    (["problem.teacher='tanh(z1)'", "problem.teacher_width=1000"], "problem.teacher_width = 1000"),
])
def test_quadrature_memory_refused_up_front(tmp_path, overrides, key, command, monkeypatch):
    from sgd_dmft.models import two_layer_quadrature

    monkeypatch.setattr(two_layer_quadrature, "_link_nodes", lambda *a, **k: pytest.fail("allocated the quadrature"))
    cfg = tmp_path / "c.toml"
    cfg.write_text(TWO_LAYER)
    sets = [a for o in overrides + ["solver.max_memory_gb=0.5", "simulation.max_memory_gb=0.5"] for a in ("-s", o)]
    r = _cli(command, cfg, "--out", tmp_path / "o", *sets)
    _one_line_error(r, 2, key, "population-loss quadrature", "max_memory_gb = 0.5")
    assert not (tmp_path / "o").exists()


def test_quadrature_estimate_covers_the_measured_peak():
    from sgd_dmft.models import population, two_layer_quadrature
    from sgd_dmft.problem import make_model

    model = make_model("two_layer", k=1, kstar=4, activation="erf", teacher="(0*z1)^24+z1+z2+z3+z4")
    est, key = population.quadrature_bytes(model)
    assert key == "problem.teacher"
    tracemalloc.start()
    try:
        two_layer_quadrature._teacher_moment(model.teacher, np.eye(4), 0)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak <= est <= 10 * peak, (peak, est)


def test_sweep_workers_capped_at_the_cores_with_a_note(tmp_path, tiny, monkeypatch):
    from sgd_dmft import parallel, sweep

    got = []

    def execute(todo, results, total, scheduler, workers, *rest):
        got.append(workers)
        raise KeyboardInterrupt

    monkeypatch.setattr(parallel, "cores", lambda: 2)
    monkeypatch.setattr(sweep.driver, "_execute", execute)
    r = _cli("sweep", tiny, "--out", tmp_path / "sw", "-s", "gamma=0.3,0.5", "--workers", "64")
    assert r.exit_code == 130 and got == [2]
    assert "note: --workers 64 capped at the 2 CPU cores" in r.stderr
