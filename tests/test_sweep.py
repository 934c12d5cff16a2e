"""Sweeps: grid parsing/validation, gathering, cache and resume, divergence, process pool, Dask."""

import json
import os
import signal
import sys

import numpy as np
import pytest
import xarray as xr
from click.testing import CliRunner

from sgd_dmft import sweep
from sgd_dmft.cli import main
from sgd_dmft.run import run_theory
from sgd_dmft.config import ConfigError, parse_config
from sgd_dmft.results import read_dataset

# linear model + sgd: the DMFT path is exact (second-moment closure) and deterministic, and fast
BASE = {
    "problem": {"model": "linear", "delta": 2.0, "ridge": 0.1},
    "dynamics": {"algorithm": "sgd", "gamma": 0.5, "t_max": 0.6, "dt": 0.1},
    "simulation": {"d": 40, "seeds": 2},
    "solver": {"paths": 100, "replicas": 2},
}
GRID = {"gamma": [0.2, 0.5], "delta": [1, 2]}


@pytest.fixture
def cfg():
    return parse_config(BASE)


@pytest.fixture
def counter(monkeypatch):
    """Count the computations actually run (inline execution: workers=1)."""
    calls = []
    real = sweep.tasks.compute

    def counted(c, kind):
        calls.append((c.dynamics["gamma"], c.problem["delta"], kind))
        return real(c, kind)

    monkeypatch.setattr(sweep.tasks, "compute", counted)
    return calls


# ---------------------------------------------------------------------------------------------
def test_resolve_and_parse_grid():
    assert sweep.resolve_key("gamma") == "dynamics.gamma"
    assert sweep.resolve_key("dynamics.gamma") == "dynamics.gamma"
    with pytest.raises(ConfigError, match="ambiguous.*simulation.seed"):
        sweep.resolve_key("seed")
    with pytest.raises(ConfigError, match="did you mean 'gamma'"):
        sweep.resolve_key("gama")
    with pytest.raises(ConfigError, match="not a config key"):
        sweep.resolve_key("dynamics.nope")
    with pytest.raises(ConfigError, match="did you mean 'problem.ridge'"):
        sweep.resolve_key("dynamics.ridge")
    g = sweep.parse_grid(["gamma=0.1,0.5,1", "algorithm=gd,sgd", "delta=[1, 2]"])
    assert g == {"gamma": [0.1, 0.5, 1], "algorithm": ["gd", "sgd"], "delta": [1, 2]}
    with pytest.raises(ConfigError):
        sweep.parse_grid(["gamma"])


def test_invalid_point_refused_before_running(cfg, counter, tmp_path):
    # dt = 0.1 > gamma = 0.05 is invalid for sgd: refused with the grid point named, nothing run
    with pytest.raises(ConfigError, match=r"grid point dynamics.gamma=0.05.*dynamics.dt"):
        sweep.run_sweep(cfg, {"gamma": [0.5, 0.05]}, tmp_path, workers=1)
    assert counter == []
    assert not (tmp_path / "sweep.nc").exists()
    with pytest.raises(ConfigError, match="sweeping the time grid"):
        sweep.run_sweep(cfg, {"dt": [0.1, 0.05]}, tmp_path, workers=1)
    with pytest.raises(ConfigError, match="repeated"):
        sweep.run_sweep(cfg, {"delta": [1, 1.0]}, tmp_path, workers=1)


def test_gather_matches_single_runs_and_files(cfg, tmp_path):
    ds = sweep.run_sweep(cfg, GRID, tmp_path, workers=1)
    assert ds["train_loss"].dims == ("gamma", "delta", "time")
    assert ds["M"].dims == ("gamma", "delta", "time", "k", "kstar")
    assert "C_theta" not in ds
    np.testing.assert_allclose(ds["gamma"].values, [0.2, 0.5])
    assert ds["gamma"].attrs["config_key"] == "dynamics.gamma"
    for g in GRID["gamma"]:
        for d in GRID["delta"]:
            ref = run_theory(cfg.with_overrides({"dynamics.gamma": g, "problem.delta": d}))
            got = ds.sel(gamma=g, delta=float(d))
            np.testing.assert_allclose(got["test_loss"].values, ref["test_loss"].values, rtol=1e-12)
            np.testing.assert_allclose(got["Q"].values, ref["Q"].values, rtol=1e-12)
    assert int(ds["diverged"].sum()) == 0
    on_disk = read_dataset(tmp_path / "sweep.nc")
    xr.testing.assert_allclose(on_disk[["train_loss", "test_loss"]], ds[["train_loss", "test_loss"]])
    assert (tmp_path / "sweep.png").stat().st_size > 0
    assert len(list((tmp_path / "cache").glob("*.nc"))) == 4
    assert not list(tmp_path.rglob("*.tmp"))


