"""Problem specification: teacher, student, loss, ridge penalty, initialisation.

Conventions (internal, see docs/conventions.md and ../shared/THEORY.md section 1):

* data ``x_i ~ N(0, I_d / d)``, ``i = 1..n``, aspect ratio ``delta = n / d``;
* teacher ``theta* in R^{d x k*}`` with rows i.i.d. ``N(0, I_{k*})``, so ``r*_i = theta*^T x_i`` is O(1);
* student ``theta in R^{d x k}``, pre-activations ``r_i = theta^T x_i in R^k``;
* empirical risk ``L(theta) = sum_i l(r_i, y_i) + sum_j ridge |theta_j|^2 / 2`` (a *sum* over samples);
* ``F(r, y) = grad_r l(r, y)`` (shape ``(..., k)``), ``H(r, y) = d F / d r`` (shape ``(..., k, k)``);
* initialisation ``theta_0 = init_overlap * theta* + init_scale * Z``, ``Z`` with i.i.d. N(0, 1) entries.

Every population quantity depends on the overlaps ``Q = theta^T theta / d`` (k x k),
``M = theta^T theta* / d`` (k x k*) and ``S* = theta*^T theta* / d`` (k* x k*, = I in the limit).

All model callables are vectorised over leading axes and written so that numba can compile the
preset ones (used by the finite-d simulators' hot loops).
"""

from __future__ import annotations

import copyreg
import math
from dataclasses import dataclass, field, replace
from typing import Callable

import numpy as np
from numpy.typing import NDArray
from scipy.special import erf

Array = NDArray[np.float64]

MODELS = ("linear", "logistic", "phase_retrieval", "committee")
ACTIVATIONS = ("erf", "relu", "tanh", "quadratic")

_SQRT2 = math.sqrt(2.0)
_SQRT2_PI = math.sqrt(2.0 / math.pi)


# --------------------------------------------------------------------------------------------
# Activations s, s', s'' (vectorised numpy)
# --------------------------------------------------------------------------------------------
def _act(name: str) -> tuple[Callable[[Array], Array], Callable[[Array], Array], Callable[[Array], Array]]:
    if name == "erf":
        return (
            lambda x: erf(x / _SQRT2),
            lambda x: _SQRT2_PI * np.exp(-0.5 * x * x),
            lambda x: -x * _SQRT2_PI * np.exp(-0.5 * x * x),
        )
    if name == "relu":
        return (
            lambda x: np.maximum(x, 0.0),
            lambda x: (x > 0).astype(np.float64),
            lambda x: np.zeros_like(x, dtype=np.float64),
        )
    if name == "tanh":
        return (
            np.tanh,
            lambda x: 1.0 - np.tanh(x) ** 2,
            lambda x: -2.0 * np.tanh(x) * (1.0 - np.tanh(x) ** 2),
        )
    if name == "quadratic":
        return (
            lambda x: x * x,
            lambda x: 2.0 * x,
            lambda x: 2.0 * np.ones_like(x, dtype=np.float64),
        )
    raise ValueError(f"activation={name!r} is not one of {ACTIVATIONS}")


def _sigmoid(z: Array) -> Array:
    return 0.5 * (1.0 + np.tanh(0.5 * z))


def _softplus(z: Array) -> Array:
    return np.logaddexp(0.0, z)


