"""Closed forms first (dmft/closed.py): ``solve`` answers the linear model's GD, GF and SGD-limit requests
without kernels by the exact formulas, and they agree with the dense exact path (the cross-check)."""

from __future__ import annotations

import numpy as np
import pytest

from sgd_dmft import exact, laws
from sgd_dmft import problem as pb
from sgd_dmft.dmft import ExactLinearPath, solve

LIN = pb.Problem(pb.linear(noise=0.3), delta=2.0, ridge=0.05, init_scale=0.5, init_overlap=0.2)


def _envelope(err: np.ndarray, half: int = 2) -> np.ndarray:
    pad = np.concatenate([np.repeat(err[:1], half, 0), err, np.repeat(err[-1:], half, 0)])
    return np.max(np.stack([pad[j : j + len(err)] for j in range(2 * half + 1)]), axis=0)


@pytest.mark.parametrize("law", [laws.GF(0.02), laws.SGD(0.02, 0.5), laws.GD(0.05),
                                 laws.GD(0.02, growth=0.1, dt_max=0.2), laws.SGD(0.01, 0.5, growth=0.1, dt_max=0.1)],
                         ids=["gf", "sgd", "gd", "gd-graded", "sgd-graded"])
def test_closed_form_agrees_with_the_exact_path_within_its_dt_error(law):
    fast = solve(LIN, law, t_max=3.0, keep_kernels=False)
    march = solve(LIN, law, t_max=3.0, keep_kernels=False, process=ExactLinearPath())
    assert "closed_form" in fast.attrs and "closed_form" not in march.attrs
    np.testing.assert_allclose(fast.time.values, march.time.values, rtol=1e-12)
    for v in ("train_loss", "test_loss", "M", "Q"):
        gap = np.abs(fast[v].values - march[v].values)
        if law.continuous_time:  # the march's dt -> 0 limit, within its own stated error (+ rounding);
            # that estimate is the R1 extrapolant's second-order term, which crosses zero at isolated times
            # and stays small over stretches of time, where the (smaller) third-order error remains (measured:
            # up to 5e-6 of the curve's scale): its envelope over 5 neighbouring times plus 1e-5 of the scale
            env = _envelope(march[v + "_dt_error"].values) + 1e-5 * float(np.max(np.abs(march[v].values)))
            bound = env + fast[v + "_dt_error"].values
        else:  # the GD recursion itself: the same numbers up to rounding
            bound = 1e-11 * np.maximum(1.0, np.abs(march[v].values))
        assert np.all(gap <= bound), (v, float(np.max(gap / bound)))
        assert np.all(fast[v + "_stderr"].values == 0.0)


def test_closed_form_sgd_error_estimate_covers_a_finer_volterra_solve():
    law = laws.SGD(0.02, 1.0)
    ds = solve(LIN, law, t_max=4.0, keep_kernels=False)
    ref = exact.sgd_linear_poisson(LIN, 1.0, ds.time.values, h=ds.attrs["volterra_step"] / 4)
    for v in ("train_loss", "test_loss"):
        err = np.abs(ds[v].values - ref[v].values)
        assert np.all(err <= ds[v + "_dt_error"].values + 1e-13), v
        assert float(ds[v + "_dt_error"].max()) < 1e-5 * float(np.abs(ds[v]).max())


def test_kernels_a_named_process_or_another_model_still_march():
    assert "closed_form" not in solve(LIN, laws.GF(0.05), t_max=0.5).attrs  # kernels asked for
    assert "closed_form" not in solve(LIN, laws.SME(0.05, 0.5), t_max=0.5, keep_kernels=False).attrs
    assert "closed_form" not in solve(LIN, laws.SGD(0.05, 0.5), t_max=0.5, keep_kernels=False,
                                      extrapolate=False).attrs  # the raw Bernoulli recursion has no closed form
    logistic = pb.Problem(pb.logistic(), delta=2.0, ridge=0.1, init_scale=0.5)
    ds = solve(logistic, laws.GF(0.05), t_max=0.3, paths=200, replicas=2, keep_kernels=False)
    assert "closed_form" not in ds.attrs


def test_closed_form_refuses_what_the_march_refuses():
    with pytest.raises(Exception, match="gamma"):
        solve(LIN, laws.SGD(0.05, 2.5), t_max=1.0, keep_kernels=False)
