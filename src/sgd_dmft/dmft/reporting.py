"""What a solve says about itself, in its attrs and warnings: the response window's stated error, the
Richardson levels (and a failed internal level), the tail-path retry, the accuracy reached (``rtol_achieved``,
``dt_error_rel_max``, warned past ``curves.REL_ACCURACY``), and the classifiers' test 0-1 error. Used by
driver.py."""

from __future__ import annotations

import warnings

import numpy as np
import xarray as xr

from ..curves import REL_ACCURACY, TEST_ERROR_UNITS, add_overlap_function
from ..errors import SolverDiverged
from ..models import classifies, zero_one_error
from .accuracy import Target
from .replicas import Reduction

__all__ = ["WINDOW_ERROR_FACTOR", "WINDOW_ERROR_WARN", "TAIL_RETRY", "window_note", "level_notes", "tail_note",
           "record_accuracy", "with_test_error"]

TAIL_RETRY = 0.01  # the tail mass of the retry after a divergence of pathwise tangents without tail paths
WINDOW_ERROR_FACTOR = 2.5  # relative curve error per unit of cut R_F share (measured 0.2-2.0 over 12 cases)
WINDOW_ERROR_WARN = 5e-3  # stated relative error of a windowed solve past which it warns


def window_note(ds: xr.Dataset, red: Reduction) -> None:
    """attrs ``response_window_error`` of a windowed solve: the relative error of the curves it states,
    ``WINDOW_ERROR_FACTOR`` times the share of ``R_F`` the window cuts (responses._Windowed), and a warning
    past ``WINDOW_ERROR_WARN``."""
    if not ds.attrs.get("response_window"):
        return
    err = WINDOW_ERROR_FACTOR * float(max(red.edges, default=0.0))
    ds.attrs["response_window_error"] = err
    if err > WINDOW_ERROR_WARN:
        warnings.warn(f"solver.response_window = {ds.attrs['response_window']:g}: the window cuts a response R_F that "
                      f"has not decayed (stated relative error of the curves {err:.2%} > {WINDOW_ERROR_WARN:.1%}, "
                      f"from R_F's decay over the window's oldest fifth): raise solver.response_window",
                      RuntimeWarning, stacklevel=4)


def level_notes(lv, failed: dict[str, str], coupled_: bool, error_until: float | None = None) -> dict:
    """attrs of an extrapolated solve: ``extrapolated``, ``extrapolation``, ``levels``; a failed internal
    level is said there and in a RuntimeWarning (the user's run itself did not fail). ``error_until``: the
    last time of a coupled error level run while needed (0: not needed; ``error_level_until``)."""
    names = dict(zip(("fine", "mid", "coarse"), lv.names().split(", ") + ["", ""]))
    base = "2 f(dt) - f(2 dt)" if lv.user == 0 else "2 f(dt/2) - f(dt)"
    how = " per replica on coupled levels (common random numbers)" if coupled_ else ""
    mid_failed = "mid" in failed or (lv.user == 1 and "fine" in failed)
    if mid_failed:
        which = "mid" if "mid" in failed else "fine"
        msg = (f"the internal Richardson level at {names[which]} diverged ({failed[which]}); the result is the raw "
               f"recursion at dt={lv.user_law.dt:g}, without the dt -> 0 limit")
        warnings.warn(msg, RuntimeWarning, stacklevel=4)
        return dict(extrapolated=0, extrapolation_failed=msg, levels=names["fine" if lv.user == 0 else "mid"])
    out = dict(extrapolated=1, levels=lv.names() + (" (coupled)" if coupled_ else ""))
    if lv.coarse is None or "coarse" in failed:
        est = "error estimate f(b) - f(2b) (first order, an overestimate)"
        if "coarse" in failed:
            out["levels"] = ", ".join(lv.names().split(", ")[:2]) + (" (coupled)" if coupled_ else "")
            out["extrapolation_note"] = f"the error level at {names['coarse']} diverged ({failed['coarse']})"
    else:
        est = f"error estimate from {names['coarse']}"
    if error_until is not None and "coarse" not in failed:
        out.update(_error_level_note(names, error_until))
        est = out.pop("estimate")
    out["extrapolation"] = f"Richardson {base}{how}; {est}"
    return out