# --------------------------------------------------------------------------------------------
# The model: link (teacher), predictor, loss and its derivatives
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Model:
    """A multi-index teacher-student model.

    Attributes
    ----------
    name: preset name or ``"custom"``.
    k, kstar: student and teacher widths.
    label: ``label(rstar, eps) -> y``; ``rstar`` shape ``(..., kstar)``, ``eps`` shape ``(...)``
        (standard normal label noise, already unscaled), ``y`` shape ``(...)``.
    loss: ``loss(r, y) -> (...)`` with ``r`` shape ``(..., k)``.
    grad: ``F(r, y) = d loss / d r``, shape ``(..., k)``.
    hess: ``H(r, y) = d F / d r``, shape ``(..., k, k)``.
    additive_noise: labels are ``g(r*) + noise * eps`` and the loss is ``(f(r) - y)^2 / 2``; then the
        population loss integrates ``eps`` analytically (adds ``noise^2 / 2``).
    predictor, target: ``f(r)`` and the noiseless ``g(r*)`` for square-loss models (else None).
    """

    name: str
    k: int
    kstar: int
    label: Callable[[Array, Array], Array]
    loss: Callable[[Array, Array], Array]
    grad: Callable[[Array, Array], Array]
    hess: Callable[[Array, Array], Array]
    noise: float = 0.0
    additive_noise: bool = False
    predictor: Callable[[Array], Array] | None = None
    target: Callable[[Array], Array] | None = None
    linear_square: bool = False  # square loss with a linear student: F affine in r
    meta: dict = field(default_factory=dict)
    pop_loss: Callable[[Array, Array, Array], Array] | None = None  # (Q, M, S*) -> (T,) override
    smooth: bool = True  # False: H has Dirac masses (a kink in F, e.g. relu); the solver then uses
    #                      Gaussian integration by parts for its responses
    spec: tuple | None = field(default=None, compare=False, repr=False)  # (preset, kwargs): picklable

    def __reduce__(self):
        """Presets pickle as their recipe (their callables are closures): worker processes rebuild them.

        Plain fields (flags such as ``linear_square``) travel as they are; a preset whose callables
        were replaced, and a custom model, pickle like any dataclass (which fails for closures).
        """
        if self.spec is not None:
            fname, kw = self.spec
            fresh = _PRESETS[fname](**kw)
            if all(_qualname(getattr(self, f)) == _qualname(getattr(fresh, f)) for f in _CALLABLE_FIELDS):
                return (_rebuild_model, (fname, kw, {f: getattr(self, f) for f in _PLAIN_FIELDS}))
        return (copyreg.__newobj__, (type(self),), dict(self.__dict__))

    def labels(self, rstar: Array, eps: Array) -> Array:
        """Labels ``y = phi(r*, eps)``; ``rstar`` (..., kstar), ``eps`` (...) standard normal."""
        return self.label(rstar, eps)


_CALLABLE_FIELDS = ("label", "loss", "grad", "hess", "predictor", "target", "pop_loss")
_PLAIN_FIELDS = ("name", "k", "kstar", "noise", "additive_noise", "linear_square", "meta", "smooth")


def _qualname(fn) -> str | None:
    return None if fn is None else getattr(fn, "__qualname__", repr(fn))


def _rebuild_model(fname: str, kw: dict, plain: dict) -> "Model":
    return replace(_PRESETS[fname](**kw), **plain)


def _preset(model: "Model", fname: str, **kw) -> "Model":
    return replace(model, spec=(fname, kw))


def _square_model(name: str, k: int, kstar: int, noise: float, f, fp, fpp, g, linear: bool = False, meta=None,
                  smooth: bool = True, pop_loss=None) -> Model:
    """Square loss (f(r) - y)^2 / 2 with f(r) = sum_a f_a(r_a) given componentwise (fp, fpp)."""

    def label(rstar: Array, eps: Array) -> Array:
        return g(rstar) + noise * eps

    def loss(r: Array, y: Array) -> Array:
        return 0.5 * (f(r) - y) ** 2

    def grad(r: Array, y: Array) -> Array:
        return (f(r) - y)[..., None] * fp(r)

    def hess(r: Array, y: Array) -> Array:
        d1 = fp(r)
        h = d1[..., :, None] * d1[..., None, :]
        diag = (f(r) - y)[..., None] * fpp(r)
        idx = np.arange(r.shape[-1])
        h[..., idx, idx] += diag
        return h

    return Model(name=name, k=k, kstar=kstar, label=label, loss=loss, grad=grad, hess=hess, noise=noise,
                 additive_noise=True, predictor=f, target=g, linear_square=linear, meta=meta or {}, smooth=smooth,
                 pop_loss=pop_loss)


def linear(noise: float = 0.0) -> Model:
    """``y = r* + noise * eps``, ``f(r) = r``, loss ``(r - y)^2 / 2`` (k = k* = 1)."""
    return _preset(_square_model(
        "linear", 1, 1, noise,
        f=lambda r: r[..., 0], fp=lambda r: np.ones_like(r), fpp=lambda r: np.zeros_like(r),
        g=lambda rs: rs[..., 0], linear=True,
    ), "linear", noise=noise)


