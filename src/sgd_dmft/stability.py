"""Divergence: the stability conditions checked up front, and the growth rule applied during a run.

One home for the solver (march.py) and the finite-d simulators (simulation/recorder.py), so that
``solve`` and ``simulate`` of the same configuration give the same verdict (docs/theory.md section 5b).

Up front (:func:`check_stability`; ``h`` is a grid step ``dt_m`` in units of t, ``lambda`` the ridge):

* the explicit ridge step ``theta <- (1 - h lambda) theta``: refused unless ``|1 - h lambda| < 1``,
  i.e. ``h lambda < 2``, at the largest step of the grid up to ``t_max``;
* linear model, square loss, i.i.d. multipliers: a visit maps a sample's residual
  ``r - y -> (1 - S)(r - y)``, whose mean square grows when ``E[S^2] >= 2 E[S]`` (SGD and
  reshuffling: jumps ``gamma >= 2``; the SME: ``gamma + dt >= 2``);
* phase retrieval under jumps ``gamma`` (SGD, reshuffling): a visit maps ``r -> r (1 - 2 gamma (r^2 - y))``,
  which escapes for labels ``y > 1/gamma``; refused when a sample has such a label with probability
  above ``ESCAPE_REFUSE``, warned above ``ESCAPE_WARN`` (:func:`escape_probability`);
* linear model, square loss: the Hessian ``X^T X`` has the largest eigenvalue ``lambda_max = (1 +
  sqrt(delta))^2`` at d = infinity (Marchenko-Pastur edge), so GD is refused unless ``h (lambda_max +
  lambda) < 2``; so is every grid recursion, whose mean step ``E[S_m] = h`` is GD's (a Bernoulli batch
  of a fraction ``h / gamma`` of the samples, the SME's drift).

A compressed (graded) grid of GF, GD or the SME (:func:`graded_step_cap`, run's ``solver.compress = 'auto'``)
caps its steps from an upper bound on the empirical risk's Hessian at any parameters, ``lambda <=
sup ||l''|| (1 + sqrt(delta))^2 + ridge`` (the model's ``hessian_bound``: square loss 1, logistic 1/4 per sample),
so that the explicit step of its coarsest Richardson level stays below the edge ``h lambda < 2``.

During a run (:class:`GrowthDetector`, fed ``trace Q`` after every step or record): a non-finite
value, ``trace Q > Q_MAX``, or geometric growth: ``trace Q`` increased at every one of the last
``GROWTH_WINDOW`` steps, by a factor ``>= GROWTH_FACTOR`` over them, and stands above
``GROWTH_FLOOR`` times its initial scale ``max(1, trace Q_0)``. A run growing like ``1.5^m`` is stopped
when it passes the floor (``trace Q ~ 1e3``), far before ``1e12``. Slower geometric growth (a few percent
per step: a two-layer relu student at ``gamma |a|^2 = 2``, whose interpolating samples sit on the edge of
their visit map) is caught by the long rule: above the floor, a factor ``>= GROWTH_FACTOR`` over the last
``LONG_WINDOW`` steps, growing in each of its blocks of ``GROWTH_WINDOW`` and not slowing down (the last
block's log-growth at least 0.9 of the window's mean), which polynomial growth (``m^2``, ``m^6``) does not pass.
"""

from __future__ import annotations

import math
from collections import deque

from .errors import Diverged, SimulationDiverged, SolverDiverged

Q_MAX = 1e12  # hard threshold on trace Q (dimensionless, Q = theta^T theta / d)
GROWTH_WINDOW = 10  # steps (or records) over which growth is judged
GROWTH_FACTOR = 20.0  # overall growth over the window (>= 1.35 per step on average)
GROWTH_FLOOR = 1e3  # ... and trace Q above this multiple of max(1, trace Q_0)
LONG_WINDOW = 5 * GROWTH_WINDOW  # steps (or records) of the long rule: slow geometric growth (a few % per step)
_EDGE = 2.0  # |1 - x| < 1  <=>  0 < x < 2