def test_cache_rerun_and_resume(cfg, counter, tmp_path):
    sweep.run_sweep(cfg, GRID, tmp_path, workers=1)
    assert len(counter) == 4
    counter.clear()
    first = read_dataset(tmp_path / "sweep.nc")
    sweep.run_sweep(cfg, GRID, tmp_path, workers=1)  # rerun: everything cached
    assert counter == []
    # delete two cache files: exactly those two are recomputed
    files = sorted((tmp_path / "cache").glob("*.nc"))
    for f in files[:2]:
        f.unlink()
    ds = sweep.run_sweep(cfg, GRID, tmp_path, workers=1)
    assert len(counter) == 2
    xr.testing.assert_allclose(ds[["test_loss", "M"]], first[["test_loss", "M"]])
    # the cache key covers the config: another grid value is new work, the others are reused
    counter.clear()
    sweep.run_sweep(cfg, {"gamma": [0.2, 0.5, 1.0], "delta": [1, 2]}, tmp_path, workers=1)
    assert sorted(counter) == [(1.0, 1.0, "theory"), (1.0, 2.0, "theory")]


def test_interrupted_sweep_resumes(cfg, monkeypatch, tmp_path):
    real = sweep.tasks.compute
    calls = []

    def interrupted(c, kind):
        if len(calls) == 3:
            raise KeyboardInterrupt  # Ctrl-C during the 4th task
        calls.append(1)
        return real(c, kind)

    monkeypatch.setattr(sweep.tasks, "compute", interrupted)
    grid = {"gamma": [0.2, 0.5, 1.0], "delta": [1, 2]}
    with pytest.raises(KeyboardInterrupt):
        sweep.run_sweep(cfg, grid, tmp_path, workers=1)
    assert len(list((tmp_path / "cache").glob("*.nc"))) == 3
    assert not (tmp_path / "sweep.nc").exists()
    calls.clear()
    monkeypatch.setattr(sweep.tasks, "compute", lambda c, kind: (calls.append(1), real(c, kind))[1])
    ds = sweep.run_sweep(cfg, grid, tmp_path, workers=1)
    assert len(calls) == 3  # only the unfinished ones
    assert bool(np.isfinite(ds["test_loss"]).all())


def test_divergence_is_nan_not_crash_and_not_cached(cfg, counter, tmp_path):
    c = cfg.with_overrides({"dynamics.t_max": 2.0, "problem.delta": 1.0})
    ds = sweep.run_sweep(c, {"gamma": [0.5, 20.0]}, tmp_path, workers=1)
    assert ds["diverged"].values.tolist() == [0, 1]
    assert bool(np.isnan(ds["test_loss"].sel(gamma=20.0)).all())
    assert bool(np.isfinite(ds["test_loss"].sel(gamma=0.5)).all())
    msgs = json.loads(ds.attrs["diverged_points"])
    assert msgs[0]["point"] == {"gamma": 20.0} and "diverged" in msgs[0]["message"]
    assert read_dataset(tmp_path / "sweep.nc")["diverged"].values.tolist() == [0, 1]
    assert len(list((tmp_path / "cache").glob("*.nc"))) == 1
    counter.clear()
    sweep.run_sweep(c, {"gamma": [0.5, 20.0]}, tmp_path, workers=1)
    assert counter == [(20.0, 1.0, "theory")]  # the diverged point is recomputed, not cached


def test_t_max_swept_union_of_time_grids(cfg, tmp_path):
    ds = sweep.run_sweep(cfg, {"t_max": [0.3, 0.6]}, tmp_path, workers=1)
    assert ds.sizes["time"] == 7
    short = ds["test_loss"].sel(t_max=0.3).values
    assert np.isfinite(short[:4]).all() and np.isnan(short[4:]).all()
    assert int(ds["diverged"].sum()) == 0


