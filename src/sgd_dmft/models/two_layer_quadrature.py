"""The two-layer population-loss rule (docs/theory.md section 3, "Test loss"), the two-layer preset's
``pop_loss`` (:func:`.population.population_loss` uses it through the model).

**The two-layer rule** (:func:`two_layer_loss`), ``f(r) = sum_a a_a s(r_a + b_a)``, link ``g``. Square
loss: ``E[(f - y)^2] / 2 = (sum_ab a_a a_b P_ab - 2 sum_a a_a C_a + G + noise^2) / 2``, each term of the
lowest dimension it has:

* ``P_ab = E[s(r_a + b_a) s(r_b + b_b)]``: the activation's pair moment where ``b = 0`` and one exists
  (erf, relu, quadratic, linear); else 1-d outer nodes in ``r_a`` (Gauss-Hermite, ``N_OUTER``; for a
  kinked activation Gauss-Legendre on each side of the kink ``r_a = -b_a``, 2 x ``N_SPLIT``, ``|x| <= 10``)
  times the conditional mean ``E[s(r_b + b_b) | r_a]`` (the activation's ``gauss_mean`` in closed form,
  else 2 x ``N_INNER`` split Gauss-Legendre nodes; a kinked activation splits at both kinks);
* ``C_a = E[s(r_a + b_a) g(r*)]``: ``r*`` in a basis whose first axis carries all of ``r_a``'s
  dependence on ``r*``; that axis on ``N_OUTER`` nodes times ``E[s(r_a + b_a) | r*]`` (as above), the
  other ``k* - 1`` axes on ``N_TRANSVERSE[k*]`` Gauss-Hermite nodes each (quasi-Monte Carlo for k* > 4);
* ``G = E[g(r*)^2]``: tensor Gauss-Hermite in ``k*`` dimensions (``N_TEACHER[k*]`` per axis);
* the committee's teacher ``mean_b s(z_b)`` with the student's own ``s``: ``C_a`` (where ``b_a = 0``) and
  ``G`` from the pair moment, as :func:`.closed_forms.committee_loss`.

Logistic loss (``y = sign(g + noise eps)``): ``E[softplus(-y f)] = E[softplus(f)] - sum_a a_a E[s(r_a +
b_a) p(r*)]`` with ``p = P(y = 1 | r*) = Phi(g / noise)`` (a step at noise 0): the first term by tensor
Gauss-Hermite in ``k`` dimensions (``N_SOFTPLUS[k]`` per axis; quasi-Monte Carlo for k > 4), the second as
``C_a`` with ``g`` replaced by ``p``.

Accuracy (tests/test_two_layer.py): within 1e-8 of the same rule with every node count doubled, for
``k + k* <= 4`` and covariances with smallest eigenvalue >= 0.05 and those with Q nine times larger
(tanh, erf, relu with or without biases; polynomial and tanh links); against a rule with 96 nodes per
side, over 4 random covariances and Q scaled 1-16x, <= 1.2e-8 (tanh, z1 z2 + z3), <= 3e-9 otherwise.
Brute-force Monte Carlo agrees within its error. Smooth activations split the Gaussian at their centre
clipped to [-3, 3] with ``max(n, 8 (scale + 1))`` nodes per side (:func:`_smooth_rule`); before session 5
the split was clipped at 8.5 with 16 inner nodes, off by up to 3.6e-6 on the test's covariances (the
test then read its reference back from the cache). A kinked link (``sign``, ``relu`` of a variable) or
a step-like label (the logistic loss at small noise, or a steep ``Phi(g / noise)``) converges
algebraically, about 1e-3 to 1e-5.
"""

from __future__ import annotations

import hashlib
import math
from collections import OrderedDict
from functools import lru_cache

import numba
import numpy as np
from scipy.special import ndtr

from .base import Array, Model
from .closed_forms import softplus
from .gaussian import gauss_hermite_e, population_expectation, sqrtm_psd

__all__ = ["two_layer_loss", "two_layer_zero_one", "quadrature_bytes", "check_quadrature", "GH_MAX_DIM",
           "QMC_POINTS", "ZERO_ONE_POINTS"]

