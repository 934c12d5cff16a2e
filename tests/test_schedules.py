"""Learning-rate schedules (issue 22): ``laws.LRSchedule`` on every law, the simulators and the config.

At the critical scale a factor ``f(t)`` multiplies SGD's jump (``S = f gamma Bernoulli(dt / gamma)``) and
leaves its Poisson clock alone, multiplies GD's step and the SME's drift and noise, and the weight decay
(as ``torch.optim.lr_scheduler`` does); time keeps counting at the base step."""

from __future__ import annotations

import numpy as np
import pytest

from sgd_dmft import dmft, exact, laws
from sgd_dmft import problem as P
from sgd_dmft.config import parse_config
from sgd_dmft.conventions import lr_schedule_from_pytorch
from sgd_dmft.errors import ConfigError
from sgd_dmft.grid import TimeGrid
from sgd_dmft.simulation import MiniBatchSGD, OnlineSGD, simulate

from test_dmft import Z_MAX

LOGISTIC = P.Problem(P.logistic(), delta=2.0, ridge=0.1, init_scale=0.5)
DECAY = laws.LRSchedule((0.8, 1.6), (1.0, 0.4, 0.1))  # jumps on every level's grid (multiples of 4 dt = 0.08)


@pytest.mark.parametrize("times,factors,key", [((1.0, 0.5), (1, 1, 1), "dynamics.lr_times"),
                                               ((-1.0,), (1, 1), "dynamics.lr_times"),
                                               ((1.0,), (1.0,), "dynamics.lr_factors"),
                                               ((1.0,), (1.0, -0.5), "dynamics.lr_factors"),
                                               ((1.0,), (1.0, float("nan")), "dynamics.lr_factors")])
def test_bad_schedules_are_one_line_errors(times, factors, key):
    with pytest.raises(ConfigError) as e:
        laws.LRSchedule(times, factors)
    assert e.value.key == key and "\n" not in str(e.value)


def test_factor_steps_and_pytorch_mapping():
    s = laws.LRSchedule((1.0, 2.0), (1.0, 0.5, 0.25))
    np.testing.assert_array_equal(s.factor([0.0, 0.999, 1.0, 1.0 - 1e-12, 1.5, 2.0, 9.0]),
                                  [1.0, 1.0, 0.5, 0.5, 0.5, 0.25, 0.25])
    assert laws.LRSchedule.step_decay(1.0, 0.5, 2.5) == s
    # StepLR(step_size=2 epochs, gamma=0.5) with an epoch of gamma_sgd = 0.5 units of t
    assert lr_schedule_from_pytorch([2, 4], 0.5, 0.5) == s
    c = laws.LRSchedule.cosine(4.0, 0.1, pieces=8)
    f = c.factor(np.linspace(0, 4, 9)[:-1] + 0.25)
    assert f[0] == pytest.approx(0.1 + 0.9 * 0.5 * (1 + np.cos(np.pi / 16))) and np.all(np.diff(f) < 0)
    assert c.factor(5.0) == pytest.approx(0.1)
    w = laws.LRSchedule.warmup(1.0, 0.2, pieces=4)
    np.testing.assert_allclose(w.factor([0.0, 0.3, 0.6, 0.9, 1.0, 7.0]), [0.3, 0.5, 0.7, 0.9, 1.0, 1.0])
    f = laws.LRSchedule.from_function(lambda t: 1.0 / (1.0 + t), 2.0, pieces=2)  # any Python callable
    np.testing.assert_allclose(f.factor([0.5, 1.5, 3.0]), [1 / 1.5, 1 / 2.5, 1 / 3.0])


