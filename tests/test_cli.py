"""Command line: exit codes, one-line errors, nothing written on failure, files written on success (tiny real
runs; the entry points spied on for the arguments the CLI passes: `spies`)."""

import json

import numpy as np
import pytest
import xarray as xr
from click.testing import CliRunner

from sgd_dmft.cli import main
from sgd_dmft.errors import SimulationDiverged, SolverDiverged

TINY = """
[problem]
model = "logistic"
delta = 2.0
ridge = 0.1
[dynamics]
algorithm = "{alg}"
gamma = 0.5
t_max = 0.5
dt = 0.05
[simulation]
d = 100
seeds = 2
[solver]
paths = 200
replicas = 2
"""


@pytest.fixture
def tiny(tmp_path):
    def make(alg="sgd", extra=""):
        p = tmp_path / f"tiny_{alg}.toml"
        p.write_text(TINY.format(alg=alg) + extra)
        return p
    return make


def _run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


# ---- spies on the computational entry points: tiny real runs, their arguments recorded ----
@pytest.fixture
def spies(monkeypatch):
    """``{"solve" | "simulate" | "online": the arguments the CLI passed}`` of tiny real runs (the real
    ``dmft.solve``, ``simulation.simulate``, ``online.solve_online`` wrapped, not replaced); ``spies["diverge"] =
    "theory" | "sim"`` makes that call raise its divergence instead."""
    import sgd_dmft.dmft
    import sgd_dmft.online
    import sgd_dmft.simulation

    calls = {}
    real = {"solve": sgd_dmft.dmft.solve, "simulate": sgd_dmft.simulation.simulate,
            "online": sgd_dmft.online.solve_online}

    def simulate(problem, algorithm, **kw):
        law = getattr(algorithm, "law", None)
        calls["simulate"] = dict(algorithm=algorithm.name, t_max=kw["t_max"], d=kw["d"], seeds=kw["seeds"],
                                 seed=kw["seed"], progress=kw["progress"], gamma=getattr(algorithm, "gamma", None),
                                 batch=getattr(algorithm, "batch", None),
                                 law=law if algorithm.name == "law" else None, object=algorithm)
        if calls.get("diverge") == "sim":
            raise SimulationDiverged("iterates blew up at t=0.3 (gamma=0.5)")
        return real["simulate"](problem, algorithm, **kw)

    def solve(problem, law, *, t_max, options, process, progress):
        calls["solve"] = dict(law=law, t_max=t_max, paths=options.paths, replicas=options.replicas, seed=options.seed,
                              extrapolate=options.richardson, rtol=options.rtol, max_time_s=options.max_time_s,
                              process=process)
        if calls.get("diverge") == "theory":
            raise SolverDiverged("solver\nblew up")
        return real["solve"](problem, law, t_max=t_max, options=options, process=process, progress=progress)

    def solve_online(problem, *, gamma, times, lr=None):
        calls["online"] = dict(gamma=gamma, t_max=float(times[-1]), dt=float(times[1] - times[0]))
        assert lr is None
        return real["online"](problem, gamma=gamma, times=times, lr=lr)

    monkeypatch.setattr(sgd_dmft.simulation, "simulate", simulate)
    monkeypatch.setattr(sgd_dmft.dmft, "solve", solve)
    monkeypatch.setattr(sgd_dmft.online, "solve_online", solve_online)
    return calls


# ---- tests ----
@pytest.mark.parametrize("content, code, fragment", [
    ("[problem]\ndetla = 2.0\n", 2, "unknown key 'problem.detla' (did you mean 'problem.delta'?)"),
    ("[simulation]\nd = true\n", 2, "simulation.d"),
    ("[dynamics]\ngamma = 0.1\ndt = 0.5\n", 2, "dynamics.dt"),
    ("[problem\n", 2, "invalid TOML"),
])
@pytest.mark.parametrize("command", ["simulate", "solve", "compare"])
def test_bad_config_exit_2_one_line_nothing_written(tmp_path, spies, content, code, fragment, command):
    cfg = tmp_path / "bad.toml"
    cfg.write_text(content)
    out = tmp_path / "out"
    r = _run(command, cfg, "--out", out)
    assert r.exit_code == code, r.output
    assert r.stderr.startswith("error: ") and fragment in r.stderr
    assert r.stderr.count("\n") == 1
    assert not out.exists()
    assert "simulate" not in spies and "solve" not in spies  # nothing computed


def test_missing_config_and_bad_override(tmp_path, tiny, spies):
    r = _run("simulate", tmp_path / "nope.toml", "--out", tmp_path / "o")
    assert r.exit_code == 2 and "cannot read" in r.stderr
    r = _run("simulate", tiny(), "--out", tmp_path / "o", "--set", "dynamics.gamma=-1")
    assert r.exit_code == 2 and "dynamics.gamma" in r.stderr and not (tmp_path / "o").exists()