GH_MAX_DIM = 4  # tensor Gauss-Hermite up to this many dimensions, quasi-Monte Carlo beyond
N_OUTER = 24
N_INNER = 20
SMOOTH_SPLIT = 3.0  # smooth integrands: split at most this far out (a panel must resolve the Gaussian)
N_TRANSVERSE = {1: 1, 2: 32, 3: 16, 4: 8}
N_TEACHER = {1: 64, 2: 32, 3: 16, 4: 8}
N_POLY_EXTRA = 0  # Gauss-Hermite nodes beyond the exact count (tests raise it for a reference)
N_SOFTPLUS = {1: 64, 2: 32, 3: 12, 4: 6}
QMC_POINTS = 2**14
_HALF_WIDTH = 8.5


ZERO_ONE_POINTS = 2**15  # scrambled Sobol points of two_layer_zero_one (an indicator: error ~ 1e-3 or below)


def two_layer_zero_one(model, Q: Array, M: Array, S: Array, seed: int = 12345) -> Array:
    """``P(sign f(r) != y)`` (a probability) of the two-layer logistic model, ``y = sign(g(r*) + noise eps)``:
    quasi-Monte Carlo over ``(r, r*)`` (``ZERO_ONE_POINTS`` scrambled Sobol points, scrambling ``seed``: one
    fixed rule, so theory and simulations share its error), the label noise in closed form,
    ``P(y = +1 | r*) = Phi(g(r*) / noise)`` (``[g >= 0]`` without noise). ``Q`` (T, k, k), ``M`` (T, k, k*),
    ``S`` (k*, k*); returns (T,)."""
    noise = float(model.noise)

    def wrong(r: Array, rs: Array, eps: Array) -> Array:
        g = model.target(rs)
        plus = ndtr(g / noise) if noise > 0 else (g >= 0.0).astype(np.float64)
        return np.where(model.predictor(r) >= 0.0, 1.0 - plus, plus)

    return population_expectation(model, Q, M, S, wrong, noise_dim=False, method="qmc", seed=seed,
                                  qmc_points=ZERO_ONE_POINTS)


def _split_rule(kink: Array, n: int, limit: float = _HALF_WIDTH) -> tuple[Array, Array]:
    """Gauss-Legendre on ``[-8.5, c]`` and ``[c, 8.5]`` for each entry ``c`` of ``kink`` (any shape) clipped
    to ``[-limit, limit]``, weights times the standard-normal density: nodes, weights (kink.shape + (2n,)).

    For ``E[phi(x)]``, ``x ~ N(0, 1)``: exact up to the mass beyond 8.5 (1.9e-17) for a ``phi`` smooth on
    each side of ``c``. A split near an end leaves one panel of n nodes for the whole Gaussian: with
    ``limit = 8.5`` (kinks, which must be split) 16 nodes then integrate it to only ~2e-3, so smooth
    integrands split at most at ``SMOOTH_SPLIT`` = 3 (:func:`_smooth_rule`)."""
    xl, wl = _legendre(n)
    c = np.asarray(kink, dtype=np.float64)
    x, w = _split_nodes(np.ascontiguousarray(c.reshape(-1)), xl, wl, _HALF_WIDTH, float(limit))
    return x.reshape(c.shape + (2 * n,)), w.reshape(c.shape + (2 * n,))


def _smooth_rule(centre: Array, n: int, scale: Array) -> tuple[Array, Array]:
    """The split rule for ``E[s(scale x + .)]`` with a smooth (tanh-like) ``s`` centred at ``x = centre``:
    split at the centre clipped to [-3, 3], ``max(n, 8 (scale + 1))`` nodes per side. ``s`` has poles at
    distance ``pi / (2 scale)`` from the real axis, so the rule converges like ``rho^(-2n)`` with ``rho - 1
    ~ 1 / scale``. Measured on ``E[tanh(mu + sigma w)]`` over mu in [-6, 6], sigma in [1e-3, 5]: <= 4e-10
    with ``n = 20`` (the earlier rule, split at the clipped centre with 16 nodes: up to 2e-3 where the
    centre lies beyond 8.5, and 5e-5 at sigma = 5)."""
    top = float(np.max(scale)) if np.size(scale) else 0.0
    n = max(int(n), int(math.ceil(8.0 * (top + 1.0)))) if math.isfinite(top) else int(n)
    return _split_rule(centre, n, SMOOTH_SPLIT)