def test_constant_schedule_is_bit_identical_and_zero_factor_freezes():
    law = laws.SGD(0.05, 0.5)
    kw = dict(t_max=1.0, paths=400, replicas=2, seed=3, extrapolate=False, keep_kernels=False)
    a = dmft.solve(LOGISTIC, law, **kw)
    b = dmft.solve(LOGISTIC, laws.SGD(0.05, 0.5, lr=laws.LRSchedule((0.5,), (1.0, 1.0))), **kw)
    for v in ("train_loss", "test_loss", "Q", "M"):
        np.testing.assert_array_equal(a[v].values, b[v].values)
    stop = dmft.solve(LOGISTIC, laws.SGD(0.05, 0.5, lr=laws.LRSchedule((0.5,), (1.0, 0.0))), **kw)
    j = int(np.argmin(np.abs(stop.time.values - 0.5)))
    assert np.all(stop.Q.values[j:] == stop.Q.values[j]) and np.all(stop.M.values[j:] == stop.M.values[j])
    sim = simulate(LOGISTIC, MiniBatchSGD(0.5, 1, lr=laws.LRSchedule((0.5,), (1.0, 0.0))), t_max=1.0, d=200,
                   grid=TimeGrid(0.05), seeds=1)
    q = sim.Q.values[0]
    assert np.all(q[j:] == q[j]) and not np.all(q[: j + 1] == q[0])
    assert sim.attrs["lr_factors"] == "[1.0, 0.0]"


def test_scheduled_gd_is_gd_with_the_scaled_steps():
    """Linear model, exact path: GD with a schedule = the Marchenko-Pastur closed form of the steps f_m dt."""
    lin = P.Problem(P.linear(0.3), delta=2.0, ridge=0.05, init_scale=0.5, init_overlap=0.2)
    law = laws.GD(0.05, lr=laws.LRSchedule((0.5, 1.0), (1.0, 0.5, 0.2)))
    ds = dmft.solve(lin, law, t_max=2.0, keep_kernels=False)
    T = ds.sizes["time"] - 1
    f = law.lr.factor(ds.time.values[:-1])
    ex = exact.gd_linear(lin, 0.05, T, steps=0.05 * f)
    for v in ("train_loss", "test_loss"):
        assert np.max(np.abs(ds[v].values - ex[v].values)) < 1e-12, v


COSINE = laws.LRSchedule.cosine(2.4, 0.1, pieces=30)  # pieces of 0.08: on every level's grid
COMMITTEE = P.Problem(P.committee(2, 2, "erf", 0.1), delta=2.0, ridge=0.05, init_scale=0.5, init_overlap=0.2)


SLOW = pytest.mark.slow


@pytest.mark.parametrize("d,case", [(1000, "logistic-step"), (2000, "logistic-step"), (1000, "logistic-cosine"),
                                    (1000, "committee-step"), (1000, "committee-cosine")]
                         + [pytest.param(2000, c, marks=SLOW) for c in ("logistic-cosine", "committee-step",
                                                                         "committee-cosine")]
                         + [pytest.param(4000, c, marks=SLOW) for c in ("logistic-step", "logistic-cosine",
                                                                         "committee-step", "committee-cosine")])
def test_scheduled_theory_matches_true_minibatch_sgd(d, case):
    """The dt -> 0 limit (default solve) against true mini-batch SGD (batch 1) with the same schedule."""
    prob = COMMITTEE if case.startswith("committee") else LOGISTIC
    sched = COSINE if case.endswith("cosine") else DECAY
    law = laws.SGD(0.02, 0.5, lr=sched)
    th = dmft.solve(prob, law, t_max=2.4, paths=8000, replicas=8, seed=1, keep_kernels=False)
    assert th.attrs["extrapolated"] == 1 and th.attrs["lr_factors"] == laws.LRSchedule.attrs(sched)["lr_factors"]
    sim = simulate(prob, MiniBatchSGD(0.5, 1, lr=sched), t_max=2.4, d=d, grid=TimeGrid(0.08), seeds=8, seed=d)
    t = sim.time.values
    for v in ("train_loss", "test_loss"):
        s = sim[v].values
        a = th[v].interp(time=t).values
        se = np.sqrt(th[v + "_stderr"].interp(time=t).values ** 2 + s.var(0, ddof=1) / s.shape[0]
                     + th[v + "_dt_error"].interp(time=t).values ** 2)
        z = (a - s.mean(0))[1:] / se[1:]
        assert np.max(np.abs(z)) < Z_MAX, (v, z)
    if case == "logistic-step":  # the decay shows: the curve bends at t = 0.8 against the constant step
        const = dmft.solve(prob, laws.SGD(0.02, 0.5), t_max=2.4, paths=4000, replicas=4, seed=1, keep_kernels=False)
        assert float(th.test_loss[-1]) > float(const.test_loss[-1]) + 0.02


