"""Your own curves (issue 21): ``sgd_dmft.from_arrays`` -> the simulation Dataset that ``discrepancy``,
``plot_curves`` and ``compare_datasets`` accept; a theory on another grid is interpolated (and says
so); the power statement: ``detectable`` (3 combined s.e.) shrinks like 1/sqrt(seeds), ``seeds_needed``."""

from __future__ import annotations

import math

import numpy as np
import pytest
import xarray as xr

import sgd_dmft
from sgd_dmft import ConfigError, Problem, from_arrays, laws, make_model
from sgd_dmft.plot import plot_curves
from sgd_dmft.results import discrepancy, power_statement, read_dataset, seeds_needed, write_dataset
from sgd_dmft.run import compare_datasets

RNG = np.random.default_rng(0)


def _arrays(seeds=3, times=7, k=2, kstar=1):
    return dict(train_loss=RNG.random((seeds, times)), test_loss=RNG.random((seeds, times)),
                M=RNG.random((seeds, times, k, kstar)), Q=RNG.random((seeds, times, k, k)))


def test_round_trip_through_a_file_and_a_figure(tmp_path):
    t = np.array([0.0, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0])  # the user's own (non-uniform) grid
    a = _arrays()
    ds = sgd_dmft.from_arrays(t, **a, attrs={"d": 500, "gamma": 0.5})
    assert ds["M"].dims == ("seed", "time", "k", "kstar") and ds["Q"].dims == ("seed", "time", "k", "k2")
    assert ds.sizes["seed"] == 3 and ds.attrs["d"] == 500 and ds.attrs["source"] == "from_arrays"
    back = read_dataset(write_dataset(ds, tmp_path / "mine.nc"))
    np.testing.assert_array_equal(back["time"].values, t)
    for v, arr in a.items():
        np.testing.assert_array_equal(back[v].values, arr)
    assert plot_curves(ds, None, tmp_path / "mine.png").stat().st_size > 0
    only = from_arrays(t, test_loss=a["test_loss"])  # any subset
    assert list(only.data_vars) == ["test_loss"]


@pytest.mark.parametrize("kwargs, key, fragment", [
    (dict(time=[0, 1, 2], test_loss=np.ones(3)), "test_loss", "(one run: x[None])"),
    (dict(time=[0, 1, 2], test_loss=np.ones((2, 4))), "test_loss", "with 3 times"),
    (dict(time=[0, 2, 1], test_loss=np.ones((2, 3))), "time", "strictly increasing"),
    (dict(time=[0, 1, 2]), "train_loss", "no curve given"),
    (dict(time=[0, 1, 2], test_loss=np.ones((2, 3)), train_loss=np.ones((3, 3))), "test_loss", "numbers of seeds"),
    (dict(time=[0, 1, 2], test_loss=[[1, np.nan, 1]]), "test_loss", "non-finite"),
    (dict(time=[0, 1], M=np.ones((2, 2, 2, 1)), Q=np.ones((2, 2, 3, 3))), "Q", "student width"),
])
def test_bad_arrays_one_line_error_naming_the_argument(kwargs, key, fragment):
    with pytest.raises(ConfigError) as e:
        from_arrays(kwargs.pop("time"), **kwargs)
    assert e.value.key == key and fragment in str(e.value) and "\n" not in str(e.value)


@pytest.fixture(scope="module")
def linear():
    """Exact DMFT of the Bernoulli SGD recursion (linear model) and 8 seeds of that recursion at d = 300."""
    from sgd_dmft import solve
    from sgd_dmft.simulate import simulate

    prob = Problem(make_model("linear"), delta=2.0, ridge=0.1, init_scale=0.5)
    theory = solve(prob, laws.SGD(dt=0.02, gamma=0.5), t_max=2.0, paths=200, replicas=2, extrapolate=False)
    sim = simulate(prob, "sgd", t_max=2.0, dt=0.02, d=300, gamma=0.5, batching="bernoulli", seeds=8)
    return prob, theory, sim