def test_compare_tiny_run_end_to_end(tmp_path, tiny, spies):
    out = tmp_path / "cmp"
    r = _run("compare", tiny(), "--out", out, "--no-progress", "-s", "simulation.seeds=3")
    assert r.exit_code == 0, r.output + r.stderr
    assert sorted(p.name for p in out.iterdir()) == ["figure.png", "simulation.nc", "summary.json", "theory.nc"]
    s = json.loads((out / "summary.json").read_text())
    assert 0.0 <= s["discrepancy"]["train_loss"]["max_z"] < 6.0  # d = 100, 3 seeds, 200 paths: agreement, roughly
    assert set(s["discrepancy"]["test_loss"]) == {"max_z", "at_time", "max_abs", "z_t", "df", "theory_rel_se",
                                                  "theory_rel_dt_error", "theory_dt_over_se", "reliable", "refused", "detectable",
                                                  "seeds", "seed_sd", "theory_se", "interpolated"}
    assert s["config"]["simulation"]["seeds"] == 3
    assert "max z" in r.output and "test_loss: detectable gap " in r.output and "(3 combined s.e. with 3 seeds)" in r.output
    assert spies["simulate"]["seeds"] == 3 and spies["simulate"]["algorithm"] == "sgd"
    assert spies["simulate"]["law"] is None and spies["simulate"]["progress"] is False
    assert spies["solve"]["paths"] == 200 and spies["solve"]["law"].gamma == 0.5
    th = xr.open_dataset(out / "theory.nc")
    assert th.attrs["discrepancy.test_loss.max_z"] >= 0 and th.attrs["problem.delta"] == 2.0
    th.close()
    # true mini-batch SGD: compared with the continuous-time limit, and the run says so
    assert spies["solve"]["extrapolate"] is True and "continuous-time limit" in r.output
    r = _run("show", out)
    assert r.exit_code == 0 and "test_loss" in r.output and "discrepancy" in r.output and "summary.json" in r.output


@pytest.mark.parametrize("overrides, want", [
    ((), True),                                        # true batch-1 SGD (uniform batches)
    (("simulation.batching='bernoulli'",), False),     # the Bernoulli recursion itself
    (("dynamics.algorithm='sme'",), False),            # Euler-Maruyama on the grid
    (("dynamics.algorithm='gd'",), False),
    (("dynamics.algorithm='reshuffle'",), True),       # true random reshuffling
])
def test_compare_picks_the_theory_of_its_simulation(tmp_path, tiny, spies, overrides, want):
    args = [a for o in overrides for a in ("-s", o)]
    r = _run("compare", tiny(), "--out", tmp_path / "c", "--no-progress", *args)
    assert r.exit_code == 0, r.output + r.stderr
    assert spies["solve"]["extrapolate"] is want
    assert ("continuous-time limit" if want else "raw recursion") in r.output


def test_solve_passes_accuracy_keys(tmp_path, tiny, spies):
    r = _run("solve", tiny(), "--out", tmp_path / "s", "--no-progress", "-s", "solver.rtol=0.02",
             "-s", "solver.max_time_s=5", "-s", "solver.extrapolate=false")
    assert r.exit_code == 0, r.output + r.stderr
    assert spies["solve"]["rtol"] == 0.02 and spies["solve"]["max_time_s"] == 5.0
    assert spies["solve"]["extrapolate"] is False and "rtol=0.02" in r.output


def test_persistent_passes_law(tmp_path, tiny, spies):
    r = _run("simulate", tiny("persistent"), "--out", tmp_path / "o")
    assert r.exit_code == 0, r.stderr
    assert spies["simulate"]["algorithm"] == "law" and spies["simulate"]["law"].name == "persistent"


def test_online_uses_solve_online_and_drops_nan_train(tmp_path, tiny, spies):
    out = tmp_path / "on"
    r = _run("compare", tiny("online"), "--out", out)
    assert r.exit_code == 0, r.stderr
    assert spies["online"] == {"gamma": 0.5, "t_max": 0.5, "dt": 0.05} and "solve" not in spies
    sim = xr.open_dataset(out / "simulation.nc")
    assert "train_loss" not in sim and "test_loss" in sim
    sim.close()


@pytest.mark.parametrize("which, command", [("sim", "simulate"), ("sim", "compare"), ("theory", "solve"),
                                            ("theory", "compare")])
def test_diverged_exit_3_nothing_written(tmp_path, tiny, spies, which, command):
    spies["diverge"] = which
    out = tmp_path / "o"
    r = _run(command, tiny(), "--out", out)
    assert r.exit_code == 3, r.output + r.stderr
    assert r.stderr.startswith("error: ") and r.stderr.count("\n") == 1
    assert not out.exists()


def test_show_empty_dir(tmp_path):
    r = _run("show", tmp_path)
    assert r.exit_code == 1 and "error:" in r.stderr


def test_simulate_real_tiny(tmp_path, tiny):
    out = tmp_path / "sim"
    r = _run("simulate", tiny(), "--out", out, "--no-progress")
    assert r.exit_code == 0, r.output + r.stderr
    assert sorted(p.name for p in out.iterdir()) == ["figure.png", "result.nc"]
    ds = xr.open_dataset(out / "result.nc")
    assert ds.sizes["seed"] == 2 and float(ds.time[-1]) == pytest.approx(0.5)
    assert ds.attrs["simulation.d"] == 100 and "config_toml" in ds.attrs
    assert np.isfinite(ds["test_loss"].values).all()
    ds.close()
    assert str(out / "result.nc") in r.output


