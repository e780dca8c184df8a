"""Fused CPU kernels for the probability metrics (LEEP, NCE), compiled with numba; private.

Stock torch ops pay a fixed cost per op and per row that dominates on few-shot episodes (rows of
5 to 64 probabilities): batched LEEP in torch made about 12 passes' worth of memory traffic.
These kernels take one episode at a time and do all of its work while its rows are in cache:

- LEEP: the joint P(y, z) (and, when asked, each row's sum and the column minima the checks
  need) in one pass over the episode's rows, P(y | z) in place, then Σ_z P(y_i | z) θ(x_i)_z for
  every row, whose logs are summed as a running product (one log per ~200 rows instead of one
  per row; rescaled long before it could underflow or overflow).
- NCE: the argmax of each row and the (y, z) cell counts, with Σ c log c kept up to date as
  each count grows (no scan of the C x Z table).

On episodes of a few kilobytes the second pass reads from cache, so the input is read from
memory about once; one large episode (n = 50,000, Z = 1,000) is read twice. Each kernel is
compiled on first use and cached on disk by numba (``cache=True``).

All inputs are C-contiguous numpy arrays; ``groups`` is :attr:`Episodes.groups`: row r of
episode e has group ``e * C + code``, or ``E * C`` outside the mask. Rows are episode-major,
``n`` per episode.
"""

from __future__ import annotations

import math

import numba
import numpy as np

__all__ = ["leep_log_sums", "nce_sums"]

_FASTMATH = {"reassoc", "contract", "nsz"}
"""Reassociation lets LLVM vectorise the sums and dot products (rounding at the 1e-16 level);
no ``nnan``/``ninf``: non-finite values must propagate into the row sums the checks read."""

_jit = numba.njit(cache=True, fastmath=_FASTMATH, nogil=True, boundscheck=False)


@numba.njit(fastmath=_FASTMATH, inline="always")
def _leep_body(
    values: np.ndarray,
    groups: np.ndarray,
    n_ep: int,
    n_codes: int,
    n_src: int,
    row_sums: np.ndarray,
) -> tuple[np.ndarray, float]:
    n_rows = values.shape[0] // n_ep
    dump = n_ep * n_codes
    check = row_sums.shape[0] > 0
    out = np.zeros(n_ep)
    joint = np.zeros((n_codes, n_src))
    inv = np.empty(n_src)
    mins = np.full(n_src, np.inf)
    for e in range(n_ep):
        lo = e * n_rows
        base = e * n_codes
        joint[:] = 0.0
        # Pass 1: the joint (unnormalised; 1/n cancels in P(y | z)), row sums, minima.
        for i in range(lo, lo + n_rows):
            g = groups[i]
            if g == dump:
                continue
            c = g - base
            if check:
                total = 0.0
                for z in range(n_src):
                    p = values[i, z]
                    joint[c, z] += p
                    total += p
                    mins[z] = min(mins[z], p)
                row_sums[i] = total
            else:
                for z in range(n_src):
                    joint[c, z] += values[i, z]
        # P(y | z) = P(y, z) / P(z); a source label without mass gets 0 (its terms vanish).
        inv[:] = 0.0
        present = 0
        for c in range(n_codes):
            mass = 0.0
            for z in range(n_src):
                inv[z] += joint[c, z]
                mass += joint[c, z]
            present += mass > 0.0
        if present == 1:
            continue  # one target class: LEEP = log 1 = 0 exactly (out[e] stays 0)
        for z in range(n_src):
            inv[z] = 1.0 / inv[z] if inv[z] > 0.0 else 0.0
        for c in range(n_codes):
            for z in range(n_src):
                joint[c, z] *= inv[z]
        # Pass 2 (from cache unless the episode is large): Σ_z P(y_i | z) θ(x_i)_z, whose
        # logs are summed as the log of a running product, rescaled far from under/overflow.
        log_sum = 0.0
        product = 1.0
        for i in range(lo, lo + n_rows):
            g = groups[i]
            if g == dump:
                continue
            c = g - base
            expected = 0.0
            for z in range(n_src):
                expected += values[i, z] * joint[c, z]
            product *= expected
            if not 1e-200 < product < 1e200:  # also ends a NaN product (no comparison holds)
                log_sum += math.log(product)
                product = 1.0
        out[e] = log_sum + math.log(product)
    return out, mins.min() if check else 0.0


