"""Compiled ElasticFlow planner: ``plan_all`` and ``allocate_free`` of POLICIES.md 2.4 and
2.7, on numpy arrays, compiled with numba.

This ports the *literal* reference in :mod:`sim.policies.efplan` (``_plan_core``,
``_whatif`` and ``allocate_free(cache=False)``): the same decisions and the same
floating-point operations in the same order, so its results are identical to the
reference's (checked by ``tests/test_efplan.py`` and, on whole traces, by
``bench/ef_replay.py``), including the clean (``artifact=False``) lazy leftover loop.
Three things only save work, each without changing a result:

* the m loop keeps a job's ``m`` across a grant that changed nothing its what-if read
  (its ``t1``, and F on ``[t1, horizon]``), and plans the others on two threads;
* the m loop's what-if (:func:`_whatif_m`) merges F and the job's own plan in one pass,
  only up to ``D^`` unless the plan needs more, doing the plan's first pass as it goes;
* :func:`plan_then_free` runs the final plan and the leftover grants of an EF instant in
  one call and returns arrays, not per-job objects.

Data layout (everything the kernels touch is a numpy array):

* a profile ``F`` is ``(T, V, n)``: breakpoints ``T[:n]`` (float64), free GPUs ``V[:n]``
  (int64), in arrays with spare capacity so insertions shift in place;
* job ``j``: ``W[j]`` work, ``D[j]`` deadline, its levels ``LV[j, 1..NL[j]]`` (``LV[j, 0]
  = 0``) and their rates ``RT[j, ...]`` (``RT[j, 0] = 0.0``);
* a plan is ``(t, g)`` steps in two array rows with a length, plus its end.

A kernel that runs out of capacity raises :class:`CapacityError`; the wrappers retry with larger
arrays. Times come back as float64; the wrappers return Python floats (or ints, when the
caller's times and slot were ints, as the reference would).
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence

import numpy as np
from numba import njit, prange

INF = math.inf


class CapacityError(Exception):
    """A kernel's arrays are too small (the wrappers retry with larger ones)."""

# ---------------------------------------------------------------------------
# Profile primitives (efplan: align, _ensure, _compress, _compress_from, _reserve,
# _add_back, compress_steps, gpu_seconds)
# ---------------------------------------------------------------------------


@njit(cache=True)
def _align(t0, t, S):
    if t == INF:
        return INF
    return t0 + math.ceil((t - t0) / S) * S


@njit(cache=True)
def _ensure(T, V, n, t):
    """Index of breakpoint ``t`` (inserted with the value before it if absent), new n."""
    i = np.searchsorted(T[:n], t)
    if i < n and T[i] == t:
        return i, n
    if i == 0:
        raise ValueError("time precedes the profile's first breakpoint")
    if n >= T.shape[0]:
        raise CapacityError("profile capacity")
    for k in range(n, i, -1):
        T[k] = T[k - 1]
        V[k] = V[k - 1]
    T[i] = t
    V[i] = V[i - 1]
    return i, n + 1


@njit(cache=True)
def _compress_from(T, V, n, i0):
    """Merge equal neighbours after ``i0`` (breakpoint ``i0`` is kept); new n."""
    w = i0 + 1
    for k in range(i0 + 1, n):
        if V[k] != V[w - 1]:
            T[w] = T[k]
            V[w] = V[k]
            w += 1
    return w if n > i0 else n


@njit(cache=True)
def _reserve(T, V, n, k, a, E):
    e, n = _ensure(T, V, n, E)
    for i in range(k, e):
        V[i] -= a
    return n


@njit(cache=True)
def _add_back(T, V, n, at, ag, alen, start, end):
    for idx in range(alen):
        t = at[idx]
        g = ag[idx]
        lo = t if t > start else start
        nxt = at[idx + 1] if idx + 1 < alen else end
        hi = nxt if nxt < end else end
        if g == 0 or lo >= hi:
            continue
        i, n = _ensure(T, V, n, lo)
        if hi != INF:
            e, n = _ensure(T, V, n, hi)
        else:
            e = n
        for k in range(i, e):
            V[k] += g
    return n


@njit(cache=True)
def _compress_steps(st, sg, m):
    """compress_steps in place on the first ``m`` steps; new length."""
    if m == 0:
        return 0
    w = 1
    for k in range(1, m):
        if sg[k] != sg[w - 1]:
            st[w] = st[k]
            sg[w] = sg[k]
            w += 1
    return w


@njit(cache=True)
def _gpu_seconds(st, sg, m, end):
    total = 0.0
    for i in range(m):
        g = sg[i]
        if g:
            t_next = st[i + 1] if i + 1 < m else end
            total += g * (t_next - st[i])
    return total


@njit(cache=True)
def _nlev_le(lv, L, v):
    """bisect_right(levels, v): how many of the job's levels are <= v."""
    if v >= lv[L]:  # saturated: the common case on a large cluster
        return L
    c = 0
    for k in range(1, L + 1):
        if lv[k] <= v:
            c = k
        else:
            break
    return c


# ---------------------------------------------------------------------------
# PLAN (efplan._plan_core)
# ---------------------------------------------------------------------------


@njit(cache=True)
def _search(W, fidx, ln, nseg, rt, u_lo, u_top):
    """The first level u in [u_lo, u_top] whose sequential backward fill reaches W, and
    the segment where it does (0, -1 if none)."""
    for u in range(u_lo, u_top + 1):
        acc = 0.0
        for k in range(nseg - 1, -1, -1):
            f = fidx[k]
            if f:
                acc += rt[f if f < u else u] * ln[k]
                if acc >= W:
                    return u, k
    return 0, -1


