"""A cheap numerical probe of a model's derivatives: does ``grad`` have a kink?

Pathwise tangents (the solver's default responses) differentiate ``F = grad_r l`` through ``hess``;
where ``F`` has a kink or a jump (relu, abs, hinge), ``hess`` misses a Dirac mass and the responses
come out wrong without any sign of it (docs/theory.md section 3). :func:`probe_model` decides from
the model's own callables, on ``N_POINTS`` = 2048 fixed Gaussian points (seed ``SEED``; the same
points every call, so the verdict is deterministic):

* points ``r = s z`` with ``z ~ N(0, I_k)`` and scales ``s`` cycling through ``SCALES`` = (0.5, 1, 2)
  (pre-activations at initialisation and later in training), labels ``y = model.labels(r*, eps)``
  with independent ``r* ~ N(0, I_k*)`` and ``eps ~ N(0, 1)``; a random unit direction ``v`` per point.
* **Jumps of grad** (decides ``smooth``): along the segment ``g(t) = F(r + t v, y)``, ``|t| <= H_SEG``
  = 0.05, the second differences ``D(h) = g(h) - 2 g(0) + g(-h)`` cancel to ``e = |D(H) - 4 D(H/2)|
  = O(H^4 |g''''|)`` for a smooth ``F`` (about 1e-6 relative for tanh) but keep ``O(J)`` where a jump
  ``J`` of ``F`` lies on the segment. A point *jumps* when ``e > JUMP_RTOL * scale`` (``JUMP_RTOL`` =
  1e-3, ``scale`` = the RMS of ``|F|`` over the points); the model is **kinked** when at least
  ``MIN_JUMPS`` = 3 points jump (a kink hyperplane through the bulk crosses ~1-2% of the segments,
  i.e. 20-40 points; a smooth model gives 0). Derivative-free: only ``grad`` is evaluated.
* **grad against loss** (only when ``grad`` was supplied): central differences of ``loss`` with step
  1e-4; a mismatch beyond ``CHECK_RTOL`` = 1e-4 * (scale + |F|) at more than ``CHECK_FRACTION`` = 1% of
  the points is reported (a wrong ``grad``: every estimator is then wrong).
* **hess against grad** (only when ``hess`` was supplied): central differences of ``grad`` with step
  1e-4, same rule, scale the RMS of ``|H|`` (a wrong ``hess``: the pathwise tangents are then wrong).

Cost: 5 + 2k grad calls (+ 2k loss calls, + 1 hess call) on 2048 points, a few ms for k <= 4.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from ..errors import ConfigError

__all__ = ["ProbeReport", "ModelProbeWarning", "probe_model", "N_POINTS", "SEED", "SCALES", "H_SEG",
           "JUMP_RTOL", "MIN_JUMPS", "CHECK_RTOL", "CHECK_FRACTION", "check_model", "CHECK_POINTS", "check_labels",
           "label_problem"]

N_POINTS = 2048
SEED = 20240613
SCALES = (0.5, 1.0, 2.0)
H_SEG = 0.05
JUMP_RTOL = 1e-3
MIN_JUMPS = 3
CHECK_RTOL = 1e-4
CHECK_FRACTION = 0.01
_FD_STEP = 1e-4


class ModelProbeWarning(UserWarning):
    """The probe disagrees with a declared flag, or a supplied ``grad`` / ``hess`` does not match."""


@dataclass(frozen=True)
class ProbeReport:
    """The probe's verdict (dimensionless fractions of the ``N_POINTS`` points).

    ``kinked``: ``grad`` jumps on at least ``MIN_JUMPS`` segments. ``jump_fraction``: the fraction of
    segments where it jumps; ``max_jump``: the largest residual ``e`` over ``scale`` (RMS of |F|).
    ``grad_mismatch`` / ``hess_mismatch``: fraction of points where the supplied grad / hess disagrees
    with finite differences (None: not checked, the derivative was itself derived by differences).
    """

    kinked: bool
    jump_fraction: float
    max_jump: float
    grad_mismatch: float | None = None
    hess_mismatch: float | None = None

    @property
    def smooth(self) -> bool:
        return not self.kinked

    def describe(self) -> str:
        """One line: the verdict and the evidence."""
        if self.kinked:
            return (f"grad jumps on {100 * self.jump_fraction:.1f}% of {N_POINTS} sampled segments "
                    f"(largest jump {self.max_jump:.2g} x RMS |grad|): a kink, hess misses its Dirac mass")
        return f"no jump of grad on {N_POINTS} sampled segments (largest residual {self.max_jump:.1e} x RMS |grad|)"


def _points(model):
    """The probe's fixed points: ``r`` (N, k), ``v`` (N, k) unit directions, ``y`` (N,)."""
    rng = np.random.default_rng(SEED)
    k, ks = int(model.k), int(model.kstar)
    scales = np.resize(np.asarray(SCALES), N_POINTS)[:, None]
    r = scales * rng.standard_normal((N_POINTS, k))
    v = rng.standard_normal((N_POINTS, k))
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    rstar = rng.standard_normal((N_POINTS, ks))
    eps = rng.standard_normal(N_POINTS)
    y = np.asarray(model.labels(rstar, eps), dtype=np.float64)
    return r, v, y