def phase_retrieval(noise: float = 0.0) -> Model:
    """``y = (r*)^2 + noise * eps``, ``f(r) = r^2``, loss ``(r^2 - y)^2 / 2`` (k = k* = 1)."""
    return _preset(_square_model(
        "phase_retrieval", 1, 1, noise,
        f=lambda r: r[..., 0] ** 2, fp=lambda r: 2.0 * r, fpp=lambda r: 2.0 * np.ones_like(r),
        g=lambda rs: rs[..., 0] ** 2, pop_loss=_committee_pop_loss("quadratic", noise),  # Isserlis
    ), "phase_retrieval", noise=noise)


def _pair_moment(activation: str, q1: Array, q2: Array, c: Array) -> Array | None:
    """``E[s(u) s(v)]`` for centred Gaussian ``(u, v)`` with variances ``q1, q2`` and covariance ``c``,
    in closed form where one exists (else None): erf(x/sqrt 2) (Saad & Solla 1995), relu (the
    arc-cosine kernel of Cho & Saul 2009), x^2 (Isserlis)."""
    if activation == "erf":
        return (2.0 / math.pi) * np.arcsin(np.clip(c / np.sqrt((1.0 + q1) * (1.0 + q2)), -1.0, 1.0))
    if activation == "relu":
        n = np.sqrt(np.clip(q1 * q2, 0.0, None))
        with np.errstate(divide="ignore", invalid="ignore"):
            th = np.arccos(np.clip(np.where(n > 0, c / np.where(n > 0, n, 1.0), 1.0), -1.0, 1.0))
        return n / (2 * math.pi) * (np.sin(th) + (math.pi - th) * np.cos(th))
    if activation == "quadratic":
        return q1 * q2 + 2.0 * c * c
    return None


def _committee_pop_loss(activation: str, noise: float):
    """Closed-form population loss of the soft committee, or None (then quadrature)."""
    if _pair_moment(activation, np.ones(1), np.ones(1), np.zeros(1)) is None:
        return None

    def pop_loss(Q: Array, M: Array, S: Array) -> Array:
        # E[(mean_a s(r_a) - mean_b s(r*_b))^2] / 2 from the pair moments of (r, r*)
        qd = np.diagonal(Q, axis1=1, axis2=2)  # (T, k)
        sd = np.diagonal(S)  # (k*,)
        ff = _pair_moment(activation, qd[:, :, None], qd[:, None, :], Q).mean(axis=(1, 2))
        fg = _pair_moment(activation, qd[:, :, None], sd[None, None, :], M).mean(axis=(1, 2))
        gg = _pair_moment(activation, sd[:, None], sd[None, :], S).mean()
        return 0.5 * (ff - 2.0 * fg + gg) + 0.5 * noise**2

    return pop_loss


def committee(k: int = 2, kstar: int = 2, activation: str = "erf", noise: float = 0.0) -> Model:
    """Soft committee: ``y = mean_b s(r*_b) + noise * eps``, ``f(r) = mean_a s(r_a)``, square loss.

    The population loss is in closed form for erf, relu and quadratic activations (quadrature else).
    """
    s, sp, spp = _act(activation)
    return _preset(_square_model(
        "committee", k, kstar, noise,
        f=lambda r: s(r).mean(axis=-1), fp=lambda r: sp(r) / k, fpp=lambda r: spp(r) / k,
        g=lambda rs: s(rs).mean(axis=-1), meta={"activation": activation}, smooth=activation != "relu",
        pop_loss=_committee_pop_loss(activation, noise),
    ), "committee", k=k, kstar=kstar, activation=activation, noise=noise)