@njit(cache=True)
def _finish(T, V, n, k, a, E, at, ag, na, trail, trail_t, commit):
    """Record the plan (compressed steps, plus a 0 entry at ``trail_t`` when ``trail``),
    reserve ``a`` on ``[T[k], E)`` and compress F (only when ``commit``: a what-if that
    is only measured needs no profile). Returns (n, plan length)."""
    m = _compress_steps(at, ag, na)
    if trail:
        at[m] = trail_t
        ag[m] = 0
        m += 1
    if commit:
        n = _reserve(T, V, n, k, a, E)
        n = _compress_from(T, V, n, 0)
    return n, m


ERR_NEVER_FITS, ERR_CAPACITY, ERR_WALK, ERR_UNREACHABLE = 1, 2, 3, 4


@njit(cache=True)
def _raise_for(err):
    if err == ERR_CAPACITY:
        raise CapacityError("profile capacity")
    if err == ERR_NEVER_FITS:
        raise ValueError("free capacity never reaches the job's smallest level")
    if err == ERR_WALK:
        raise ValueError("best-effort forward walk did not finish")
    raise ValueError("unreachable: the last segment is unbounded")


@njit(cache=True)
def _plan_core(W, D, lv, rt, L, now, T, V, n, G, S, at, ag, fidx, ln, commit):
    """:func:`_plan_core_e`, raising its error."""
    n, m, E, R, ok, hz, err = _plan_core_e(W, D, lv, rt, L, now, T, V, n, G, S, at, ag,
                                           fidx, ln, commit)
    if err:
        _raise_for(err)
    return n, m, E, R, ok, hz


@njit(cache=True)
def _plan_core_e(W, D, lv, rt, L, now, T, V, n, G, S, at, ag, fidx, ln, commit):
    """PLAN of 2.3 on ``(T, V, n)`` (mutated, compressed); the plan goes to ``at``/``ag``.

    Returns ``(n, plan length, E, R, feasible, horizon, err)``; ``horizon`` is the last
    time whose breakpoints or values the plan read; ``err`` is 0, or the code of the
    error :func:`_plan_core` raises (returned, not raised: the m loop runs this in
    threads, where numba cannot raise)."""
    if W <= 0:
        at[0] = now
        ag[0] = 0
        return n, 1, now, now, now <= D, now, 0
    nu = _nlev_le(lv, L, G)
    if nu == 0:
        at[0] = now
        ag[0] = 0
        return n, 1, INF, INF, False, now, 0
    i0, n = _ensure(T, V, n, now)
    Dh = _align(now, D, S)
    if Dh != INF and Dh > now:
        _, n = _ensure(T, V, n, Dh)
    if Dh == INF:
        iD = n
    else:
        iD = i0 + np.searchsorted(T[i0:n], Dh)
    nseg = iD - i0
    maxf = 0
    for k in range(nseg):
        f = _nlev_le(lv, L, V[i0 + k])
        fidx[k] = f
        if f > maxf:
            maxf = f
        ln[k] = (T[i0 + k + 1] if k + 1 < nseg else D) - T[i0 + k]
    return _plan_segs(W, D, lv, rt, L, now, T, V, n, G, S, at, ag, fidx, ln, commit, nu,
                      i0, nseg, maxf, Dh, True)


ERR_TRUNCATED = 5