@numba.njit(cache=True)
def _split_nodes(c, xl, wl, H, L):  # pragma: no cover - compiled
    """The split rule's nodes and weights for kinks ``c`` (N,) clipped to ``[-L, L]`` (fused: no
    temporaries): (N, 2n) each."""
    N, n = c.shape[0], xl.shape[0]
    x = np.empty((N, 2 * n))
    w = np.empty((N, 2 * n))
    norm = 1.0 / math.sqrt(2.0 * math.pi)
    for i in range(N):
        ci = min(max(c[i], -L), L)
        h1, h2 = (ci + H) / 2.0, (H - ci) / 2.0
        m1, m2 = (ci - H) / 2.0, (ci + H) / 2.0
        for j in range(n):
            a, b = m1 + h1 * xl[j], m2 + h2 * xl[j]
            x[i, j], x[i, n + j] = a, b
            w[i, j] = h1 * wl[j] * math.exp(-0.5 * a * a) * norm
            w[i, n + j] = h2 * wl[j] * math.exp(-0.5 * b * b) * norm
    return x, w


@lru_cache(maxsize=16)
def _legendre(n: int) -> tuple[Array, Array]:
    return np.polynomial.legendre.leggauss(n)


@lru_cache(maxsize=16)
def _tensor_rule(D: int, n: int) -> tuple[Array, Array]:
    """Tensor product of the split rule at 0 (2n nodes per axis) in ``D`` dimensions: (N, D), (N,)."""
    x, w = _split_rule(np.zeros(()), n)
    keep = w > 1e-300
    x, w = x[keep], w[keep]
    grids = np.meshgrid(*([x] * D), indexing="ij")
    wg = np.meshgrid(*([w] * D), indexing="ij")
    return np.stack([g.ravel() for g in grids], axis=-1), np.prod(np.stack([g.ravel() for g in wg], -1), -1)


def _cond_mean(act, mu: Array, sigma: Array) -> Array:
    """``E[s(mu + sigma w)]``, ``w ~ N(0, 1)``: closed form, or the split rule at ``w = -mu / sigma``
    (2 x ``N_INNER`` nodes)."""
    if act.gauss_mean is not None:
        return act.gauss_mean(mu, sigma)
    with np.errstate(divide="ignore", invalid="ignore"):
        c = np.where(sigma > 0, -mu / np.where(sigma > 0, sigma, 1.0), 0.0)
    x, w = _smooth_rule(c, N_INNER, sigma) if act.smooth else _split_rule(c, N_INNER)
    return np.sum(act.f(mu[..., None] + sigma[..., None] * x) * w, axis=-1)


