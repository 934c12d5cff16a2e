"""Numba kernels of the pathwise tangents (:class:`~.responses.PathwiseTangents`): one step of the tangent
recursion over a path's visits, on the whole past (:func:`tangent_step`, its ``k = 1`` form
:func:`tangent_step_k1`) or on a window of it (:func:`window_step`, :func:`window_step_k1`).
"""

from __future__ import annotations

from numba import njit

__all__ = ["tangent_step", "tangent_step_k1", "window_step", "window_step_k1"]


@njit(cache=True)
def tangent_step(m, Rt_m, H_m, S_m, rb, G, off, act_t, n_act, RFsum, use, Jbuf):  # pragma: no cover - compiled
    """Advance the tangents of all paths to step m and accumulate the R_F estimator into RFsum.

    Rt_m (T+1, k, k) = R_theta[m, :]; H_m (P, k, k) = H(r_m, y); S_m (P,) multipliers at step m;
    G (rows, k, k), triangular: G[off[p, j] + s] = d h_u / d w_s (s <= u) at the j-th active time
    u = act_t[p, j] (active: S_u != 0), h_u = F(r_u, y) S_u; ``off`` (P, nmax + 1) from
    :func:`triangular_offsets` (a visit at u holds its u + 1 rows, no zeros after it). The tangent of
    the pre-activation is J_{m,s} = d r_m / d w_s = delta_{ms} I - sum_{active u < m} R_theta[m,u] G_{u,s}.
    RFsum (m+1, k, k) is overwritten with sum_p d h_m / d w_s (rb=False: pathwise, only active
    paths contribute) or with sum_p H_m J_{m,s} (rb=True, Rao-Blackwellised: for i.i.d. multipliers
    S_m is independent of (H_m, J_{m,.}), so E[S_m H_m J] = E[S] E[H_m J] and every path contributes).
    An active path's new tangent goes to slot n_act[p]; the caller registers the visit afterwards.
    Paths with ``use[p]`` False (the tail paths, estimated by integration by parts) are skipped.
    Jbuf (T+1, k, k): work space for a path's tangent, of the accumulation precision.
    """
    P = H_m.shape[0]
    k = H_m.shape[1]
    J = Jbuf[: m + 1]  # the tangent of one path, float64 or float32 (PathwiseTangents.single)
    RFsum[:, :, :] = 0.0
    for p in range(P):
        active = S_m[p] != 0.0
        if not ((active or rb) and use[p]):
            continue
        J[:, :, :] = 0.0
        for a in range(k):
            J[m, a, a] = 1.0
        for j in range(n_act[p]):
            u = act_t[p, j]
            g = G[off[p, j] : off[p, j] + u + 1]  # a view: indices from 0, as the loops below know
            for s in range(u + 1):
                for a in range(k):
                    for c in range(k):
                        acc = 0.0
                        for b in range(k):
                            acc += Rt_m[u, a, b] * g[s, b, c]
                        J[s, a, c] -= acc
        gn = G[off[p, n_act[p]] : off[p, n_act[p]] + m + 1] if active else G[:0]
        _push(H_m[p], J, m + 1, S_m[p], active, rb, gn, RFsum)


@njit(cache=True)
def _push(Hp, J, n, sm, active, rb, gn, RFsum):  # pragma: no cover - compiled
    """A path's ``H_m J_{m,s}`` for its ``n`` tangent rows: into the new visit's store rows ``gn`` (times
    ``S_m``, when the path is active) and into ``RFsum`` (Rao-Blackwellised or times ``S_m``)."""
    k = Hp.shape[0]
    for s in range(n):
        for a in range(k):
            for c in range(k):
                acc = 0.0
                for b in range(k):
                    acc += Hp[a, b] * J[s, b, c]
                if active:
                    gn[s, a, c] = acc * sm
                RFsum[s, a, c] += acc if rb else acc * sm