@njit(cache=True)
def _plan_segs(W, D, lv, rt, L, now, T, V, n, G, S, at, ag, fidx, ln, commit, nu, i0, nseg,
               maxf, Dh, full):
    """The rest of :func:`_plan_core_e`, given its first pass: the ``nseg`` segments
    before ``D^`` start at ``T[i0]`` and have floor level indices ``fidx`` and lengths
    ``ln`` (the last one ends at ``D``), and ``maxf`` is the largest index. ``full``:
    the profile runs on past ``D^``; when it is cut there, a plan that needs the
    segments after ``D^`` returns ``ERR_TRUNCATED`` instead."""
    iD = i0 + nseg
    na = 0
    Wr = W
    if nseg:
        if ln[nseg - 1] == INF and fidx[nseg - 1] == 0:
            return n, 0, INF, INF, False, INF, ERR_NEVER_FITS
        u_top = min(nu, max(1, maxf))
        # Both level searches start from the grouped candidate: levels whose total
        # (grouped by floor level) falls short of W by more than 1e-9 relative cannot
        # reach it sequentially either (efplan._plan_core)
        need = W * (1.0 - 1e-9)
        if nseg + L + 1 > ln.shape[0]:
            return n, 0, INF, INF, False, INF, ERR_CAPACITY
        lsum = ln[nseg:nseg + L + 1]  # summed lengths per floor level, in segment order
        lsum[:] = 0.0
        for k in range(nseg):
            lsum[fidx[k]] += ln[k]
        lsum[0] = 0.0  # no GPUs, no iterations (and no inf * 0)
        u_c = 1
        while u_c < u_top:
            tot = 0.0
            for f in range(L + 1):
                tot += rt[f if f < u_c else u_c] * lsum[f]
            if tot >= need:
                break
            u_c += 1
        searched = False
        u = kP = 0
        if ln[nseg - 1] > 0:
            # efplan._plan_found: the first level from 1 up, used when the job finishes
            # before D^ (nothing is changed otherwise)
            u, kP = _search(W, fidx, ln, nseg, rt, u_c, u_top)
            searched = True
            if u:
                Wf = W
                fin = -1
                for idx in range(nseg):
                    f = fidx[idx]
                    c = u if idx >= kP else u - 1
                    if f > c:
                        f = c
                    it = rt[f] * ln[idx]
                    if it >= Wf:
                        fin = idx
                        break
                    Wf -= it
                if fin >= 0:
                    for idx in range(fin + 1):
                        f = fidx[idx]
                        c = u if idx >= kP else u - 1
                        if f > c:
                            f = c
                        at[idx] = T[i0 + idx]
                        ag[idx] = lv[f]
                        if idx < fin:
                            V[i0 + idx] -= lv[f]
                    # f is now the finishing segment's level index
                    r = rt[f]
                    seg = ln[fin]
                    d = math.ceil(Wf / r)
                    if seg != INF:
                        d = min(d, math.ceil(seg))
                    k = i0 + fin
                    R = T[k] + d
                    E = T[k] + math.ceil(d / S) * S
                    trail_t = T[k + 1] if fin + 1 < nseg else 0.0
                    n, m = _finish(T, V, n, k, lv[f], E, at, ag, fin + 1, fin + 1 < nseg,
                                   trail_t, commit)
                    return n, m, E, R, R <= D, Dh, 0
        # Step 2: the level search, from the same candidate
        u_found = u
        if not searched:
            u_found, kP = _search(W, fidx, ln, nseg, rt, u_c, u_top)
        u_prev = u_found - 1 if u_found else u_top
        for idx in range(nseg):
            f = fidx[idx]
            cap_u = u_found if (u_found and idx >= kP) else u_prev
            if f > cap_u:
                f = cap_u
            at[na] = T[i0 + idx]
            ag[na] = lv[f]
            na += 1
            if not f:
                continue
            r = rt[f]
            seg = ln[idx]
            it = r * seg
            k = i0 + idx
            if it >= Wr:
                d = math.ceil(Wr / r)
                if seg != INF:
                    d = min(d, math.ceil(seg))
                R = T[k] + d
                E = T[k] + math.ceil(d / S) * S
                trail_t = T[k + 1] if idx + 1 < nseg else 0.0
                n, m = _finish(T, V, n, k, lv[f], E, at, ag, na, idx + 1 < nseg, trail_t,
                               commit)
                return n, m, E, R, u_found > 0 and R <= D, Dh, 0
            Wr -= it
            V[k] -= lv[f]
        if Dh == INF:
            return n, 0, INF, INF, False, INF, ERR_WALK

    # Step 4.2 / 4.3: segments from D^ on at floor_level(F(t_k)), then the unbounded tail
    if not full:
        return n, 0, INF, INF, False, INF, ERR_TRUNCATED
    for k in range(iD, n):
        t = T[k]
        bounded = k + 1 < n
        f = V[k] if bounded else min(V[k], G)
        ia = _nlev_le(lv, L, f)
        a = lv[ia]
        at[na] = t
        ag[na] = a
        na += 1
        if not a:
            if bounded:
                continue
            return n, 0, INF, INF, False, INF, ERR_NEVER_FITS
        r = rt[ia]
        if bounded:
            seg = T[k + 1] - t
            it = r * seg
            if it < Wr:
                Wr -= it
                V[k] -= a
                continue
            d = min(math.ceil(Wr / r), math.ceil(seg))
            horizon = T[k + 1]
        else:
            d = math.ceil(Wr / r)
            horizon = INF
        R = t + d
        E = _align(now, R, S)
        n, m = _finish(T, V, n, k, a, E, at, ag, na, False, 0.0, commit)
        return n, m, E, R, False, horizon, 0
    return n, 0, INF, INF, False, INF, ERR_UNREACHABLE


@njit(cache=True)
def _plan_all(W, D, LV, RT, NL, order, now, T, V, n, G, S, AT, AG, AL, E, R, FEAS,
              fidx, ln):
    """PLAN_ALL's loop (2.4): plan the jobs in ``order`` committing F; new n."""
    for j in order:
        n, m, e, r, ok, _ = _plan_core(W[j], D[j], LV[j], RT[j], NL[j], now, T, V, n, G, S,
                                    AT[j], AG[j], fidx, ln, True)
        AL[j] = m
        E[j] = e
        R[j] = r
        FEAS[j] = ok
    return n


# ---------------------------------------------------------------------------
# What-if (efplan._whatif) and ALLOCATE_FREE (efplan.allocate_free, cache=False)
# ---------------------------------------------------------------------------


@njit(cache=True)
def _whatif(W, D, lv, rt, L, g2, at, ag, alen, aend, now, FT, FV, nF, G, S, artifact,
            T, V, wt, wg, xt, xg, fidx, ln, commit):
    """The what-if plan of 2.7 step 2 into ``wt``/``wg``, its profile into ``T``/``V``.

    Returns ``(n, plan length, E, R, feasible, t1, horizon)``: the result depends on F
    only through ``t1`` and F on ``[t1, horizon]`` (its values there and its breakpoints
    in ``(t1, horizon]``): the first segment ``[now, t1)`` is forced to ``g2`` and the
    rest is planned from ``t1`` on."""
    for k in range(nF):
        T[k] = FT[k]
        V[k] = FV[k]
    n = _add_back(T, V, nF, at, ag, alen, now, aend)
    i0, n = _ensure(T, V, n, now)
    n = _compress_from(T, V, n, i0)
    Dh = _align(now, D, S)
    # no change after now: the first segment runs to D^, or on without end for a late job
    t1 = T[i0 + 1] if i0 + 1 < n else (Dh if Dh > now else INF)
    r = rt[_nlev_le(lv, L, g2)]
    d = math.ceil(W / r)
    if t1 != INF and r * (t1 - now) >= W:
        d = min(d, math.ceil(t1 - now))
    R = now + d
    E = now + math.ceil(d / S) * S
    wt[0] = now
    wg[0] = g2
    if t1 >= E and R <= D:
        if commit:
            n = _reserve(T, V, n, i0, g2, E)
            n = _compress_from(T, V, n, 0)
        return n, 1, E, R, True, t1, t1
    if now < Dh and Dh < INF:
        _, n = _ensure(T, V, n, Dh)
    seg = (D - now) if t1 == Dh else (t1 - now)
    rest_work = W - r * seg
    if rest_work <= 0 or t1 == INF:
        if commit:
            n = _reserve(T, V, n, i0, g2, E)
            n = _compress_from(T, V, n, 0)
        return n, 1, E, R, R <= D, t1, t1
    if not artifact and now < Dh and Dh < t1:
        V[i0 + 1] -= g2
    V[i0] -= g2
    n, m, E, R, ok, hz = _plan_core(rest_work, D, lv, rt, L, t1, T, V, n, G, S, xt, xg,
                                    fidx, ln, commit)
    for k in range(m):
        wt[k + 1] = xt[k]
        wg[k + 1] = xg[k]
    if t1 > hz:
        hz = t1
    return n, _compress_steps(wt, wg, m + 1), E, R, ok, t1, hz