class GrowthDetector:
    """Feed ``trace Q`` (dimensionless) step by step; :meth:`update` returns why the run diverged, or None."""

    def __init__(self, window: int = GROWTH_WINDOW, factor: float = GROWTH_FACTOR, floor: float = GROWTH_FLOOR,
                 q_max: float = Q_MAX):
        self.window, self.factor, self.floor, self.q_max = int(window), float(factor), float(floor), float(q_max)
        self.long = LONG_WINDOW // GROWTH_WINDOW * self.window
        self.recent: deque[float] = deque(maxlen=self.long + 1)
        self.scale: float | None = None

    def update(self, q: float) -> str | None:
        """The reason the run diverged at this value (a short phrase), or None to go on."""
        q = float(q)
        if not math.isfinite(q):
            return f"trace Q = {q}"
        if q > self.q_max:
            return f"trace Q = {q:.3g} > {self.q_max:g}"
        if self.scale is None:
            self.scale = max(1.0, abs(q))
        self.recent.append(q)
        if len(self.recent) <= self.window or q <= self.floor * self.scale:
            return None
        r = list(self.recent)[-(self.window + 1):]  # (only above the floor: the hot path stays a deque append)
        if r[0] <= 0:
            return None
        # geometric: monotone, by ``factor`` over the window and by its square root over the last half
        # (a run that jumps once from a small Q_0 and then grows ever more slowly is not unstable:
        # logistic SGD without ridge at gamma 50, trace Q 0.25 -> 147 -> ... -> 1e3 like t)
        if (all(b > a for a, b in zip(r, r[1:])) and q / r[0] >= self.factor
                and q / r[len(r) // 2] >= math.sqrt(self.factor)):
            return (f"trace Q = {q:.3g} grew by {q / r[0]:.3g}x over the last {self.window} steps: geometric "
                    f"growth, an unstable step")
        return self._slow_growth(q)

    def _slow_growth(self, q: float) -> str | None:
        """The long rule: steady geometric growth over ``LONG_WINDOW`` steps (see the module docstring)."""
        r = list(self.recent)
        if len(r) <= self.long or min(r) <= 0 or q / r[0] < self.factor:
            return None
        logs = [math.log(r[i + self.window] / r[i]) for i in range(0, self.long, self.window)]
        if min(logs) <= 0 or logs[-1] < 0.9 * sum(logs) / len(logs):
            return None
        return (f"trace Q = {q:.3g} grew by {q / r[0]:.3g}x over the last {self.long} steps, at a steady rate: "
                f"geometric growth, an unstable step")


def diverged(law, t: float, what: str, step_hint: bool = True) -> SolverDiverged:
    """A :class:`~sgd_dmft.errors.SolverDiverged` naming the time, what blew up and the law (on a graded grid,
    unless ``step_hint`` is False, the step at that time and the advice to lower ``dt_max``)."""
    gam = getattr(law, "gamma", None)
    g = f", gamma={gam:g}" if gam is not None else ""
    hint = ""
    if law.graded and step_hint:
        h = law.steps(len(law.times(t)))
        hint = (f"; graded grid, step at that time dt_m={h[-1]:g} (an explicit step must stay below "
                f"2 / the largest Hessian eigenvalue: lower dt_max={law.dt_max})")
    return SolverDiverged(f"DMFT solution diverged at t={t:.4g} ({what}) for algorithm={law.name}{g}, dt={law.dt:g}{hint}")


def largest_step(law, t_max: float | None = None) -> float:
    """The largest step ``f dt_m`` (units of t) used up to ``t_max`` (the grid's cap without one; ``f``: the
    largest learning-rate factor)."""
    return law.grid.largest_step_until(t_max) * getattr(law, "lr_peak", 1.0)


def gd_edge(problem) -> float | None:
    """Largest Hessian eigenvalue of the loss part where known (the model's ``hessian_edge``; linear model,
    square loss: ``(1 + sqrt(delta))^2``), else None."""
    return problem.model.hessian_edge(problem.delta)


def risk_edge_bound(problem) -> float | None:
    """An upper bound on the largest Hessian eigenvalue of the empirical risk (loss part and ridge) at any
    parameters, at d = infinity: the model's ``hessian_bound(delta)`` plus the ridge; None without a bound."""
    bound = problem.model.hessian_bound(problem.delta)
    return None if bound is None else bound + float(problem.ridge)


def graded_step_cap(problem, law, share: float, coarsest: int = 4) -> float | None:
    """The largest step ``dt_max`` of a graded grid for a law whose mean step is GD's (GF, GD, the SME: no jumps,
    independent steps), such that its coarsest Richardson level (``coarsest x dt_max``) stays at ``share`` of the
    explicit step's edge ``2 / lambda`` (:func:`risk_edge_bound`) and, on the linear model, of ``E[S^2] < 2 E[S]``
    (the SME: ``h + gamma < 2``); a learning-rate schedule's peak included. None for other laws or without a bound."""
    if law.jump_size is not None or not law.independent_steps:
        return None
    edge = risk_edge_bound(problem)
    if edge is None or edge <= 0:
        return None
    cap = share * _EDGE / (coarsest * edge)
    extra = float(law.second_moment_at(1.0)) - 1.0  # E[S^2] / E[S] = h + extra (the SME: gamma; GF, GD: 0)
    if getattr(problem.model, "linear_square", False) and extra > 0:
        cap = min(cap, share * max(_EDGE - extra, 0.0) / coarsest)
    return cap / law.lr_peak if cap > 0 else None


def check_jumps(problem, law, what: str = "DMFT run", error: type[Diverged] = SolverDiverged) -> None:
    """Linear model, square loss, i.i.d. multipliers: refuse ``E[S^2] >= 2 E[S]`` (the mean square of a
    visited residual ``(1 - S)(r - y)`` grows; SGD / reshuffling: ``gamma >= 2``)."""
    if not getattr(problem.model, "linear_square", False):
        return
    jump = law.jump_size
    if jump is not None:
        if jump > _EDGE:
            raise error(f"{what} diverged: gamma={jump:g} is past the stability edge gamma = 2 of the linear model "
                        f"(a visit maps r - y -> (1 - gamma)(r - y); algorithm={law.name}, dt={law.dt:g}): lower "
                        f"dynamics.gamma below 2")
        return
    if law.deterministic or not law.independent_steps:
        return
    f = law.lr_peak  # the largest step of a learning-rate schedule
    m1, m2 = (float(x[0]) * f**p for x, p in zip(law.moments_at([law.dt]), (1, 2)))
    if m2 >= _EDGE * m1 * (1 + 1e-12):
        raise error(f"{what} diverged: E[S^2] = {m2:.4g} >= 2 E[S] = {2 * m1:.4g} per step for algorithm={law.name} "
                    f"(gamma={getattr(law, 'gamma', float('nan')):g}, dt={law.dt:g}): on the linear model a step maps "
                    f"r - y -> (1 - S)(r - y), whose mean square grows; lower dynamics.gamma (SME: gamma + dt < 2)")


def check_explicit_steps(problem, law, t_max: float | None = None, what: str = "DMFT run",
                         error: type[Diverged] = SolverDiverged) -> None:
    """The ridge step ``|1 - h lambda| < 1`` and, where ``lambda_max`` is known, GD's ``h (lambda_max +
    lambda) < 2`` at the largest step ``h`` up to ``t_max``."""
    h = largest_step(law, t_max)
    ridge = float(problem.ridge)
    if ridge > 0 and h * ridge >= _EDGE:
        raise error(f"{what} diverged: the explicit ridge step is unstable, |1 - dt_m ridge| = {abs(1 - h * ridge):.4g} "
                    f">= 1 (dt_m={h:g}, ridge = {ridge:g}; algorithm={law.name}): lower {_step_keys(law)} below "
                    f"{_EDGE / ridge:.4g}")
    edge = gd_edge(problem)
    if edge is not None and h * (edge + ridge) >= _EDGE:
        kind = "full-batch GD is" if law.deterministic else f"the mean step of algorithm={law.name} (E[S] = dt_m: GD) is"
        raise error(f"{what} diverged: {kind} past its stability edge, dt_m (lambda_max + ridge) = "
                    f"{h * (edge + ridge):.4g} >= 2 (dt_m={h:g}, lambda_max = (1 + sqrt(delta))^2 = {edge:.4g}): "
                    f"lower {_step_keys(law)} below {_EDGE / (edge + ridge):.4g}")


def _step_keys(law) -> str:
    """The keys that set the largest step, with their values."""
    return f"dynamics.dt={law.dt:g} / dt_max={law.dt_max}" if law.graded else f"dynamics.dt={law.dt:g}"


ESCAPE_REFUSE = 1e-4  # escape probability per sample past which a jump law is refused (phase retrieval)
ESCAPE_WARN = 1e-9  # ... and past which it is warned about


def escape_probability(problem, jump: float) -> float:
    """The probability that a sample's visit map escapes under jumps ``gamma`` (the model's
    ``escape_probability``: phase retrieval and the two-layer quadratic student with one unit, no bias, square
    loss; 0 for every other model).

    Phase retrieval: a visit maps ``r -> r (1 - 2 gamma (r^2 - y))``; its orbit stays bounded only while
    ``y <= 1/gamma`` (docs/theory.md section 3c), so samples with larger labels escape and the run
    diverges once one is drawn; ``y = r*^2 + noise eps``. The student ``f = a r^2`` has the same map in
    ``u = a r`` with the label ``a y``: ``u -> u (1 - 2 gamma (u^2 - a y))``, escaping for ``a y > 1/gamma``,
    ``y = g(r*) + noise eps`` (its link ``g``)."""
    return problem.model.escape_probability(jump)


def check_escape(problem, law, what: str = "DMFT run", error: type[Diverged] = SolverDiverged) -> None:
    """Refuse a jump law on phase retrieval whose labels escape with probability > ``ESCAPE_REFUSE``
    per sample; warn past ``ESCAPE_WARN`` (the d = infinity limit diverges, a finite run may not)."""
    jump = law.jump_size
    if jump is None:
        return
    p = escape_probability(problem, jump)
    if p <= ESCAPE_WARN:
        return
    msg = (f"{problem.model.escape_map} with jumps gamma={jump:g}: a visit maps r -> r (1 - 2 gamma (r^2 - y)), whose orbit "
           f"escapes for labels y > 1/gamma = {1 / jump:.4g}; a sample has such a label with probability {p:.3g}, so "
           f"a run on n samples diverges with probability about 1 - exp(-{p:.3g} n)")
    if p > ESCAPE_REFUSE:
        raise error(f"{what} diverged: {msg}: lower dynamics.gamma below {_gamma_for(problem, ESCAPE_REFUSE):.3g}")
    import warnings

    warnings.warn(f"{what}: {msg} (the d = infinity limit diverges; curves hold for n << {1 / p:.2g})", RuntimeWarning,
                  stacklevel=3)


def check_two_layer_edge(problem, law, what: str = "DMFT run") -> None:
    """Two-layer student, square loss, jumps ``gamma`` (SGD, reshuffling): near interpolation a visit maps
    the residual ``f - y -> (1 - gamma sum_a a_a^2 s'(r_a + b_a)^2)(f - y)``, past its edge when that sum
    reaches 2. A RuntimeWarning when ``gamma |a|^2 sup s'^2 >= 2`` (the model's ``visit_edge``; then samples
    with every unit at full slope are unstable: for relu, all units active; a run that does grow is stopped
    by the growth rule)."""
    jump = law.jump_size
    edge = None if jump is None else problem.model.visit_edge(jump)
    if edge is not None and edge.value >= _EDGE:
        import warnings

        warnings.warn(f"{what}: gamma |a|^2 sup s'^2 = {edge.value:.3g} >= 2 (gamma={jump:g}, second_layer |a|^2 = "
                      f"{edge.a2:.3g}, activation={edge.activation}): a visit can push a fitted sample's residual out "
                      f"by a factor {edge.value - 1:.3g}; the run may grow geometrically (lower dynamics.gamma below "
                      f"{edge.below:.3g})", RuntimeWarning, stacklevel=3)


def _gamma_for(problem, p: float) -> float:
    """The jump size at which :func:`escape_probability` equals ``p`` (bisection in log gamma)."""
    lo, hi = 1e-6, 10.0
    for _ in range(60):
        mid = math.sqrt(lo * hi)
        lo, hi = (mid, hi) if escape_probability(problem, mid) < p else (lo, mid)
    return lo


def check_stability(problem, law, t_max: float | None = None, what: str = "DMFT run",
                    error: type[Diverged] = SolverDiverged) -> None:
    """Refuse up front what is known to diverge (the module docstring's conditions)."""
    check_jumps(problem, law, what, error)
    check_escape(problem, law, what, error)
    check_two_layer_edge(problem, law, what)
    check_explicit_steps(problem, law, t_max, what, error)


def check_simulation_stability(problem, law, t_max: float, step_of_ridge: float | None = None) -> None:
    """The same conditions for a simulation of ``law``'s algorithm (SimulationDiverged). The step
    algorithms (true mini-batch SGD, reshuffling) apply their ridge decay with ``eta``
    (``step_of_ridge``), not with the grid step, so only the jump condition and that step are checked."""
    what, err = "simulation", SimulationDiverged
    check_jumps(problem, law, what, err)
    check_escape(problem, law, what, err)
    check_two_layer_edge(problem, law, what)
    if step_of_ridge is None:
        check_explicit_steps(problem, law, t_max, what, err)
    elif problem.ridge * step_of_ridge >= _EDGE:
        raise err(f"simulation diverged: the ridge step is unstable, eta ridge = {problem.ridge * step_of_ridge:.4g} "
                  f">= 2: lower problem.ridge or dynamics.gamma")