def _rms(a: np.ndarray) -> float:
    return float(np.sqrt(np.mean(a * a))) if a.size else 0.0


def _jumps(grad, r, v, y) -> tuple[np.ndarray, float]:
    """Per-point residuals ``e / scale`` (N,) of the two-step second difference, and ``scale``."""
    g = {t: np.asarray(grad(r + t * v, y), dtype=np.float64) for t in (-H_SEG, -H_SEG / 2, 0.0, H_SEG / 2, H_SEG)}
    d_full = g[H_SEG] - 2 * g[0.0] + g[-H_SEG]
    d_half = g[H_SEG / 2] - 2 * g[0.0] + g[-H_SEG / 2]
    e = np.linalg.norm((d_full - 4 * d_half).reshape(len(r), -1), axis=1)
    scale = _rms(g[0.0])
    return e / max(scale, 1e-300), scale


def _mismatch(value: np.ndarray, reference: np.ndarray) -> float:
    """Fraction of points where ``value`` and ``reference`` (N, ...) differ by more than
    ``CHECK_RTOL * (RMS |reference| + |reference|)``."""
    n = len(value)
    err = np.abs(value - reference).reshape(n, -1).max(axis=1)
    tol = CHECK_RTOL * (_rms(reference) + np.abs(reference).reshape(n, -1).max(axis=1))
    bad = ~(err <= tol)  # NaN counts as a mismatch
    return float(bad.mean())


def _fd_grad(loss, r, y) -> np.ndarray:
    out = np.empty_like(r)
    for a in range(r.shape[1]):
        e = np.zeros(r.shape[1])
        e[a] = _FD_STEP
        out[:, a] = (np.asarray(loss(r + e, y)) - np.asarray(loss(r - e, y))) / (2 * _FD_STEP)
    return out


def _fd_hess(grad, r, y) -> np.ndarray:
    k = r.shape[1]
    out = np.empty((len(r), k, k))
    for b in range(k):
        e = np.zeros(k)
        e[b] = _FD_STEP
        out[:, :, b] = (np.asarray(grad(r + e, y)) - np.asarray(grad(r - e, y))) / (2 * _FD_STEP)
    return 0.5 * (out + np.swapaxes(out, 1, 2))