@njit(cache=True)
def _next_level(lv, L, g):
    for k in range(1, L + 1):
        if lv[k] > g:
            return lv[k]
    return g


@njit(cache=True)
def _cursor(FT, FV, nF, at, ag, alen, aend, t):
    """F plus a job's own plan (held on ``[its start, aend)``) at ``t``: ``(i, f, j, o,
    ended)`` = F's next breakpoint and F's value, the plan's next step and its value,
    and whether the plan has ended."""
    i = np.searchsorted(FT[:nF], t, side="right")
    f = FV[i - 1] if i > 0 else FV[0]
    j = 0
    o = 0
    while j < alen and at[j] <= t:
        o = ag[j]
        j += 1
    ended = aend <= t
    if ended:
        o = 0
    return i, f, j, o, ended


@njit(cache=True)
def _t1_now(FT, FV, nF, at, ag, alen, aend, now, Dh):
    """``t1`` the what-if would use now (efplan._whatif_t1): the first time after ``now``
    where F plus the job's own plan (held until ``aend``) changes value, else ``D^``."""
    i, f, j, o, ended = _cursor(FT, FV, nF, at, ag, alen, aend, now)
    base = f + o
    while True:
        x_f = FT[i] if i < nF else INF
        if ended:
            x_o = INF
        else:
            x_o = at[j] if j < alen else INF
            if aend < x_o:
                x_o = aend
        x = x_f if x_f < x_o else x_o
        if x == INF:
            return Dh
        if x_f == x:
            f = FV[i]
            i += 1
        if x_o == x:
            if x >= aend:
                o = 0
                ended = True
            else:
                o = ag[j]
                j += 1
        if f + o != base:
            return x


@njit(cache=True)
def _whatif_m(W, D, lv, rt, L, g2, at, ag, alen, aend, now, FT, FV, nF, G, S,
              T, V, wt, wg, xt, xg, fidx, ln):
    """:func:`_whatif` with ``commit=False`` (the plan only, for ``m``), in one pass: the
    what-if profile F + own plan is merged from ``t1`` on straight into ``T``/``V``
    (compressed, with the breakpoints ``D^`` and ``align(t1, D)`` that the reference
    inserts), instead of copying F, adding the plan back, compressing and inserting.
    Returns ``(plan length, E, R, feasible, t1, horizon, err)``, identical to
    :func:`_whatif`'s; ``err`` as in :func:`_plan_core_e` (this runs in threads)."""
    Dh = _align(now, D, S)
    # no change after now: the first segment runs to D^, or on without end for a late job
    t1 = _t1_now(FT, FV, nF, at, ag, alen, aend, now, Dh if Dh > now else INF)
    # The forced first segment repeats _whatif's, and the merge below _t1_now's, on
    # purpose: sharing them as helpers called per step (with or without
    # inline="always") made the kernel 1.4-2x slower on 300 recorded cluster04 calls
    r = rt[_nlev_le(lv, L, g2)]
    d = math.ceil(W / r)
    if t1 != INF and r * (t1 - now) >= W:
        d = min(d, math.ceil(t1 - now))
    R = now + d
    E = now + math.ceil(d / S) * S
    wt[0] = now
    wg[0] = g2
    if t1 >= E and R <= D:
        return 1, E, R, True, t1, t1, 0
    seg = (D - now) if t1 == Dh else (t1 - now)
    rest_work = W - r * seg
    if rest_work <= 0 or t1 == INF:
        return 1, E, R, R <= D, t1, t1, 0
    # the profile from t1 on, with the breakpoint D^ (now-aligned) the reference inserts;
    # align(t1, D) too, which _plan_core would otherwise insert by shifting. When that
    # lies ahead, the merge first stops there and does _plan_core_e's first pass (floor
    # level indices and lengths of the segments before it) as it goes: the plan reads
    # nothing after it unless the job cannot finish by D (then it is merged again, whole)
    Dh1 = _align(t1, D, S)
    nu = _nlev_le(lv, L, G)
    cut = Dh1 > t1 and Dh1 < INF and nu > 0
    cap = T.shape[0]
    while True:
        f1 = Dh if (Dh > t1 and Dh < INF) else INF
        f2 = Dh1 if Dh1 > t1 else INF
        i, f, j, o, ended = _cursor(FT, FV, nF, at, ag, alen, aend, t1)
        T[0] = t1
        V[0] = f + o
        n = 1
        maxf = 0
        while True:
            x_f = FT[i] if i < nF else INF
            if ended:
                x_o = INF
            else:
                x_o = at[j] if j < alen else INF
                if aend < x_o:
                    x_o = aend
            x = x_f if x_f < x_o else x_o
            xf = f1 if f1 < f2 else f2  # next forced breakpoint
            forced = xf <= x
            if forced:
                x = xf
            if x == INF:
                break
            if x_f == x:
                f = FV[i]
                i += 1
            if x_o == x:
                if x >= aend:
                    o = 0
                    ended = True
                else:
                    o = ag[j]
                    j += 1
            if forced:
                if f1 == x:
                    f1 = INF
                if f2 == x:
                    f2 = INF
            if forced or f + o != V[n - 1]:
                if n >= cap:
                    return 0, INF, INF, False, t1, INF, ERR_CAPACITY
                if cut:  # the segment before x is complete
                    ln[n - 1] = (x if x < Dh1 else D) - T[n - 1]
                    fv = _nlev_le(lv, L, V[n - 1])
                    fidx[n - 1] = fv
                    if fv > maxf:
                        maxf = fv
                T[n] = x
                V[n] = f + o
                n += 1
                if cut and x >= Dh1:
                    break
        if not cut:
            n, m, E, R, ok, hz, err = _plan_core_e(rest_work, D, lv, rt, L, t1, T, V, n, G,
                                                   S, xt, xg, fidx, ln, False)
            break
        n, m, E, R, ok, hz, err = _plan_segs(rest_work, D, lv, rt, L, t1, T, V, n, G, S,
                                             xt, xg, fidx, ln, False, nu, 0, n - 1, maxf,
                                             Dh1, False)
        if err != ERR_TRUNCATED:
            break
        cut = False
    if err:
        return 0, E, R, ok, t1, hz, err
    for k in range(m):
        wt[k + 1] = xt[k]
        wg[k + 1] = xg[k]
    if t1 > hz:
        hz = t1
    return _compress_steps(wt, wg, m + 1), E, R, ok, t1, hz, 0