def _outer_rule(act, scale: Array, shift: float, n: int | None = None) -> tuple[Array, Array]:
    """Nodes ``x`` and weights (T, 2n; ``n = N_OUTER`` by default, more for a steep smooth ``s``) for
    ``E[phi(x)]``, ``x ~ N(0, 1)``, of an integrand ``s(scale x + shift) * smooth``: the split rule at
    ``x = -shift / scale`` (the kink of relu; the centre of tanh, :func:`_smooth_rule`)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        kink = np.where(scale > 0, -shift / np.where(scale > 0, scale, 1.0), 0.0)
    n = N_OUTER if n is None else n
    return _smooth_rule(kink, n, scale) if act.smooth else _split_rule(kink, n)


def _two_kink_rule(k1: Array, k2: Array, n: int) -> tuple[Array, Array]:
    """Gauss-Legendre on the three panels between -8.5, the kinks ``k1``, ``k2`` (T,) and 8.5 (n nodes
    each), weights times the standard-normal density: (T, 3n)."""
    xl, wl = _legendre(n)
    H = _HALF_WIDTH
    lo, hi = np.clip(np.minimum(k1, k2), -H, H)[:, None], np.clip(np.maximum(k1, k2), -H, H)[:, None]
    edges = [np.full_like(lo, -H), lo, hi, np.full_like(lo, H)]
    xs, ws = [], []
    for a, b in zip(edges[:-1], edges[1:]):
        h = (b - a) / 2
        xs.append((a + b) / 2 + h * xl)
        ws.append(h * wl)
    x = np.concatenate(xs, axis=1)
    return x, np.concatenate(ws, axis=1) * np.exp(-0.5 * x * x) / math.sqrt(2 * math.pi)


def _pair_term(model, Q: Array, a: int, b: int) -> Array:
    """``P_ab = E[s(r_a + b_a) s(r_b + b_b)]`` (T,): ``r_a = sa x``, ``r_b | r_a ~ N(beta x, sig^2)``."""
    act, bias = model.activation, model.bias
    qa, qb, qab = Q[:, a, a], Q[:, b, b], Q[:, a, b]
    if bias[a] == 0.0 and bias[b] == 0.0 and act.pair_moment is not None:
        return act.pair_moment(qa, qb, qab)
    sa = np.sqrt(np.clip(qa, 0.0, None))
    with np.errstate(divide="ignore", invalid="ignore"):
        beta = np.where(sa > 0, qab / np.where(sa > 0, sa, 1.0), 0.0)
    if a == b or act.smooth:
        x, w = _outer_rule(act, sa, bias[a])
    else:  # the inner mean tends to s(beta x + b_b) as sig -> 0: split at its kink too
        with np.errstate(divide="ignore", invalid="ignore"):
            k1 = np.where(sa > 0, -bias[a] / np.where(sa > 0, sa, 1.0), 0.0)
            k2 = np.where(beta != 0, -bias[b] / np.where(beta != 0, beta, 1.0), 0.0)
        x, w = _two_kink_rule(k1, k2, N_OUTER)
    outer = act.f(sa[:, None] * x + bias[a])
    if a == b:
        return np.sum(w * outer * outer, axis=1)
    sig = np.sqrt(np.clip(qb - beta**2, 0.0, None))
    inner = _cond_mean(act, beta[:, None] * x + bias[b], np.broadcast_to(sig[:, None], x.shape))
    return np.sum(w * outer * inner, axis=1)


def _link_nodes(link, D: int, n: int, seed: int, power: int = 1) -> tuple[Array, Array]:
    """Standard-normal nodes (N, D) and weights for integrating ``link^power`` in ``D`` dimensions:
    Gauss-Hermite with ``power * degree // 2 + 1`` nodes per axis (exact) for a polynomial link, else the
    split rule (2n per axis); QMC beyond 4 dimensions."""
    if D == 0:
        return np.zeros((1, 0)), np.ones(1)
    if D > GH_MAX_DIM:
        return _qmc_nodes(D, seed)
    deg = getattr(link, "degree", math.inf)
    if math.isfinite(deg):
        return _hermite_tensor(D, max(1, int(power * deg) // 2 + 1) + N_POLY_EXTRA)
    return _tensor_rule(D, n)


@lru_cache(maxsize=16)
def _hermite_tensor(D: int, n: int) -> tuple[Array, Array]:
    """Tensor Gauss-Hermite (``n`` nodes per axis, weights normalised) in ``D`` dimensions: (N, D), (N,)."""
    x, w = gauss_hermite_e(n)
    w = w / w.sum()
    grids = np.meshgrid(*([x] * D), indexing="ij")
    wg = np.meshgrid(*([w] * D), indexing="ij")
    nodes, weights = np.stack([g.ravel() for g in grids], -1), np.prod(np.stack([g.ravel() for g in wg], -1), -1)
    nodes.setflags(write=False)  # (cached: shared by every caller)
    weights.setflags(write=False)
    return nodes, weights


def _qmc_nodes(D: int, seed: int) -> tuple[Array, Array]:
    from scipy.stats import norm, qmc

    u = qmc.Sobol(D, scramble=True, seed=seed).random(QMC_POINTS)
    z = norm.ppf(np.clip(u, 1e-12, 1 - 1e-12))
    return z, np.full(QMC_POINTS, 1.0 / QMC_POINTS)


def _cross_term(model, link, Q: Array, M: Array, S: Array, a: int, seed: int, outer: int | None = None) -> Array:
    """``E[s(r_a + b_a) h(r*)]`` (T,) for a link ``h``: ``r* = L z``, ``z = R (x, y)`` with ``R``'s first
    column along ``m = L^T S^-1 M_a`` (all of r_a's dependence on r*), so ``r_a | r* ~ N(|m| x, q - |m|^2)``."""
    act, ba = model.activation, model.bias[a]
    T, ks = M.shape[0], M.shape[2]
    identity = np.array_equal(S, np.eye(ks))
    L = np.eye(ks) if identity else sqrtm_psd(S)
    m = M[:, a, :] if identity else (M[:, a, :] @ np.linalg.pinv(S)) @ L  # (T, k*)
    nu = np.linalg.norm(m, axis=1)
    sig = np.sqrt(np.clip(Q[:, a, a] - nu**2, 0.0, None))
    e1 = np.where(nu[:, None] > 0, m / np.where(nu > 0, nu, 1.0)[:, None], np.eye(ks)[0])
    R = np.linalg.qr(np.concatenate([e1[:, :, None], np.broadcast_to(np.eye(ks), (T, ks, ks))], axis=2))[0][:, :, :ks]
    R = R * np.sign(np.einsum("ti,ti->t", R[:, :, 0], e1))[:, None, None]  # first column = +e1
    with np.errstate(divide="ignore", invalid="ignore"):  # split at s's kink (or centre) and at the link's 0
        kink = np.where(nu > 0, -ba / np.where(nu > 0, nu, 1.0), 0.0)
    no = N_OUTER if outer is None else outer
    x, wx = _two_kink_rule(kink, np.zeros(T), no) if ba != 0.0 else _outer_rule(act, nu, ba, no)  # (T, N)
    y, wy = _qmc_nodes(ks - 1, seed) if ks > GH_MAX_DIM else _link_nodes(link, ks - 1, N_TRANSVERSE.get(ks, 0), seed)
    h = np.empty(x.shape)
    step = max(1, int(2e6 // (x.shape[1] * y.shape[0] * ks)))  # bounded temporaries
    for t0 in range(0, T, step):
        c = slice(t0, t0 + step)
        z = x[c, :, None, None] * R[c, None, None, :, 0] + np.einsum("tij,nj->tni", R[c, :, 1:], y)[:, None]
        h[c] = np.asarray(link(z if identity else z @ L.T), dtype=np.float64) @ wy  # E_y h on the x nodes
    inner = _cond_mean(act, nu[:, None] * x + ba, np.broadcast_to(sig[:, None], x.shape))
    return np.sum(wx * h * inner, axis=1)


def _teacher_moment(link, S: Array, seed: int) -> float:
    """``E[g(r*)^2]``, ``r* ~ N(0, S)``."""
    ks = S.shape[0]
    z, w = _link_nodes(link, ks, N_TEACHER.get(ks, 0), seed, power=2)
    g = np.asarray(link(z @ sqrtm_psd(S).T), dtype=np.float64)
    return float(w @ (g * g))


def _softplus_term(model, Q: Array, seed: int) -> Array:
    """``E[softplus(f(r))]``, ``r ~ N(0, Q)`` (T,)."""
    k = model.k
    z, w = _tensor_rule(k, N_SOFTPLUS[k]) if k <= GH_MAX_DIM else _qmc_nodes(k, seed)
    A = sqrtm_psd(Q)  # (T, k, k)
    return np.array([w @ softplus(model.predictor(z @ A[t].T)) for t in range(Q.shape[0])])


_CACHE: OrderedDict = OrderedDict()
_CACHE_SIZE = 32


def two_layer_loss(model, Q: Array, M: Array, S: Array, seed: int = 12345) -> Array:
    """Population loss of a :class:`~.presets.TwoLayer` model (the rule of the module docstring).

    ``Q`` (T, k, k), ``M`` (T, k, k*), ``S`` (k*, k*) -> (T,). ``seed``: the quasi-Monte Carlo
    scrambling where one is used (k* > 4, or k > 4 for the logistic loss). The last ``_CACHE_SIZE``
    results are kept (a solve asks for the same overlaps several times: per replica, then per level).
    """
    Q, M, S = (np.ascontiguousarray(v, dtype=np.float64) for v in (Q, M, S))
    try:
        key = (model, seed, hashlib.sha1(b"".join(v.tobytes() + str(v.shape).encode() for v in (Q, M, S))).digest())
        hash(key)
    except TypeError:  # an unhashable user teacher
        return _two_layer_loss(model, Q, M, S, seed)
    if key in _CACHE:
        _CACHE.move_to_end(key)
        return _CACHE[key].copy()
    out = _two_layer_loss(model, Q, M, S, seed)
    _CACHE[key] = out.copy()
    if len(_CACHE) > _CACHE_SIZE:
        _CACHE.popitem(last=False)
    return out


def _two_layer_loss(model, Q: Array, M: Array, S: Array, seed: int) -> Array:
    """:func:`two_layer_loss` without the cache."""
    a = np.asarray(model.second_layer)
    k = model.k
    if model.loss_rule.classifier:
        noise = model.noise
        g = model.target
        p = (lambda rs: ndtr(g(rs) / noise)) if noise > 0 else (lambda rs: (g(rs) >= 0.0).astype(np.float64))
        # p = Phi(g / noise) is steeper than the activation: twice the outer nodes (1.7e-8 -> 1.4e-10)
        cross = sum(a[i] * _cross_term(model, p, Q, M, S, i, seed, 2 * N_OUTER) for i in range(k))
        return _softplus_term(model, Q, seed) - cross
    ff = sum(a[i] * a[j] * (1.0 if i == j else 2.0) * _pair_term(model, Q, i, j)
             for i in range(k) for j in range(i, k))
    pm = _committee_pair_moment(model)
    if pm is not None:  # the committee's teacher mean_b s(z_b) with s's pair moment: closed forms
        qd, sd = np.diagonal(Q, axis1=1, axis2=2), np.diagonal(S)
        cross = pm(qd[:, :, None], sd[None, None, :], M).mean(axis=2)  # (T, k)
        fg = sum(a[i] * (cross[:, i] if model.bias[i] == 0.0 else _cross_term(model, model.teacher, Q, M, S, i, seed))
                 for i in range(k))
        gg = float(pm(sd[:, None], sd[None, :], S).mean())
    else:
        fg = sum(a[i] * _cross_term(model, model.teacher, Q, M, S, i, seed) for i in range(k))
        gg = _teacher_moment(model.teacher, S, seed)
    return 0.5 * (ff - 2.0 * fg + gg) + 0.5 * model.noise**2


def _committee_pair_moment(model):
    """The pair moment of ``s`` when the teacher is ``mean_b s(z_b)`` with the student's own ``s`` (else None)."""
    t = model.teacher
    if getattr(t, "activation", None) is model.activation and type(t).__name__ == "ActivationMean":
        return model.activation.pair_moment
    return None


def _rule_nodes(link, D: int, n: int, power: int = 1) -> float:
    """Number of nodes :func:`_link_nodes` builds (no allocation)."""
    if D == 0:
        return 1.0
    if D > GH_MAX_DIM:
        return float(QMC_POINTS)
    deg = getattr(link, "degree", math.inf)
    per_axis = max(1, int(power * deg) // 2 + 1) + N_POLY_EXTRA if math.isfinite(deg) else 2 * n
    return float(per_axis) ** D


def quadrature_bytes(model: Model) -> tuple[float, str]:
    """Peak bytes of a two_layer model's population-loss quadrature (the node grids and the largest
    temporaries of :func:`_teacher_moment`, :func:`_cross_term`, :func:`_softplus_term`) and the
    problem key that drives it ('' for other models: their rules are small and fixed)."""
    if not hasattr(model, "loss_name") or not hasattr(model, "second_layer"):
        return 0.0, ""
    k, ks = int(model.k), int(model.kstar)
    logistic = model.loss_rule.classifier
    link = None if logistic else model.teacher
    outer = 3 * 2 * N_OUTER * (2 if logistic else 1)  # x nodes per time (three panels at most)
    ny = _rule_nodes(link, ks - 1, N_TRANSVERSE.get(ks, 0))
    cross = 8.0 * (3 * max(2e6, outer * ny * ks) + 6 * ny * max(ks - 1, 1) + 3 * ks * (ks + 1) * 64)
    moment = 0.0 if logistic else 8.0 * 6 * _rule_nodes(link, ks, N_TEACHER.get(ks, 0), 2) * ks
    soft = 8.0 * 6 * (QMC_POINTS if k > GH_MAX_DIM else (2 * N_SOFTPLUS.get(k, 1)) ** k) * k if logistic else 0.0
    peak = max(cross, moment, soft)
    poly = math.isfinite(getattr(link, "degree", math.inf)) and ks <= GH_MAX_DIM
    key = "problem.student_width" if peak == soft else ("problem.teacher" if poly else "problem.teacher_width")
    return peak, key


def check_quadrature(model: Model, max_memory_gb: float, budget_key: str) -> float:
    """Refuse (MemoryLimitExceeded, one line naming the problem key) a model whose population-loss
    quadrature alone needs more than ``max_memory_gb``; returns its peak bytes."""
    from ..errors import MemoryLimitExceeded

    peak, key = quadrature_bytes(model)
    if peak > float(max_memory_gb) * 2**30:
        value = {"problem.teacher": lambda: getattr(model.teacher, "text", model.teacher),
                 "problem.teacher_width": lambda: model.kstar, "problem.student_width": lambda: model.k}[key]()
        raise MemoryLimitExceeded(
            f"{key} = {value!r}: the population-loss quadrature needs ~{peak / 2**30:.3g} GiB, past {budget_key} = "
            f"{max_memory_gb:g} (allowed: a teacher of lower degree or width, teacher_width <= {GH_MAX_DIM} for a "
            f"Gauss-Hermite grid; or raise {budget_key})")
    return peak