@njit(cache=True)
def tangent_step_k1(m, Rt_m, H_m, S_m, rb, G, off, act_t, n_act, RFsum, use, Jbuf):  # pragma: no cover - compiled
    """``tangent_step`` for k = 1 (scalar blocks; contiguous inner loops that LLVM vectorises).

    Rt_m (T+1,) in the precision of Jbuf; H_m (P,); G (rows,) triangular, ``off`` as there; RFsum (m+1,);
    Jbuf (T+1,) work space of the tangent, in the accumulation precision (float32 for sparse laws: the precision of the
    store G it is built from; 20-27 % faster on phase retrieval SGD at T = 1000, curves moved by ~1e-9
    relative)."""
    P = H_m.shape[0]
    J = Jbuf[: m + 1]
    RFsum[:] = 0.0
    for p in range(P):
        active = S_m[p] != 0.0
        if not ((active or rb) and use[p]):
            continue
        J[:] = 0.0
        J[m] = 1.0
        for j in range(n_act[p]):
            u = act_t[p, j]
            c = Rt_m[u]  # Rt_m comes in the precision of J
            g = G[off[p, j] : off[p, j] + u + 1]  # a view (non-negative indices: the loop vectorises)
            for s in range(u + 1):
                J[s] -= c * g[s]
        hp = H_m[p]
        sm = S_m[p]
        wgt = hp if rb else hp * sm
        for s in range(m + 1):
            RFsum[s] += wgt * J[s]
        if active:
            gn = G[off[p, n_act[p]] : off[p, n_act[p]] + m + 1]
            hs = hp * sm
            for s in range(m + 1):
                gn[s] = hs * J[s]


@njit(cache=True)
def window_step(m, lo, Rt_m, H_m, S_m, rb, G, base, act_t, n_act, RFsum, use, Jbuf):  # pragma: no cover - compiled
    """``tangent_step`` with the tangents kept on a window of the past: ``J_{m,s}`` for ``s >= lo`` only.

    G (P, V, W, k, k) is a ring of ``V`` visit slots per path: the j-th visit (at step ``u``) lives in slot
    ``j % V`` and holds ``d h_u / d w_s`` for ``s = base[p, slot] .. u`` at rows ``s - base``. Visits before
    ``lo`` are not read (their rows end before the window); RFsum (m + 1 - lo, k, k) is overwritten with
    the window's part of ``sum_p d h_m / d w_s``, ``s = lo .. m``. Jbuf (W, k, k) work space."""
    P = H_m.shape[0]
    k = H_m.shape[1]
    V = G.shape[1]
    n = m + 1 - lo
    J = Jbuf[:n]
    RFsum[:, :, :] = 0.0
    for p in range(P):
        active = S_m[p] != 0.0
        if not ((active or rb) and use[p]):
            continue
        J[:, :, :] = 0.0
        for a in range(k):
            J[n - 1, a, a] = 1.0
        j = n_act[p] - 1
        while j >= 0 and act_t[p, j] >= lo:
            u = act_t[p, j]
            slot = j % V
            g = G[p, slot]
            b0 = base[p, slot]
            for s in range(lo, u + 1):
                for a in range(k):
                    for c in range(k):
                        acc = 0.0
                        for b in range(k):
                            acc += Rt_m[u, a, b] * g[s - b0, b, c]
                        J[s - lo, a, c] -= acc
            j -= 1
        slot = n_act[p] % V
        if active:
            base[p, slot] = lo
        _push(H_m[p], J, n, S_m[p], active, rb, G[p, slot], RFsum)


@njit(cache=True)
def window_step_k1(m, lo, Rt_m, H_m, S_m, rb, G, base, act_t, n_act, RFsum, use, Jbuf):  # pragma: no cover - compiled
    """``window_step`` for k = 1: G (P, V, W), Rt_m (T+1,), H_m (P,), RFsum (m + 1 - lo,), Jbuf (W,)
    (contiguous inner loops that LLVM vectorises, as in ``tangent_step_k1``)."""
    P = H_m.shape[0]
    V = G.shape[1]
    n = m + 1 - lo
    J = Jbuf[:n]
    RFsum[:] = 0.0
    for p in range(P):
        active = S_m[p] != 0.0
        if not ((active or rb) and use[p]):
            continue
        J[:] = 0.0
        J[n - 1] = 1.0
        j = n_act[p] - 1
        while j >= 0 and act_t[p, j] >= lo:
            u = act_t[p, j]
            slot = j % V
            c = Rt_m[u]
            g = G[p, slot, lo - base[p, slot] : u + 1 - base[p, slot]]
            Ju = J[: u + 1 - lo]
            for i in range(u + 1 - lo):
                Ju[i] -= c * g[i]
            j -= 1
        hp = H_m[p]
        sm = S_m[p]
        wgt = hp if rb else hp * sm
        for i in range(n):
            RFsum[i] += wgt * J[i]
        if active:
            slot = n_act[p] % V
            base[p, slot] = lo
            gn = G[p, slot, :n]
            hs = hp * sm
            for i in range(n):
                gn[i] = hs * J[i]