def test_theory_against_its_own_simulation_given_as_arrays(linear):
    prob, theory, sim = linear
    idx = np.r_[0:101:7, 100]  # the user recorded every 7th step, on a grid the theory does not have
    t = sim["time"].values[idx] * 1.0001  # ... and slightly past t_max: outside the theory's range
    mine = from_arrays(t, **{v: sim[v].values[:, idx] for v in ("train_loss", "test_loss", "M", "Q")})
    for v in ("train_loss", "test_loss", "M", "Q"):
        d = discrepancy(theory, mine, v)
        assert d["interpolated"] and "linearly interpolated" in d["note"] and "1 simulation times outside" in d["note"]
        assert d["reliable"] and d["max_z"] < 5, (v, d)
        assert 0 < d["detectable"] < 0.2 and d["seeds"] == 8
    same = discrepancy(theory, sim, "test_loss")
    assert not same["interpolated"] and "note" not in same
    disc = compare_datasets(theory, mine)
    assert set(disc) == {"train_loss", "test_loss"}
    # a wrong theory (ridge 0.5 instead of 0.1): its gap is past what these seeds detect, and the z says so
    wrong = sgd_dmft.solve(Problem(make_model("linear"), delta=2.0, ridge=0.5, init_scale=0.5),
                           laws.SGD(dt=0.02, gamma=0.5), t_max=2.0, paths=200, replicas=2, extrapolate=False)
    w = discrepancy(wrong, mine, "test_loss")
    assert w["max_abs"] > w["detectable"] and w["max_z"] > 3


def _noisy(seeds: int, times: int = 200, sd: float = 0.1, seed: int = 1) -> xr.Dataset:
    t = np.linspace(0.0, 1.0, times)
    noise = np.random.default_rng(seed).normal(0.0, sd, (seeds, times))
    return from_arrays(t, test_loss=np.exp(-t) + noise)


def _exact_theory(times: int = 200, se: float = 0.0) -> xr.Dataset:
    t = np.linspace(0.0, 1.0, times)
    return xr.Dataset({"test_loss": ("time", np.exp(-t)), "test_loss_stderr": ("time", np.full(times, se))},
                      coords={"time": t})


def test_detectable_shrinks_like_one_over_sqrt_seeds():
    det = {n: discrepancy(_exact_theory(), _noisy(n), "test_loss") for n in (8, 32, 128)}
    for n, d in det.items():
        assert d["detectable"] == pytest.approx(3 * 0.1 / math.sqrt(n), rel=0.15), n
        assert d["seed_sd"] == pytest.approx(0.1, rel=0.15) and d["theory_se"] == 0
    assert det[32]["detectable"] / det[8]["detectable"] == pytest.approx(0.5, rel=0.1)
    assert det[128]["detectable"] / det[32]["detectable"] == pytest.approx(0.5, rel=0.1)
    # seeds_needed inverts it: the detectable gap needs these seeds, half of it four times as many
    d = det[32]
    assert seeds_needed(d, d["detectable"]) in (32, 33)
    assert seeds_needed(d, d["detectable"] / 2) in (128, 129)
    assert "detectable gap" in power_statement(d) and "needs 128 seeds" in power_statement(d)


def test_seeds_cannot_beat_the_theory_error_nor_one_seed():
    d = discrepancy(_exact_theory(se=0.02), _noisy(32), "test_loss")
    assert d["theory_se"] == pytest.approx(0.02)
    assert d["detectable"] == pytest.approx(3 * math.sqrt(0.02**2 + d["seed_sd"] ** 2 / 32))
    room = (0.08 / 3) ** 2 - d["theory_se"] ** 2  # the seeds share what the theory's error leaves
    assert seeds_needed(d, 0.08) == math.ceil(d["seed_sd"] ** 2 / room)
    assert seeds_needed(d, 0.08) > seeds_needed(discrepancy(_exact_theory(), _noisy(32), "test_loss"), 0.08)
    assert seeds_needed(d, 3 * 0.02) == math.inf  # the theory alone is 3 s.e. of this gap
    assert "a less noisy theory first" in power_statement(d)
    one = discrepancy(_exact_theory(), _noisy(1), "test_loss")
    assert one["detectable"] == math.inf and "unknown" in power_statement(one)
    with pytest.raises(ConfigError, match="gap = -1"):
        seeds_needed(d, -1)