def logistic(noise: float = 0.0) -> Model:
    """``y = sign(r* + noise * eps)`` in {-1, +1}, loss ``log(1 + exp(-y r))`` (k = k* = 1)."""

    def label(rstar: Array, eps: Array) -> Array:
        z = rstar[..., 0] + noise * eps
        return np.where(z >= 0.0, 1.0, -1.0)

    def loss(r: Array, y: Array) -> Array:
        return _softplus(-y * r[..., 0])

    def grad(r: Array, y: Array) -> Array:
        return (-y * _sigmoid(-y * r[..., 0]))[..., None]

    def hess(r: Array, y: Array) -> Array:
        sg = _sigmoid(y * r[..., 0])
        return (sg * (1.0 - sg))[..., None, None]

    def pop_loss(Q: Array, M: Array, S: Array) -> Array:
        # Condition on r*: r = a r* + b xi with a = M / S*, b^2 = Q - M^2 / S*. The label is a step in
        # r* (or in r* + noise eps), so integrate r* on either side of the jump with Gauss-Legendre and
        # xi with Gauss-Hermite: no quadrature error from the discontinuity.
        # 2 x 100 Legendre x 48 Hermite nodes: within 1.3e-11 of 2 x 200 x 80 for |a| <= 30, b in [0.1, 10]
        s = math.sqrt(float(S[0, 0]))
        xg, wg = np.polynomial.hermite_e.hermegauss(48)
        wg = wg / wg.sum()
        xl, wl = np.polynomial.legendre.leggauss(100)
        u = np.concatenate([-4 + 4 * xl, 4 + 4 * xl])  # r*/s on [-8, 0] and [0, 8]
        wu = np.concatenate([4 * wl, 4 * wl]) * np.exp(-0.5 * u * u) / math.sqrt(2 * math.pi)
        if noise > 0:
            from scipy.special import ndtr

            p_plus = ndtr(s * u / noise)
        else:
            p_plus = (u >= 0).astype(np.float64)
        a = M[:, 0, 0] / float(S[0, 0])
        b = np.sqrt(np.clip(Q[:, 0, 0] - M[:, 0, 0] ** 2 / float(S[0, 0]), 0.0, None))
        out = np.empty(len(a))
        for i in range(0, len(a), 32):  # chunks of 32 times: bounded temporaries (32 x 200 x 48)
            c = slice(i, i + 32)
            r = a[c, None, None] * (s * u)[None, :, None] + b[c, None, None] * xg[None, None, :]
            lp = _softplus(-r) @ wg  # (t, U): E_xi loss for y = +1
            # y = -1: softplus(r) = softplus(-r) + r, and E_xi r = a s u (the weights are symmetric)
            lm = lp + a[c, None] * (s * u)[None, :]
            out[c] = (p_plus * lp + (1 - p_plus) * lm) @ wu
        return out

    return Model(name="logistic", k=1, kstar=1, label=label, loss=loss, grad=grad, hess=hess, noise=noise,
                 pop_loss=pop_loss, spec=("logistic", {"noise": noise}))


def _fd_grad(loss: Callable[[Array, Array], Array], h: float = 1e-5) -> Callable[[Array, Array], Array]:
    def grad(r: Array, y: Array) -> Array:
        r = np.asarray(r, dtype=np.float64)
        out = np.empty_like(r)
        for a in range(r.shape[-1]):
            e = np.zeros(r.shape[-1])
            e[a] = h
            out[..., a] = (loss(r + e, y) - loss(r - e, y)) / (2 * h)
        return out

    return grad


def _fd_hess(grad: Callable[[Array, Array], Array], h: float = 1e-5) -> Callable[[Array, Array], Array]:
    def hess(r: Array, y: Array) -> Array:
        r = np.asarray(r, dtype=np.float64)
        k = r.shape[-1]
        out = np.empty(r.shape + (k,))
        for b in range(k):
            e = np.zeros(k)
            e[b] = h
            out[..., :, b] = (grad(r + e, y) - grad(r - e, y)) / (2 * h)
        return 0.5 * (out + np.swapaxes(out, -1, -2))

    return hess