@njit(cache=True)
def _same_on(ta, va, na, tb, vb, nb, a, b):
    """Whether two profiles are equal on ``[a, b]``: the same value at ``a`` and the same
    breakpoints, with the same values, in ``(a, b]`` (``a`` not before either's start)."""
    i = np.searchsorted(ta[:na], a, side="right")
    j = np.searchsorted(tb[:nb], a, side="right")
    if va[i - 1] != vb[j - 1]:
        return False
    while True:
        x = ta[i] if i < na else INF
        y = tb[j] if j < nb else INF
        if x > b and y > b or x == INF and y == INF:
            return True
        if x != y or va[i] != vb[j]:
            return False
        i += 1
        j += 1


@njit(cache=True)
def _allocate_free(W, D, LV, RT, NL, NG, AT, AG, AL, END, REND, FEAS, FT, FV, nF, now, G,
                   S, A, artifact, T2, V2, wt2, wg2, xt2, xg2, fidx2, ln2, grants, ends_left):
    """The grant loop of 2.7. A job's ``m`` is kept across a grant when the grant left
    everything its what-if read unchanged: its ``t1``, and F on ``[t1, horizon]`` (see
    :func:`_whatif`); checked grant by grant, so a kept ``m`` is the one a fresh what-if
    would give (and the loop's result the literal reference's).

    Updates the job arrays and ``FT``/``FV`` in place. Returns ``(order, grant count,
    ends_left count, nF)``; ``grants[k] = (job, old, new)``. The scratch arrays have two
    rows, one per thread of :func:`_eval_all`; the grant's own what-if uses row 0."""
    nj = W.shape[0]
    T, V, wt, wg, xt, xg, fidx, ln = T2[0], V2[0], wt2[0], wg2[0], xt2[0], xg2[0], fidx2[0], ln2[0]
    cur = np.empty(nj)
    DH = np.empty(nj)
    for i in range(nj):
        cur[i] = _gpu_seconds(AT[i], AG[i], AL[i], END[i])
        DH[i] = _align(now, D[i], S)
        if DH[i] <= now:  # a late job's first segment ends at no D^ (see _whatif)
            DH[i] = INF
    m = np.empty(nj)
    HZ = np.full(nj, INF)  # what-if horizon and t1, valid where KEEP
    T1 = np.full(nj, INF)
    KEEP = np.zeros(nj, dtype=np.bool_)
    OT = np.empty(FT.shape[0])  # F before the last grant
    OV = np.empty(FV.shape[0], dtype=np.int64)
    nO = 0
    ERR = np.zeros(nj, dtype=np.int64)
    _eval_all(False, W, D, LV, RT, NL, NG, AT, AG, AL, END, FT, FV, nF, now, G, S, A,
              artifact, T2, V2, wt2, wg2, xt2, xg2, fidx2, ln2, cur, HZ, T1, KEEP, DH, OT, OV,
              nO, m, ERR)
    _raise_first(ERR)
    order = np.arange(nj)
    _stable_sort_desc(order, m)
    ng = 0
    ne = 0
    STALE = np.zeros(nj, dtype=np.bool_)  # clean: m computed before the last grant
    while A > 0:
        pick = -1
        pos = 0
        for p in range(nj):
            i = order[p]
            if m[i] != -INF and _next_level(LV[i], NL[i], NG[i]) != NG[i]:
                pick = i
                pos = p
                break
        if pick < 0:
            break
        g = NG[pick]
        g2 = _next_level(LV[pick], NL[pick], g)
        if STALE[pick]:  # [CLEAN] lazy: re-evaluate the first candidate only, re-place it
            STALE[pick] = False
            if g2 - g > A:
                m[pick] = -INF
            elif g == 0:
                m[pick] = INF
            else:
                wl, e, r, ok, t1, hz, err = _whatif_m(
                    W[pick], D[pick], LV[pick], RT[pick], NL[pick], g2, AT[pick], AG[pick],
                    AL[pick], END[pick], now, FT, FV, nF, G, S, T, V, wt, wg, xt, xg, fidx, ln)
                if err:
                    _raise_for(err)
                m[pick] = (_gpu_seconds(wt, wg, wl, e) - cur[pick]) / (g2 - g)
            q = pos
            while q + 1 < nj and m[order[q + 1]] > m[pick]:
                order[q] = order[q + 1]
                q += 1
            order[q] = pick
            continue
        n, wl, e, r, ok, _, _ = _whatif(W[pick], D[pick], LV[pick], RT[pick], NL[pick], g2,
                                        AT[pick], AG[pick], AL[pick], END[pick], now, FT, FV,
                                        nF, G, S, artifact, T, V, wt, wg, xt, xg, fidx, ln,
                                        True)
        if n > FT.shape[0] or wl > AT.shape[1]:
            raise CapacityError("profile capacity")
        for k in range(nF):
            OT[k] = FT[k]
            OV[k] = FV[k]
        nO = nF
        for k in range(n):
            FT[k] = T[k]
            FV[k] = V[k]
        nF = n
        old_end = END[pick]
        for k in range(wl):
            AT[pick, k] = wt[k]
            AG[pick, k] = wg[k]
        AL[pick] = wl
        END[pick] = e
        REND[pick] = r
        FEAS[pick] = ok
        NG[pick] = g2
        KEEP[pick] = False
        cur[pick] = _gpu_seconds(AT[pick], AG[pick], wl, e)
        A -= g2 - g
        grants[ng, 0] = pick
        grants[ng, 1] = g
        grants[ng, 2] = g2
        ng += 1
        if e != old_end:
            ends_left[ne] = old_end
            ne += 1
        if not artifact:
            STALE[:] = True
            continue
        # [ARTIFACT] every m again, but only jobs below their top level are re-evaluated
        _eval_all(artifact, W, D, LV, RT, NL, NG, AT, AG, AL, END, FT, FV, nF, now, G, S, A,
                  artifact, T2, V2, wt2, wg2, xt2, xg2, fidx2, ln2, cur, HZ, T1, KEEP, DH, OT,
                  OV, nO, m, ERR)
        _raise_first(ERR)
        _stable_sort_desc(order, m)
    return order, ng, ne, nF