def test_two_layer_schedule_matches_its_law_recursion():
    prob = P.Problem(P.committee(2, 1, "erf", 0.1), delta=2.0, ridge=0.05, init_scale=0.5, init_overlap=0.2)
    law = laws.SGD(0.05, 0.5, lr=laws.LRSchedule.cosine(1.6, 0.1, pieces=8))
    th = dmft.solve(prob, law, t_max=1.6, paths=8000, replicas=4, seed=2, extrapolate=False, keep_kernels=False)
    from test_dmft import _zscores
    idx = np.arange(0, th.sizes["time"], 4)
    for d in (1000, 2000):
        sim = simulate(prob, laws_recursion(law), t_max=1.6, d=d, seeds=8, seed=3)
        for v in ("train_loss", "test_loss"):
            assert np.max(np.abs(_zscores(th, sim, v, idx))) < Z_MAX, (d, v)


def laws_recursion(law):
    from sgd_dmft.simulation import LawRecursion

    return LawRecursion(law)


def test_config_keys_build_the_schedule():
    c = parse_config({"dynamics": {"lr_times": [1.0, 2.0], "lr_factors": [1.0, 0.5, 0.25], "t_max": 3.0}})
    assert c.make_law().lr == laws.LRSchedule((1.0, 2.0), (1.0, 0.5, 0.25))
    cos = parse_config({"dynamics": {"lr_schedule": "cosine", "lr_factors": [0.1], "t_max": 3.0}}).make_law().lr
    assert cos.factors[-1] == pytest.approx(0.1) and len(cos.times) == 64
    warm = parse_config({"dynamics": {"lr_schedule": "warmup", "lr_times": [0.5], "t_max": 3.0}}).make_law().lr
    assert warm == laws.LRSchedule.warmup(0.5, 0.0)
    for bad, key in (({"lr_times": [2.0, 1.0], "lr_factors": [1, 1, 1]}, "dynamics.lr_times"),
                     ({"lr_times": [1.0], "lr_factors": [1.0]}, "dynamics.lr_factors"),
                     ({"lr_times": [1.0], "lr_factors": [0.5], "algorithm": "online"}, "dynamics.lr_factors"),
                     ({"lr_schedule": "cosine", "lr_times": [1.0]}, "dynamics.lr_times")):
        with pytest.raises(ConfigError) as e:
            parse_config({"dynamics": bad})
        assert e.value.key == key and "\n" not in str(e.value)