def custom(
    loss: Callable[[Array, Array], Array],
    label: Callable[[Array, Array], Array],
    k: int = 1,
    kstar: int = 1,
    grad: Callable[[Array, Array], Array] | None = None,
    hess: Callable[[Array, Array], Array] | None = None,
    noise: float = 0.0,
    name: str = "custom",
    smooth: bool = True,
) -> Model:
    """A user-defined model.

    ``loss(r, y)`` with ``r`` of shape ``(..., k)`` and ``y`` of shape ``(...)``; ``label(rstar, eps)``
    with ``rstar`` of shape ``(..., kstar)`` and standard-normal ``eps`` of shape ``(...)`` (scale the
    noise inside ``label`` yourself; ``noise`` is only recorded). A missing ``grad`` or ``hess`` is
    derived by central finite differences (step 1e-5, relative accuracy ~1e-9 for smooth losses).
    ``smooth=False`` declares a kink in ``grad`` (a Dirac mass in ``hess``): the solver then estimates
    its responses by Gaussian integration by parts instead of pathwise tangents.
    """
    g = grad if grad is not None else _fd_grad(loss)
    h = hess if hess is not None else _fd_hess(g)
    return Model(name=name, k=k, kstar=kstar, label=label, loss=loss, grad=g, hess=h, noise=noise, smooth=smooth)


# --------------------------------------------------------------------------------------------
# The whole problem
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Problem:
    """Model + data aspect ratio + penalty + initialisation (internal conventions, see module doc).

    ``delta = n / d``; ``ridge`` is lambda in ``G(theta_j) = lambda |theta_j|^2 / 2``;
    ``theta_0 = init_overlap * theta* + init_scale * Z``.
    """

    model: Model
    delta: float
    ridge: float = 0.0
    init_scale: float = 0.5
    init_overlap: float = 0.0

    def __post_init__(self):
        for key, val, ok, allowed in (
            ("delta", self.delta, self.delta > 0, "> 0"),
            ("ridge", self.ridge, self.ridge >= 0, ">= 0"),
            ("init_scale", self.init_scale, self.init_scale >= 0, ">= 0"),
        ):
            if not (isinstance(val, (int, float)) and math.isfinite(val) and ok):
                raise ValueError(f"Problem.{key}={val!r} is not allowed: must be a finite number {allowed}")

    @property
    def k(self) -> int:
        return self.model.k

    @property
    def kstar(self) -> int:
        return self.model.kstar

    def init_moments(self, Sstar: Array | None = None) -> tuple[Array, Array]:
        """``(E[theta_0 theta_0^T], E[theta_0 theta*^T])`` for one coordinate, given ``S* = E[theta* theta*^T]``."""
        k, ks = self.k, self.kstar
        S = np.eye(ks) if Sstar is None else Sstar
        P = np.zeros((k, ks))
        if self.init_overlap != 0.0:
            P[:, :] = 0.0
            P[np.arange(min(k, ks)), np.arange(min(k, ks))] = 1.0
        C0 = self.init_overlap**2 * P @ S @ P.T + self.init_scale**2 * np.eye(k)
        M0 = self.init_overlap * P @ S
        return C0, M0

    def with_(self, **kw) -> "Problem":
        return replace(self, **kw)

    def attrs(self) -> dict:
        """The problem as flat netCDF-safe attributes (model, delta, ridge, noise, initialisation)."""
        return dict(
            model=self.model.name,
            delta=float(self.delta),
            ridge=float(self.ridge),
            noise=float(self.model.noise),
            init_scale=float(self.init_scale),
            init_overlap=float(self.init_overlap),
        )


_PRESETS = {"linear": linear, "logistic": logistic, "phase_retrieval": phase_retrieval, "committee": committee}


def make_model(name: str, *, k: int = 1, kstar: int = 1, activation: str = "erf", noise: float = 0.0) -> Model:
    """Build a preset model by name (``linear | logistic | phase_retrieval | committee``)."""
    if name == "linear":
        return linear(noise)
    if name == "logistic":
        return logistic(noise)
    if name == "phase_retrieval":
        return phase_retrieval(noise)
    if name == "committee":
        return committee(k, kstar, activation, noise)
    raise ValueError(f"model={name!r} is not one of {MODELS}")


# --------------------------------------------------------------------------------------------
# Population (test) loss from the overlaps
# --------------------------------------------------------------------------------------------
def _gh_nodes(dim: int, max_nodes: int = 200_000) -> tuple[Array, Array]:
    """Tensor Gauss-Hermite nodes/weights for a standard normal in ``dim`` dimensions."""
    n1 = max(4, min(60, int(max_nodes ** (1.0 / dim))))
    x, w = np.polynomial.hermite_e.hermegauss(n1)
    w = w / w.sum()
    grids = np.meshgrid(*([x] * dim), indexing="ij")
    nodes = np.stack([g.ravel() for g in grids], axis=-1)
    wg = np.meshgrid(*([w] * dim), indexing="ij")
    weights = np.prod(np.stack([g.ravel() for g in wg], axis=-1), axis=-1)
    keep = weights > 1e-300
    return nodes[keep], weights[keep]