def test_simulate_and_process_pool(cfg, tmp_path):
    inline = sweep.run_sweep(cfg, GRID, tmp_path / "a", simulate=True, workers=1)
    pooled = sweep.run_sweep(cfg, GRID, tmp_path / "b", simulate=True, workers=2)
    xr.testing.assert_allclose(inline[["test_loss", "Q"]], pooled[["test_loss", "Q"]])
    sa, sb = (read_dataset(tmp_path / x / "sweep_sim.nc") for x in "ab")
    assert sa["test_loss"].dims == ("gamma", "delta", "seed", "time")
    xr.testing.assert_allclose(sa[["train_loss", "test_loss"]], sb[["train_loss", "test_loss"]])
    assert len(list((tmp_path / "b" / "cache").glob("*.nc"))) == 8


def test_cli_sweep(tmp_path):
    import tomli_w

    p = tmp_path / "c.toml"
    p.write_text(tomli_w.dumps(BASE))
    out = tmp_path / "out"
    r = CliRunner().invoke(main, ["sweep", str(p), "--set", "gamma=0.2,0.5", "--set", "problem.ridge=0,0.1",
                                  "--out", str(out), "--workers", "1", "--no-progress"])
    assert r.exit_code == 0, r.output
    assert "4 grid points" in r.output
    ds = read_dataset(out / "sweep.nc")
    assert ds["test_loss"].dims == ("gamma", "ridge", "time")
    assert (out / "sweep.png").exists() and not (out / "sweep_sim.nc").exists()
    bad = CliRunner().invoke(main, ["sweep", str(p), "--set", "gamma=0.5,-1", "--out", str(tmp_path / "bad"),
                                    "--workers", "1"])
    assert bad.exit_code == 2
    assert bad.output.count("\n") == 1 and bad.output.startswith("error: grid point dynamics.gamma=-1")
    assert not (tmp_path / "bad" / "sweep.nc").exists()
    amb = CliRunner().invoke(main, ["sweep", str(p), "--set", "seed=1,2", "--out", str(tmp_path / "x")])
    assert amb.exit_code == 2 and "ambiguous" in amb.output


# ---------------------------------------------------------------------------------------------
# Dask: a LocalCluster with a worker killed mid-sweep loses nothing
# ---------------------------------------------------------------------------------------------
def test_dask_cluster_worker_killed(cfg, tmp_path):
    distributed = pytest.importorskip("distributed")
    grid = {"gamma": [0.2, 0.3, 0.5, 1.0], "delta": [1, 2, 4]}
    local = sweep.run_sweep(cfg, grid, tmp_path / "local", workers=1)
    killed = []
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                                  silence_logs=50) as cluster, distributed.Client(cluster) as client:

        def kill_one(n_done, kind, status):
            if killed:
                return
            # SIGKILL the worker process that is busy (or the first one): its tasks must be redone
            busy = [w for w, keys in client.processing().items() if keys]
            busy = busy or list(client.scheduler_info()["workers"])
            for nanny in cluster.workers.values():
                if nanny.worker_address == busy[0]:
                    os.kill(nanny.process.process.pid, signal.SIGKILL)
                    killed.append(busy[0])
                    return

        ds = sweep.run_sweep(cfg, grid, tmp_path / "dask", scheduler=client, callback=kill_one)
    assert killed
    assert int(ds["diverged"].sum()) == 0
    xr.testing.assert_allclose(ds[["train_loss", "test_loss", "M", "Q"]],
                               local[["train_loss", "test_loss", "M", "Q"]])
    assert len(list((tmp_path / "dask" / "cache").glob("*.nc"))) == 12


# ---------------------------------------------------------------------------------------------
# Issue 23, finding 4: a cache file is used only if it proves to be its task's result
# ---------------------------------------------------------------------------------------------
def _doubled(ds, other):
    return ds.assign(test_loss=2 * ds["test_loss"])


def _truncated(ds, other):
    return ds.isel(time=slice(0, 4))


def _nan(ds, other):
    ds = ds.copy(deep=True)
    ds["test_loss"].values[-1] = np.nan
    return ds


def _dropped_seed(ds, other):
    return ds.isel(seed=[0])


def _other_point(ds, other):
    return other