def probe_model(model, *, check_grad: bool = False, check_hess: bool = False) -> ProbeReport:
    """Probe ``model`` (any :class:`~.base.Model`: ``k``, ``kstar``, ``labels``, ``loss``, ``grad``,
    ``hess``) for a kink in ``grad`` (see the module docstring for the rule and thresholds).

    ``check_grad`` / ``check_hess``: also compare a user-supplied ``grad`` with differences of
    ``loss`` / ``hess`` with differences of ``grad`` (a mismatch warns :class:`ModelProbeWarning`).
    Deterministic (fixed points); a few ms for ``k <= 4``.
    """
    r, v, y = _points(model)
    with np.errstate(all="ignore"):
        rel, _ = _jumps(model.grad, r, v, y)
        jumped = ~(rel <= JUMP_RTOL)
        gm = _mismatch(np.asarray(model.grad(r, y)), _fd_grad(model.loss, r, y)) if check_grad else None
        hm = _mismatch(np.asarray(model.hess(r, y)), _fd_hess(model.grad, r, y)) if check_hess else None
    finite = rel[np.isfinite(rel)]
    report = ProbeReport(kinked=bool(jumped.sum() >= MIN_JUMPS), jump_fraction=float(jumped.mean()),
                         max_jump=float(finite.max()) if finite.size else float("inf"),
                         grad_mismatch=gm, hess_mismatch=hm)
    name = getattr(model, "name", "custom")
    for what, frac, ref in (("grad", gm, "loss"), ("hess", hm, "grad")):
        if frac is not None and frac > CHECK_FRACTION:
            warnings.warn(f"model={name}: the supplied {what} differs from central differences of {ref} at "
                          f"{100 * frac:.1f}% of {N_POINTS} probe points (allowed: {100 * CHECK_FRACTION:g}%); "
                          f"check it", ModelProbeWarning, stacklevel=3)
    return report


# ------------------------------------------------------------------------------------------------
# Shapes and finiteness, checked once per model (before the probe, so a wrong shape is named as such)
# ------------------------------------------------------------------------------------------------
CHECK_POINTS = 8


def _check_output(model, what: str, value, expected: tuple[int, ...]) -> None:
    arr = np.asarray(value)
    shape = arr.shape
    if shape != expected:
        raise ConfigError(f"model {model.name!r}: {what} returned shape {shape}, expected {expected}",
                          key="problem.model")
    if not (np.issubdtype(arr.dtype, np.number) and np.all(np.isfinite(arr))):
        raise ConfigError(f"model {model.name!r}: {what} returned non-finite values (shape {shape})",
                          key="problem.model")


def _failed(model, what: str, e: Exception) -> ConfigError:
    first = str(e).splitlines()[0] if str(e) else ""
    return ConfigError(f"model {model.name!r}: {what} failed: {type(e).__name__}: {first}", key="problem.model")


def check_model(model) -> None:
    """Evaluate the model's callables once on ``CHECK_POINTS`` = 8 points (``r* ~ N(0, I)``, ``r = 0.8 z``)
    and check shapes and finiteness: ``label`` / ``labels`` -> (n,), ``loss`` -> (n,), ``grad`` -> (n, k),
    ``hess`` -> (n, k, k). A failure is a :class:`~sgd_dmft.errors.ConfigError` naming the callable, the
    shape it returned and the one expected (key ``problem.model``)."""
    n, k, ks = CHECK_POINTS, model.k, model.kstar
    rng = np.random.default_rng(3)
    rs, eps, r = rng.standard_normal((n, ks)), rng.standard_normal(n), 0.8 * rng.standard_normal((n, k))
    what = f"label(rstar ({n}, {ks}), eps ({n},))"
    try:
        y = model.labels(rs, eps)
    except ConfigError:
        raise
    except Exception as e:
        raise _failed(model, what, e) from e
    _check_output(model, what, y, (n,))
    y = np.asarray(y, dtype=np.float64)
    for name, shape in (("loss", (n,)), ("grad", (n, k)), ("hess", (n, k, k))):
        what = f"{name}(r ({n}, {k}), y ({n},))"
        try:
            out = getattr(model, name)(r, y)
        except Exception as e:
            raise _failed(model, what, e) from e
        _check_output(model, what, out, shape)
    check_labels(model)