@njit(cache=True)
def _raise_first(ERR):
    for i in range(ERR.shape[0]):
        if ERR[i]:
            _raise_for(ERR[i])


@njit(cache=True, parallel=True)
def _eval_all(below_top_only, W, D, LV, RT, NL, NG, AT, AG, AL, END, FT, FV, nF, now, G, S,
              A, artifact, T2, V2, wt2, wg2, xt2, xg2, fidx2, ln2, cur, HZ, T1, KEEP, DH, OT,
              OV, nO, m, ERR):
    """m_j of 2.7 step 3 for every job (only those below their top level when
    ``below_top_only``). A job's ``m`` is kept when its last what-if's inputs are
    unchanged since the last grant (``OT``/``OV``: F before it), else a new what-if is
    planned. The cheap cases stay in this loop: a numba call with this many arrays costs
    more than they do.

    The jobs are independent, so two threads share them (alternate jobs, each with its
    own scratch row; on one core they run one after the other). Errors go to ``ERR``
    (numba cannot raise inside a parallel loop); the caller raises them."""
    nj = W.shape[0]
    for c in prange(2):
        T, V, wt, wg = T2[c], V2[c], wt2[c], wg2[c]
        xt, xg, fidx, ln = xt2[c], xg2[c], fidx2[c], ln2[c]
        for i in range(c, nj, 2):
            g = NG[i]
            g2 = g
            for k in range(1, NL[i] + 1):  # _next_level
                if LV[i, k] > g:
                    g2 = LV[i, k]
                    break
            if below_top_only and g2 == g:
                continue
            if g2 == g or g2 - g > A:
                KEEP[i] = False
                m[i] = -INF
            elif g == 0:
                KEEP[i] = False
                m[i] = INF
            elif not (KEEP[i] and _t1_now(FT, FV, nF, AT[i], AG[i], AL[i], END[i], now,
                                          DH[i]) == T1[i]
                      and _same_on(OT, OV, nO, FT, FV, nF, T1[i], HZ[i])):
                wl, e, r, ok, t1, hz, err = _whatif_m(
                    W[i], D[i], LV[i], RT[i], NL[i], g2, AT[i], AG[i], AL[i], END[i], now, FT,
                    FV, nF, G, S, T, V, wt, wg, xt, xg, fidx, ln)
                ERR[i] = err
                HZ[i] = hz
                T1[i] = t1
                KEEP[i] = err == 0
                m[i] = (_gpu_seconds(wt, wg, wl, e) - cur[i]) / (g2 - g)


@njit(cache=True)
def _stable_sort_desc(order, m):
    """Stable sort of ``order`` by ``m`` descending (Python's ``sort(key=-m)``)."""
    for a in range(1, order.shape[0]):
        x = order[a]
        mx = m[x]
        b = a
        while b > 0 and m[order[b - 1]] < mx:
            order[b] = order[b - 1]
            b -= 1
        order[b] = x


# ---------------------------------------------------------------------------
# Wrappers: Python objects in, Python objects out
# ---------------------------------------------------------------------------


class _Jobs:
    """The job arrays of a call (see the module docstring)."""

    def __init__(self, jobs: Sequence, cap: int) -> None:
        nj = len(jobs)
        tabs = [j._tab for j in jobs]
        self.W = np.array([j.work for j in jobs], dtype=np.float64)
        self.D = np.array([j.deadline for j in jobs], dtype=np.float64)
        self.NL = np.array([len(t.lv) - 1 for t in tabs], dtype=np.int64)
        tids = np.array([t.tid for t in tabs], dtype=np.int64)
        self.LV, self.RT = _level_rows(tids)
        # plan rows: only the first AL[i] entries are ever read
        self.AT = np.empty((nj, cap), dtype=np.float64)
        self.AG = np.empty((nj, cap), dtype=np.int64)
        self.AL = np.zeros(nj, dtype=np.int64)
        self.E = np.zeros(nj, dtype=np.float64)
        self.R = np.zeros(nj, dtype=np.float64)
        self.FEAS = np.zeros(nj, dtype=np.bool_)