def _error_level_note(names: dict, until: float) -> dict:
    """``levels``, ``error_level_until`` and the error estimate's description for a coupled error level run
    up to ``until`` (coupled.ERROR_LEVEL_SE)."""
    from .coupled import ERROR_LEVEL_SE

    rule = f"the first-order correction f(b) - f(2b) within {ERROR_LEVEL_SE:g} s.e. of the curve"
    if until <= 0.0:
        return dict(levels=f"{names['fine']}, {names['mid']} (coupled)", error_level_until=0.0,
                    estimate=f"error estimate f(b) - f(2b) (first order: {rule} at every time, no {names['coarse']} level)")
    return dict(levels=f"{names['fine']}, {names['mid']}, {names['coarse']} to t = {until:g} (coupled)",
                error_level_until=float(until),
                estimate=f"error estimate from {names['coarse']} to t = {until:g}, f(b) - f(2b) after it ({rule})")


def tail_note(ds: xr.Dataset, err: SolverDiverged) -> None:
    msg = (f"pathwise tangents diverged ({str(err).splitlines()[0][:200]}); solved again with integration by "
           f"parts on the paths of the largest |r*| (tail={TAIL_RETRY:g}, an unbiased estimator of the same "
           f"responses, docs/theory.md section 3c)")
    ds.attrs.update(tail=TAIL_RETRY, tail_retry=msg)
    warnings.warn(msg, RuntimeWarning, stacklevel=3)


def record_accuracy(ds: xr.Dataset, target: Target, rtol: float | None, max_time_s: float | None) -> None:
    """attrs ``rtol_achieved`` (worst relative s.e. of train/test loss over t > 0), ``dt_error_rel_max``
    (worst relative dt error, extrapolated solves) and, with a target, ``rtol``, ``rtol_met``,
    ``max_time_s``; a RuntimeWarning when either error passes ``curves.REL_ACCURACY`` of the curve."""
    worst, worst_dt = 0.0, 0.0
    for v in ("train_loss", "test_loss"):
        m = np.maximum(np.abs(ds[v].values[1:]), 1e-300)
        if m.size:
            worst = max(worst, float(np.max(np.abs(ds[v + "_stderr"].values[1:]) / m)))
            if v + "_dt_error" in ds:
                worst_dt = max(worst_dt, float(np.max(np.abs(ds[v + "_dt_error"].values[1:]) / m)))
    ds.attrs.update(rtol_achieved=worst, dt_error_rel_max=worst_dt)
    if max(worst, worst_dt) > REL_ACCURACY:
        warnings.warn(f"inaccurate theory curves: relative standard error up to {worst:.1%}, dt error up to "
                      f"{worst_dt:.1%} of the loss (> {REL_ACCURACY:.0%}): raise paths (standard error) or "
                      f"lower dt (dt error); at a step gamma far above 1 both grow", RuntimeWarning, stacklevel=4)
    if rtol is not None:
        ds.attrs.update(rtol=float(rtol), rtol_met=int(worst <= rtol))
    if max_time_s is not None:
        ds.attrs["max_time_s"] = float(max_time_s)
    if target.notes:  # an unreachable target (accuracy.py)
        ds.attrs["rtol_note"] = "; ".join(target.notes)


def with_test_error(ds: xr.Dataset, problem) -> xr.Dataset:
    """For a classifier (:func:`~sgd_dmft.models.classifies`): ``ds`` with ``test_error`` (probability: the
    test 0-1 error of the overlaps by :func:`~sgd_dmft.models.zero_one_error`, teacher covariance ``S* = I``)
    and ``test_error_stderr``. A raw Monte Carlo solve has it per replica already (driver's dataset: mean and
    spread over replicas); an extrapolated or closed-form one gets it from its final ``M``, ``Q``, with the
    delta-method bound of :func:`~sgd_dmft.curves.add_overlap_function` as standard error. Other models:
    ``ds`` unchanged."""
    model = problem.model
    if not classifies(model):
        return ds
    if "test_error" not in ds or "M_dt_error" in ds:
        ds = add_overlap_function(ds, "test_error", lambda Q, M: zero_one_error(model, Q, M), TEST_ERROR_UNITS)
    ds["test_error"].attrs["units"] = ds["test_error_stderr"].attrs["units"] = TEST_ERROR_UNITS
    return ds