@_jit
def _leep_kernel(
    values: np.ndarray, groups: np.ndarray, n_ep: int, n_codes: int, row_sums: np.ndarray
) -> tuple[np.ndarray, float]:
    # Up to 8 source labels, the row length is a compile-time constant: the loops over a
    # row unroll (1.6x faster at Z = 5); beyond that they vectorise anyway.
    n_src = values.shape[1]
    if n_src == 2:
        return _leep_body(values, groups, n_ep, n_codes, 2, row_sums)
    if n_src == 3:
        return _leep_body(values, groups, n_ep, n_codes, 3, row_sums)
    if n_src == 4:
        return _leep_body(values, groups, n_ep, n_codes, 4, row_sums)
    if n_src == 5:
        return _leep_body(values, groups, n_ep, n_codes, 5, row_sums)
    if n_src == 6:
        return _leep_body(values, groups, n_ep, n_codes, 6, row_sums)
    if n_src == 7:
        return _leep_body(values, groups, n_ep, n_codes, 7, row_sums)
    if n_src == 8:
        return _leep_body(values, groups, n_ep, n_codes, 8, row_sums)
    return _leep_body(values, groups, n_ep, n_codes, n_src, row_sums)


@_jit
def _nce_kernel(
    values: np.ndarray,
    groups: np.ndarray,
    n_ep: int,
    n_codes: int,
    row_sums: np.ndarray,
    argmax: np.ndarray,
) -> tuple[np.ndarray, float]:
    n_total, n_src = values.shape
    n_rows = n_total // n_ep
    dump = n_ep * n_codes
    check = row_sums.shape[0] > 0
    out = np.zeros(n_ep)
    cells = np.zeros((n_codes, n_src), dtype=np.int64)
    per_source = np.zeros(n_src, dtype=np.int64)
    hard = np.empty(n_rows, dtype=np.int64)
    # x log x of the counts 0..n (0 log 0 = 0).
    xlogx = np.zeros(n_rows + 1)
    for k in range(2, n_rows + 1):
        xlogx[k] = k * math.log(k)
    mins = np.full(n_src, np.inf)
    given = argmax.shape[0] > 0
    for e in range(n_ep):
        lo = e * n_rows
        base = e * n_codes
        within = 0.0
        across = 0.0
        for i in range(n_rows):
            g = groups[lo + i]
            if g == dump:
                continue
            if given:
                best = argmax[lo + i]
            else:
                # The first maximum on ties, like torch.max and np.argmax.
                best = 0
                top = values[lo + i, 0]
                for z in range(1, n_src):
                    if values[lo + i, z] > top:
                        top = values[lo + i, z]
                        best = z
            if check:
                total = 0.0
                for z in range(n_src):
                    p = values[lo + i, z]
                    total += p
                    mins[z] = min(mins[z], p)
                row_sums[lo + i] = total
            hard[i] = best
            c = g - base
            k = cells[c, best]
            within += xlogx[k + 1] - xlogx[k]
            cells[c, best] = k + 1
            k = per_source[best]
            across += xlogx[k + 1] - xlogx[k]
            per_source[best] = k + 1
        # n NCE = Σ_{y,z} c(y,z) log c(y,z) - Σ_z c(z) log c(z); reset the touched counts.
        out[e] = within - across
        for i in range(n_rows):
            g = groups[lo + i]
            if g != dump:
                cells[g - base, hard[i]] = 0
                per_source[hard[i]] = 0
    return out, mins.min() if check else 0.0


_NUMPY_ARGMAX_MIN_SOURCE = 32


def leep_log_sums(
    values: np.ndarray,
    groups: np.ndarray,
    n_ep: int,
    n_codes: int,
    *,
    check: bool,
) -> tuple[np.ndarray, np.ndarray | None, float]:
    """Σ_i log Σ_z P(y_i | z) θ(x_i)_z per episode, with the row sums and minimum if ``check``.

    ``values`` is ``(E * n, Z)`` probabilities. Returns ``(log_sums (E,), row_sums (E * n,) or
    None, minimum)``; row sums outside the mask are 1.
    """
    row_sums = np.ones(values.shape[0] if check else 0)
    log_sums, minimum = _leep_kernel(values, groups, n_ep, n_codes, row_sums)
    return log_sums, (row_sums if check else None), float(minimum)


def nce_sums(
    values: np.ndarray, groups: np.ndarray, n_ep: int, n_codes: int, *, check: bool
) -> tuple[np.ndarray, np.ndarray | None, float]:
    """n · NCE per episode (Σ c log c - Σ_z c_z log c_z), with row sums and minimum if ``check``.

    ``values`` is ``(E * n, Z)`` probabilities or logits (the argmax is the same). From
    ``_NUMPY_ARGMAX_MIN_SOURCE`` labels up, the argmax is numpy's (vectorised; the kernel's
    scalar loop took 2.7x as long with Z = 1,000); the kernel then counts and checks.
    """
    row_sums = np.ones(values.shape[0] if check else 0)
    argmax = np.empty(0, dtype=np.int64)
    if values.shape[1] >= _NUMPY_ARGMAX_MIN_SOURCE:
        argmax = values.argmax(axis=1)
    sums, minimum = _nce_kernel(values, groups, n_ep, n_codes, row_sums, argmax)
    return sums, (row_sums if check else None), float(minimum)