def test_online_ode_with_a_schedule_matches_one_pass_sgd_and_log_records_reach_long_horizons():
    """The online ODE with a step decay against one-pass SGD with the same decay (d = 1000, 2000); and graded
    records to tau = 2e4 (the published committee's horizon) in seconds, equal to the uniform records."""
    import math

    from sgd_dmft import online as O

    pr = P.Problem(P.committee(2, 2, "erf", 0.1), delta=2.0, ridge=0.0, init_scale=0.5, init_overlap=0.1)
    lr = laws.LRSchedule((0.75,), (1.0, 0.2))
    ode = O.solve_online(pr, gamma=0.5, t_max=1.5, dt=0.25, lr=lr)
    assert ode.attrs["lr_factors"] == "[1.0, 0.2]"
    for d, S in ((1000, 6), (2000, 4)):
        sim = simulate(pr, OnlineSGD(0.5, 1, lr=lr), t_max=1.5, d=d, grid=TimeGrid(0.25), seeds=S, seed=d)
        for v in ("test_loss", "Q"):
            a = sim[v].values.reshape(S, len(ode.time), -1)
            err = np.abs(a.mean(0) - ode[v].values.reshape(len(ode.time), -1))
            assert np.all(err < 5 * a.std(0, ddof=1) / math.sqrt(S) + 3e-3), (d, v)
    const = O.solve_online(pr, gamma=0.5, t_max=1.5, dt=0.25)
    assert float(np.abs(const.test_loss[-1] - ode.test_loss[-1])) > 0.01  # the decay is seen
    # long horizons: graded records (tau up to 2e4) cost the adaptive solver no more than its own steps
    times = TimeGrid(0.05, 0.05, 50.0).times(5000.0)
    far = O.solve_online(pr, gamma=0.5, times=times)
    assert far.tau.values[-1] >= 2e4 and len(times) < 500
    j = int(np.searchsorted(times, 20.0, side="right"))  # the graded records up to t = 20, among dense ones
    dense = np.union1d(times[:j], np.arange(401) * 0.05)
    uni = O.solve_online(pr, gamma=0.5, times=dense).sel(time=times[:j])
    np.testing.assert_allclose(far.test_loss.values[:j], uni.test_loss.values, atol=1e-6)


def test_batch_size_schedule_at_fixed_gamma_follows_the_same_limit():
    """Batch sizes 1 -> 16 -> 64 at fixed gamma (the lr scaled with the batch): each sample is still visited at
    rate 1 / gamma with jumps gamma, so true mini-batch SGD follows the constant-batch DMFT (d = 2000, n = 4000).
    A constant schedule is the plain run step for step, and the bookkeeping of steps and times is exact."""
    from sgd_dmft.simulation import BatchSchedule

    grow = BatchSchedule((0.8, 1.6), (1, 16, 64))
    sim = simulate(LOGISTIC, MiniBatchSGD(0.5, batches=grow), t_max=2.4, d=2000, grid=TimeGrid(0.08), seeds=8, seed=3)
    assert sim.attrs["batch_sizes"] == "[1, 16, 64]"
    th = dmft.solve(LOGISTIC, laws.SGD(0.02, 0.5), t_max=2.4, paths=8000, replicas=8, seed=1, keep_kernels=False)
    t = sim.time.values
    for v in ("train_loss", "test_loss"):
        s = sim[v].values
        se = np.sqrt(th[v + "_stderr"].interp(time=t).values ** 2 + s.var(0, ddof=1) / s.shape[0])
        z = (th[v].interp(time=t).values - s.mean(0))[1:] / se[1:]
        assert np.max(np.abs(z)) < Z_MAX, (v, z)
    one = BatchSchedule((1.0,), (4, 4))
    a = simulate(LOGISTIC, MiniBatchSGD(0.5, 4), t_max=1.6, d=200, grid=TimeGrid(0.08), seeds=1, seed=5)
    b = simulate(LOGISTIC, MiniBatchSGD(0.5, batches=one), t_max=1.6, d=200, grid=TimeGrid(0.08), seeds=1, seed=5)
    np.testing.assert_array_equal(a.Q.values, b.Q.values)
    alg, n = MiniBatchSGD(0.5, batches=grow), 4000
    K = alg.record_steps(np.array([0.8, 1.6, 2.4]), n)
    np.testing.assert_array_equal(K, [6400, 6400 + 400, 6400 + 400 + 100])  # 0.8 / (0.5 kappa / n) steps
    assert alg.time_of_step(int(K[-1]), n) == pytest.approx(2.4) and alg.eta_at(int(K[0]), n) == pytest.approx(0.002)
    with pytest.raises(ConfigError):
        BatchSchedule((1.0,), (1,))