def _sqrtm_psd(S: Array) -> Array:
    lam, V = np.linalg.eigh(0.5 * (S + np.swapaxes(S, -1, -2)))
    return V * np.sqrt(np.clip(lam, 0.0, None))[..., None, :]


def population_expectation(model: Model, Q: Array, M: Array, Sstar: Array | None, fn, *, noise_dim: bool,
                           method: str = "auto") -> Array:
    """``E[fn(r, r*, eps)]`` for ``(r, r*) ~ N(0, [[Q, M], [M^T, S*]])``, eps ~ N(0,1) independent.

    ``Q`` (T, k, k), ``M`` (T, k, k*). Tensor Gauss-Hermite quadrature for k + k* (+1) <= 6,
    scrambled-Sobol quasi-Monte Carlo (2^17 points) beyond. Returns shape (T,).
    """
    Q = np.asarray(Q, dtype=np.float64)
    M = np.asarray(M, dtype=np.float64)
    T, k = Q.shape[0], Q.shape[1]
    ks = M.shape[2]
    S = np.eye(ks) if Sstar is None else np.asarray(Sstar, dtype=np.float64)
    Sigma = np.empty((T, k + ks, k + ks))
    Sigma[:, :k, :k] = Q
    Sigma[:, :k, k:] = M
    Sigma[:, k:, :k] = np.swapaxes(M, 1, 2)
    Sigma[:, k:, k:] = S
    A = _sqrtm_psd(Sigma)  # (T, D, D)
    D = k + ks + (1 if noise_dim else 0)
    if D <= 6 and method == "auto":
        z, w = _gh_nodes(D)
    else:
        from scipy.stats import qmc, norm

        u = qmc.Sobol(D, scramble=True, seed=12345).random(2**17)
        z = norm.ppf(np.clip(u, 1e-12, 1 - 1e-12))
        w = np.full(z.shape[0], 1.0 / z.shape[0])
    out = np.empty(T)
    zg = z[:, : k + ks]
    eps = z[:, -1] if noise_dim else np.zeros(z.shape[0])
    for t in range(T):
        g = zg @ A[t].T
        out[t] = np.dot(w, fn(g[:, :k], g[:, k:], eps))
    return out


def population_loss(model: Model, Q: Array, M: Array, Sstar: Array | None = None) -> Array:
    """Population (test) loss ``E[l(r, y)]`` on fresh data, as a function of the overlaps.

    ``Q`` (T, k, k) or (k, k); ``M`` (T, k, k*) or (k, k*); ``Sstar`` (k*, k*) (default identity).
    For linear square loss the exact closed form ``(Q - 2M + S* + noise^2) / 2`` is used.
    """
    Q = np.asarray(Q, dtype=np.float64)
    M = np.asarray(M, dtype=np.float64)
    squeeze = Q.ndim == 2
    if squeeze:
        Q, M = Q[None], M[None]
    S = np.eye(model.kstar) if Sstar is None else np.asarray(Sstar, dtype=np.float64)
    if model.pop_loss is not None:
        out = model.pop_loss(Q, M, S)
    elif model.linear_square:
        out = 0.5 * (Q[:, 0, 0] - 2 * M[:, 0, 0] + S[0, 0] + model.noise**2)
    elif model.additive_noise:
        f, g = model.predictor, model.target
        out = population_expectation(model, Q, M, S, lambda r, rs, e: 0.5 * (f(r) - g(rs)) ** 2, noise_dim=False)
        out = out + 0.5 * model.noise**2
    else:
        noise_dim = model.noise != 0.0
        out = population_expectation(
            model, Q, M, S, lambda r, rs, e: model.loss(r, model.label(rs, e)), noise_dim=noise_dim,
            method="qmc",
        )
    return out[0] if squeeze else out