_ROWS = (np.zeros((0, 1), dtype=np.int64), np.zeros((0, 1)))


def _level_rows(tids):
    """The level and rate rows (``LV``, ``RT``) of the tables ``tids``
    (``efplan.TABLES``), zero-padded to one width: kept in two arrays that grow when new
    tables appear, so a call takes its rows by indexing."""
    global _ROWS
    from sim.policies.efplan import TABLES

    LV, RT = _ROWS
    if tids.size and tids.max() >= LV.shape[0]:
        tabs = list(TABLES)
        w = max(len(t.lv) for t in tabs)
        LV = np.zeros((len(tabs), w), dtype=np.int64)
        RT = np.zeros((len(tabs), w))
        for t in tabs:
            LV[t.tid, :len(t.lv)] = t.lv
            RT[t.tid, :len(t.rt)] = t.rt
        _ROWS = (LV, RT)
    return LV[tids], RT[tids]


def _scratch(cap: int, rows: int = 0):
    """Scratch arrays of a what-if (``T, V, wt, wg, xt, xg, fidx, ln``); ``rows`` > 0 gives
    one row per thread."""
    shape = (rows, cap) if rows else cap
    f, i = np.float64, np.int64
    return tuple(np.empty(shape, dtype=d) for d in (f, i, f, i, f, i, i, f))


def _time_caster(now: float, S: float):
    """The reference's times are ints when the caller's clock and slot are ints; ``None``
    when they are floats (``tolist`` already gives Python floats)."""
    if type(now) is int and type(S) is int:
        return lambda t: int(t) if t != INF and t != -INF else t
    return None


def _times(ts: list, cast) -> list:
    return ts if cast is None else list(map(cast, ts))


def _steps_of(AT, AG, i: int, n: int, cast) -> list[tuple[float, int]]:
    return list(zip(_times(AT[i, :n].tolist(), cast), AG[i, :n].tolist()))


def _deadline_order(jobs: Sequence) -> list[int]:
    """Indices of ``jobs`` in planning order: stably by deadline (2.4), keys unique."""
    keys = [j.key for j in jobs]
    if len(set(keys)) != len(keys):
        raise ValueError("duplicate job key")
    return sorted(range(len(jobs)), key=lambda i: jobs[i].deadline)


def plan_all(jobs_in_order: Sequence, now: float, G: int, S: float):
    """:func:`sim.policies.efplan.plan_all`, compiled (same arguments and result)."""
    from sim.policies.efplan import PlanAllResult, PlanResult, Profile

    order = _deadline_order(jobs_in_order)
    keys = [j.key for j in jobs_in_order]
    cap = 4 * len(jobs_in_order) + 64
    while True:
        J = _Jobs(jobs_in_order, cap)
        T, V = np.empty(cap), np.empty(cap, dtype=np.int64)
        T[0], V[0] = now, G
        try:
            n = _plan_all(J.W, J.D, J.LV, J.RT, J.NL, np.array(order, dtype=np.int64),
                          float(now), T, V, 1, G, float(S), J.AT, J.AG, J.AL, J.E, J.R,
                          J.FEAS, np.empty(cap, dtype=np.int64), np.empty(cap))
            break
        except CapacityError:
            cap *= 4
    cast = _time_caster(now, S)
    F = Profile.__new__(Profile)
    F.times = _times(T[:n].tolist(), cast)
    F.values = V[:n].tolist()
    results = {}
    Es, Rs, ok = _times(J.E.tolist(), cast), _times(J.R.tolist(), cast), J.FEAS.tolist()
    AL = J.AL.tolist()
    for i in order:
        results[keys[i]] = PlanResult(_steps_of(J.AT, J.AG, i, AL[i], cast), Es[i], Rs[i],
                                      ok[i], F)
    return PlanAllResult(results, [keys[i] for i in order], all(ok), F)


def allocate_free(states: Sequence, keys: Sequence[Hashable], A: int, now: float, F, G: int,
                  S: float, artifact: bool):
    """The grant loop of :func:`sim.policies.efplan.allocate_free` (inputs already
    checked there), compiled. ``F`` is updated in place."""
    from sim.policies.efplan import FreeResult, JobAlloc

    nj = len(states)
    if not nj:
        return FreeResult(list(states), [], [], F, [])
    cap = 2 * (len(F.times) + sum(len(st.alloc) for st in states) + 2 * nj) + 64
    while True:
        J = _Jobs([st.job for st in states], cap)
        NG = np.array([st.num_gpu for st in states], dtype=np.int64)
        lens = np.array([len(st.alloc) for st in states], dtype=np.int64)
        J.AL[:] = lens
        rows = np.repeat(np.arange(nj), lens)
        cols = np.arange(len(rows)) - np.repeat(np.cumsum(lens) - lens, lens)
        steps = [step for st in states for step in st.alloc]
        J.AT[rows, cols] = [t for t, _ in steps]
        J.AG[rows, cols] = [g for _, g in steps]
        J.E[:] = [st.end for st in states]
        J.R[:] = [st.real_end for st in states]
        J.FEAS[:] = [st.feasible for st in states]
        FT = np.empty(cap)
        FV = np.empty(cap, dtype=np.int64)
        nF = len(F.times)
        FT[:nF] = F.times
        FV[:nF] = F.values
        grants = np.empty((max(A, 0) + 1, 3), dtype=np.int64)
        ends_left = np.empty(max(A, 0) + 1)
        try:
            order, ng, ne, nF = _allocate_free(
                J.W, J.D, J.LV, J.RT, J.NL, NG, J.AT, J.AG, J.AL, J.E, J.R, J.FEAS, FT, FV,
                nF, float(now), G, float(S), A, artifact, *_scratch(cap, 2), grants, ends_left)
            break
        except CapacityError:
            cap *= 4
    cast = _time_caster(now, S)
    out = list(states)
    Es, Rs, ok = _times(J.E.tolist(), cast), _times(J.R.tolist(), cast), J.FEAS.tolist()
    for i in sorted({int(g[0]) for g in grants[:ng]}):
        out[i] = JobAlloc(states[i].job, int(NG[i]), _steps_of(J.AT, J.AG, i, int(J.AL[i]), cast),
                          Es[i], Rs[i], ok[i])
    F.times = _times(FT[:nF].tolist(), cast)
    F.values = FV[:nF].tolist()
    return FreeResult(out, [keys[i] for i in order.tolist()],
                      [(keys[k], o, g) for k, o, g in grants[:ng].tolist()], F,
                      _times(ends_left[:ne].tolist(), cast))