# ------------------------------------------------------------------------------------------------
# Labels of user code: finite everywhere sampled, finite variance (finite population loss)
# ------------------------------------------------------------------------------------------------
LABEL_POINTS = 4096  # Gaussian points (r*, eps) on which a user label must be finite
RAY_RADII = (4.0, 8.0, 12.0, 16.0, 20.0, 24.0, 28.0, 32.0)  # radii of the tail test
FINITE_RADIUS = 12.0  # a label must be finite out to here (quadrature nodes reach it)
RAY_DIRECTIONS = 24  # random unit directions of the tail test (plus the first 8 axes, both signs)
TAIL_RATIO = 0.99  # log y^2 growing at >= this fraction of r^2 / 2 along a ray: E[y^2] = inf
ZOOM_STARTS, ZOOM_POINTS, ZOOM_ROUNDS, ZOOM_SHRINK = 4, 64, 12, 4.0  # the local search for poles
POLE_SLOPE = 0.9  # |y|^2 growing like dist^-s, s >= this, over the last 6 rounds: a pole


def _fmt_point(z: np.ndarray) -> str:
    return "(" + ", ".join(f"{v:.3g}" for v in z[:6]) + (", ..." if len(z) > 6 else "") + ")"


def _heavy_tail(values, dim: int, rng) -> str | None:
    """The tail test: along rays ``z = r u`` (axes and random directions), ``E[y^2] < inf`` needs
    ``y(r u)^2 exp(-r^2 / 2)`` to decay, i.e. ``log y^2`` to grow slower than ``r^2 / 2``: refused when it
    grows at ``TAIL_RATIO`` of that rate between the two largest radii where ``y`` is finite, or when
    ``y`` is not finite within ``FINITE_RADIUS``."""
    axes = np.eye(dim)[: min(dim, 8)]  # tilted off the axes, so that no ray runs inside a zero set (z1 = 0)
    U = np.concatenate([axes, -axes, rng.standard_normal((RAY_DIRECTIONS, dim))])
    U[: 2 * len(axes)] += 1e-3 * rng.standard_normal((2 * len(axes), dim))
    U /= np.linalg.norm(U, axis=1, keepdims=True)
    Y = np.stack([values(r * U) for r in RAY_RADII], axis=1)  # (directions, radii)
    radii = np.asarray(RAY_RADII)
    for u, y in zip(U, Y):
        near = ~np.isfinite(y) & (radii <= FINITE_RADIUS)
        if near.any():
            return (f"non-finite label ({y[near][0]}) at |z| = {radii[near][0]:g} along z = r {_fmt_point(u)} (quadrature "
                    f"nodes reach |z| = {FINITE_RADIUS:g}): E[y^2] cannot be computed")
        ok = np.isfinite(y) & (radii >= FINITE_RADIUS)
        if np.isinf(y[radii > FINITE_RADIUS]).any() and ok.sum() < 2:
            return (f"the label overflows past |z| = {radii[ok][-1] if ok.any() else FINITE_RADIUS:g} along z = r "
                    f"{_fmt_point(u)}: y^2 grows faster than exp(|z|^2 / 2), E[y^2] is infinite")
        if ok.sum() < 2:
            continue
        (r1, r2), (y1, y2) = radii[ok][-2:], y[ok][-2:]
        with np.errstate(divide="ignore", invalid="ignore"):
            growth = 2.0 * (np.log(abs(y2)) - np.log(abs(y1)))
        if growth >= TAIL_RATIO * (r2**2 - r1**2) / 2:
            return (f"y^2 grows like exp(|z|^2 / 2) or faster along z = r {_fmt_point(u)} (|y| = {abs(y2):.3g} at r = "
                    f"{r2:g}): y^2 times the Gaussian density does not decay, E[y^2] is infinite")
    return None