@pytest.mark.parametrize("alg", ["sgd", "gd"])
def test_compare_real_tiny_on_graded_grid(tmp_path, tiny, alg):
    """End to end with a graded grid: theory and simulation share the non-uniform time grid."""
    out = tmp_path / "cmp"
    cfg = tiny(alg).read_text().replace("dt = 0.05\n", "dt = 0.01\ngrowth = 0.5\ndt_max = 0.05\n")
    (tmp_path / "g.toml").write_text(cfg)
    r = _run("compare", tmp_path / "g.toml", "--out", out, "--no-progress", "-s", "solver.paths=400")
    assert r.exit_code == 0, r.output + r.stderr
    th, sim = xr.open_dataset(out / "theory.nc"), xr.open_dataset(out / "simulation.nc")
    steps = np.diff(th.time.values)
    assert steps.min() == pytest.approx(0.01) and steps.max() == pytest.approx(0.05)
    np.testing.assert_allclose(th.time.values, sim.time.values)
    assert th.attrs["grid_growth"] == 0.5 and th.sizes["time"] < 0.5 / 0.01
    th.close()
    sim.close()


def test_exit_status_by_exception_class():
    from sgd_dmft import errors
    from sgd_dmft.cli import EXIT_CONFIG, EXIT_DIVERGED, EXIT_ERROR, _classify

    assert _classify(errors.ConfigError("x", key="dt")) == EXIT_CONFIG
    for cls in (errors.SolverDiverged, errors.SimulationDiverged, errors.NonFiniteResult, errors.Diverged):
        assert _classify(cls("x")) == EXIT_DIVERGED
    assert _classify(errors.MemoryLimitExceeded("x")) == EXIT_CONFIG  # a refusal up front
    for exc in (errors.SgdDmftError("x"), ValueError("x"), OSError("x")):
        assert _classify(exc) == EXIT_ERROR
    assert _classify(RuntimeError("a bug")) is None  # not ours: the traceback is shown


def test_solve_announces_the_run_then_writes(tmp_path, tiny, spies):
    out = tmp_path / "s"
    r = _run("solve", tiny(), "--out", out, "--no-progress")
    assert r.exit_code == 0, r.stderr
    lines = r.output.splitlines()
    assert lines[0].startswith("DMFT sgd: 10 grid steps, 200 paths in 2 replicas, up to ")
    assert " at a time, estimated memory <= 0 MiB, estimated time ~" in lines[0]
    assert "the continuous-time limit (Richardson levels dt, 2 dt, 4 dt at dt=0.05" in lines[0]
    assert lines[-2:] == [f"wrote {out / 'result.nc'}", f"wrote {out / 'figure.png'}"]


def test_cli_aliases_of_run():
    from sgd_dmft import cli, run

    assert cli.run_theory is run.run_theory and cli.run_simulation is run.run_simulation
    assert cli.compare_datasets is run.compare_datasets


def test_set_short_keys_mean_the_same_in_every_command(tmp_path, tiny, spies):
    """Issue 21: ``-s gamma=...`` resolves a short key to its unique section in compare / solve / simulate as
    in sweep; an ambiguous one (seed) is refused with its candidates, an unknown one with the nearest name."""
    for cmd in ("compare", "solve", "simulate"):
        r = _run(cmd, tiny(), "--out", tmp_path / cmd, "--no-progress", "-s", "gamma=0.25", "-s", "simulation.seeds=2")
        assert r.exit_code == 0, r.output + r.stderr
        got = spies.get("solve", spies.get("simulate"))
        assert got is not None
        if "simulate" in spies and cmd != "solve":
            assert spies["simulate"]["gamma"] == 0.25
        if "solve" in spies and cmd != "simulate":
            assert spies["solve"]["law"].gamma == 0.25
        spies.pop("solve", None), spies.pop("simulate", None)
    r = _run("compare", tiny(), "--out", tmp_path / "amb", "-s", "seed=1")
    assert r.exit_code == 2 and "ambiguous" in r.stderr and "simulation.seed, solver.seed" in r.stderr
    r = _run("solve", tiny(), "--out", tmp_path / "typo", "-s", "gama=1")
    assert r.exit_code == 2 and "did you mean 'gamma'" in r.stderr
    r = _run("solve", tiny(), "--out", tmp_path / "case", "-s", "algorithm='SGD'")
    assert r.exit_code == 2 and "did you mean 'sgd'" in r.stderr


def test_accuracy_note_states_the_theory_accuracy_and_nothing_for_a_simulation():
    import xarray as xr

    from sgd_dmft.cli_logging import accuracy_note

    th = xr.Dataset(attrs=dict(rtol_achieved=0.0059, dt_error_rel_max=0.0022))
    assert accuracy_note(th) == ("; accuracy: standard error up to 0.59%, dt error up to 0.22% of the loss "
                                 "(train and test, t > 0)")
    assert accuracy_note(xr.Dataset(attrs=dict(wall_time_s=1.0))) == ""