# ---------------------------------------------------------------------------
# The whole EF instant's planning: PLAN_ALL, then ALLOCATE_FREE on its result
# ---------------------------------------------------------------------------


@njit(cache=True)
def _plan_then_free(W, D, LV, RT, NL, now, T, V, G, S, AT, AG, AL, E, R, FEAS, artifact,
                    T2, V2, wt2, wg2, xt2, xg2, fidx2, ln2, grants, ends_left, NG0, FIRST,
                    R0, NXT):
    """:func:`_plan_all` of the jobs in the order given (already deadline order), then
    :func:`_allocate_free` on its plans and free profile, on the same arrays. Also
    records what the caller reads of the plan before the grants: each job's GPUs at
    ``now`` (``NG0``), the first time it holds any (``FIRST``, inf if never) and its
    real end (``R0``); and of the final plan, its next change after ``now`` (``NXT``,
    inf if none). Returns ``(order, GPUs per job after the grants, grant count,
    ends_left count)``."""
    nj = W.shape[0]
    n = _plan_all(W, D, LV, RT, NL, np.arange(nj), now, T, V, 1, G, S, AT, AG, AL, E, R,
                  FEAS, fidx2[0], ln2[0])
    A = G
    for i in range(nj):
        g0 = 0
        first = INF
        for k in range(AL[i]):
            if AT[i, k] <= now:
                g0 = AG[i, k]
            if AG[i, k] and first == INF:
                first = AT[i, k]
        NG0[i] = g0
        FIRST[i] = first
        R0[i] = R[i]
        A -= g0
    NG = NG0.copy()
    order, ng, ne, _ = _allocate_free(W, D, LV, RT, NL, NG, AT, AG, AL, E, R, FEAS, T, V, n,
                                      now, G, S, A, artifact, T2, V2, wt2, wg2, xt2, xg2,
                                      fidx2, ln2, grants, ends_left)
    for i in range(nj):
        nxt = INF
        for k in range(AL[i]):
            if AT[i, k] > now:
                nxt = AT[i, k]
                break
        NXT[i] = nxt
    return order, NG, ng, ne


class PlanFree:
    """What an EF instant reads of :func:`plan_then_free`. Per job, in planning order
    (``keys``): ``gpus0``, ``first`` and ``real0`` from the final plan before the
    leftover grants (GPUs at ``now``, first time with GPUs or None, real end);
    ``gpus``, ``end``, ``real``, ``next`` from the plan after them (``next``: its next
    change after ``now``, or None). ``order``, ``grants`` and ``ends_left`` as in
    :class:`sim.policies.efplan.FreeResult`."""

    __slots__ = ("keys", "gpus0", "first", "real0", "gpus", "end", "real", "next", "order",
                 "grants", "ends_left")


def plan_then_free(jobs_in_order: Sequence, now: float, G: int, S: float,
                   artifact: bool) -> PlanFree:
    """``plan_all`` followed by ``allocate_free`` on its result (POLICIES.md 2.5 step 2.4
    and 2.7), in one compiled call and without the per-job objects in between: the
    same numbers as :func:`sim.policies.efplan.plan_all` then
    :func:`sim.policies.efplan.allocate_free` (tested). Raises ``ValueError`` on bad
    input (the caller runs those two to name the job)."""
    jobs = [jobs_in_order[i] for i in _deadline_order(jobs_in_order)]
    keys = [j.key for j in jobs]
    nj = len(jobs)
    cap = 8 * nj + 128
    while True:
        J = _Jobs(jobs, cap)
        T, V = np.empty(cap), np.empty(cap, dtype=np.int64)
        T[0], V[0] = now, G
        grants = np.empty((G + 1, 3), dtype=np.int64)
        ends_left = np.empty(G + 1)
        NG0, FIRST, R0, NXT = (np.empty(nj, dtype=np.int64), np.empty(nj), np.empty(nj),
                               np.empty(nj))
        try:
            fin, NG, ng, ne = _plan_then_free(
                J.W, J.D, J.LV, J.RT, J.NL, float(now), T, V, G, float(S), J.AT, J.AG, J.AL,
                J.E, J.R, J.FEAS, artifact, *_scratch(cap, 2), grants, ends_left, NG0, FIRST,
                R0, NXT)
            break
        except CapacityError:
            cap *= 4
    cast = _time_caster(now, S)

    def opt(ts):  # inf -> None
        return [None if t == INF else t for t in _times(ts.tolist(), cast)]

    out = PlanFree()
    out.keys = keys
    out.gpus0 = NG0.tolist()
    out.first = opt(FIRST)
    out.real0 = _times(R0.tolist(), cast)
    out.gpus = NG.tolist()
    out.end = _times(J.E.tolist(), cast)
    out.real = _times(J.R.tolist(), cast)
    out.next = opt(NXT)
    out.order = [keys[i] for i in fin.tolist()]
    out.grants = [(keys[k], o, g) for k, o, g in grants[:ng].tolist()]
    out.ends_left = _times(ends_left[:ne].tolist(), cast)
    return out