def _pole(values, Z: np.ndarray, y: np.ndarray, rng) -> str | None:
    """The local test: from the points of largest ``|y|``, a greedy search in balls shrinking by
    ``ZOOM_SHRINK`` per round; where ``|y|^2`` keeps growing like ``dist^-s`` with ``s >= POLE_SLOPE`` over
    the last 6 rounds the label has a pole that is not square-integrable across a zero set of codimension
    1 (``1 / z1``: s = 2; ``|z1|^-1/2``: s = 1; ``log |z1|``, ``|z1|^0.5``, any smooth link: s -> 0). Point
    singularities are judged as if they were hyperplanes (conservative)."""
    dim = Z.shape[1]
    for i in np.argsort(-np.abs(y))[:ZOOM_STARTS]:
        best, top, w, logs = Z[i].copy(), abs(float(y[i])), 2.0, []
        for _ in range(ZOOM_ROUNDS):
            d = rng.standard_normal((ZOOM_POINTS, dim))
            d *= (w * rng.random((ZOOM_POINTS, 1)) ** (1.0 / dim)) / np.linalg.norm(d, axis=1, keepdims=True)
            P = best + d
            v = np.abs(values(P))
            if np.isinf(v).any():
                return f"the label is infinite at z = {_fmt_point(P[np.isinf(v)][0])}: a pole, E[y^2] is infinite"
            v[np.isnan(v)] = -1.0
            j = int(np.argmax(v))
            if v[j] > top:
                best, top = P[j], float(v[j])
            logs.append(2.0 * np.log(max(top, 1e-300)))
            w /= ZOOM_SHRINK
        slope = np.polyfit(np.arange(6) * np.log(ZOOM_SHRINK), logs[-6:], 1)[0]
        if slope >= POLE_SLOPE:
            return (f"near z = {_fmt_point(best)} |y|^2 grows like dist^-{slope:.2g} (|y| = {top:.3g} within "
                    f"{w * ZOOM_SHRINK:.2g}): a pole, not square-integrable, E[y^2] is infinite")
    return None


def label_problem(fn, dim: int) -> str | None:
    """Why the label function ``fn(Z (N, dim)) -> (N,)`` of user code cannot make a run (``Z``: the
    standard Gaussian variables it depends on), or None: non-finite values on ``LABEL_POINTS`` Gaussian
    points or within ``FINITE_RADIUS``, or an infinite variance ``E[y^2]`` by the tail test
    (:func:`_heavy_tail`) or the pole test (:func:`_pole`). Deterministic (seed ``SEED``), ~8000 calls'
    worth of points. Sufficient conditions of an infinite variance, judged numerically: a label
    refused here has no finite population loss (square loss) and no Monte Carlo estimate of it.
    Accepted: polynomials, tanh, relu, sign, exp(z), 1 / (1 + z^2), |z|^0.5, log(1 + z^2);
    refused: 1 / z, 1 / z^2, z1 / z2, exp(z^2), NaN anywhere sampled."""
    rng = np.random.default_rng(SEED)

    def values(P):
        with np.errstate(all="ignore"):
            out = np.asarray(fn(P), dtype=np.float64)
        return out.reshape(len(P))

    Z = rng.standard_normal((LABEL_POINTS, dim))
    y = values(Z)
    bad = ~np.isfinite(y)
    if bad.any():
        return (f"non-finite labels ({y[bad][0]}) at {bad.mean():.2%} of {LABEL_POINTS} Gaussian points (e.g. "
                f"z = {_fmt_point(Z[bad][0])})")
    return _heavy_tail(values, dim, rng) or _pole(values, Z, y, rng)


def check_labels(model) -> None:
    """:func:`label_problem` of ``model.labels`` over ``(r*, eps)`` (dimension ``k* + 1``): ConfigError
    (key ``model.label_key``, ``problem.model`` by default) for a label of user code that is not finite or
    whose variance is infinite. Models whose labels are known (presets) skip it."""
    if getattr(model, "trusted_labels", False):
        return
    ks = int(model.kstar)
    try:
        why = label_problem(lambda P: model.labels(P[:, :ks], P[:, ks]), ks + 1)
    except Exception as e:  # noqa: BLE001 - user callables: anything can fail
        raise _failed(model, f"label on {LABEL_POINTS} points", e) from e
    if why:
        key = getattr(model, "label_key", "problem.model")
        raise ConfigError(f"{key} = {str(getattr(model, 'teacher', None) or model.name)!r}: {why}", key=key)