@pytest.mark.parametrize("kind, tamper, restamp, why", [
    ("theory", _doubled, False, "do not match their hash"),
    ("theory", _other_point, False, "another task"),
    ("theory", _truncated, False, "do not match their hash"),
    ("theory", _truncated, True, "time grid"),  # hash recomputed: the time grid still gives it away
    ("theory", _nan, True, "non-finite"),
    ("simulation", _dropped_seed, False, "do not match their hash"),
    ("simulation", _dropped_seed, True, "1 seeds, the point 2"),
    ("simulation", _doubled, True, "another task"),  # the restamped task hash cannot be forged from the file
])
def test_tampered_cache_file_is_recomputed(cfg, counter, tmp_path, capsys, kind, tamper, restamp, why):
    """Doubled values, another point's file, a truncated time grid, a NaN, a dropped seed: that point is
    recomputed with a one-line note and the sweep equals the untampered one (was: used silently)."""
    simulate = kind == "simulation"
    first = sweep.run_sweep(cfg, GRID, tmp_path, simulate=simulate, workers=1)
    first_sim = read_dataset(tmp_path / "sweep_sim.nc") if simulate else None
    g = sweep.build_grid(cfg, GRID, simulate)
    target, donor = (sweep.cache_path(tmp_path, g.configs[i], kind) for i in (1, 2))
    bad = tamper(read_dataset(target), read_dataset(donor))
    if restamp:
        bad.attrs["content_sha256"] = sweep.content_hash(bad)
        if tamper is _doubled:
            bad.attrs["task_sha256"] = "0" * 64
    bad.to_netcdf(target, mode="w", engine="netcdf4")
    counter.clear()
    capsys.readouterr()
    again = sweep.run_sweep(cfg, GRID, tmp_path, simulate=simulate, workers=1)
    assert counter == [(0.2, 2.0, kind)]  # exactly the tampered point
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"note: cache file {target.name}") and why in err, err
    assert "recomputing" in err
    xr.testing.assert_allclose(again[["test_loss", "M"]], first[["test_loss", "M"]])
    if simulate:
        xr.testing.assert_allclose(read_dataset(tmp_path / "sweep_sim.nc")[["test_loss"]], first_sim[["test_loss"]])
    counter.clear()
    sweep.run_sweep(cfg, GRID, tmp_path, simulate=simulate, workers=1)  # the file was replaced: nothing to do
    assert counter == [] and capsys.readouterr().err == ""


MODEL_SRC = """from sgd_dmft import make_model
NOISE = {noise}
def make():
    return make_model("linear", noise=NOISE)
"""


def test_edited_user_module_invalidates_the_cache(cfg, counter, tmp_path, monkeypatch):
    """The task hash holds the source of a custom model's module: an edit recomputes every point, with the
    edited code (was: the same --out returned the old numbers). Tasks in spawn workers get the trust."""
    mod = tmp_path / "sw23_model.py"
    mod.write_text(MODEL_SRC.format(noise="0.0"))
    monkeypatch.setattr(sys, "path", list(sys.path))
    try:
        custom = parse_config({**BASE, "problem": {**BASE["problem"], "model": f"{mod}:make"}}, trust_code=True)
        grid = {"gamma": [0.2, 0.5]}
        before = sweep.run_sweep(custom, grid, tmp_path / "o", workers=2)  # run_task in spawn processes
        assert len(list((tmp_path / "o" / "cache").glob("*.nc"))) == 2
        ref = sweep.run_sweep(cfg, grid, tmp_path / "ref", workers=1)  # the preset: same numbers
        xr.testing.assert_allclose(before[["test_loss"]], ref[["test_loss"]])
        mod.write_text(MODEL_SRC.format(noise="0.5"))
        counter.clear()
        custom = parse_config({**BASE, "problem": {**BASE["problem"], "model": f"{mod}:make"}}, trust_code=True)
        after = sweep.run_sweep(custom, grid, tmp_path / "o", workers=1)
        assert len(counter) == 2
        fresh = sweep.run_sweep(cfg.with_overrides({"problem.noise": 0.5}), grid, tmp_path / "fresh", workers=1)
        xr.testing.assert_allclose(after[["test_loss"]], fresh[["test_loss"]])
        assert float(abs(after["test_loss"] - before["test_loss"]).max()) > 0.05
    finally:
        sys.modules.pop("sw23_model", None)
