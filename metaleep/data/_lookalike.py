"""How alike two glyph classes look: the similarity behind look-alike removal and clusters.

Shared by the bank builder (``tools/build_glyph_bank.py``) and the tests that check the bank.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence

import numpy as np

#: At most this many renders of a class (spread evenly over its faces) enter the similarity.
MAX_RENDERS = 16
#: Prototypes are summed over 2x2 blocks (64x64 -> 32x32) before comparing.
POOL = 2


def face_key(name: str) -> int:
    """A stable pseudo-random key of a face (CRC-32 of its file name).

    >>> face_key("DejaVuSans.ttf")
    1090581051
    """
    return zlib.crc32(name.encode("utf-8"))


def render_subset(keys: Sequence[int] | np.ndarray) -> np.ndarray:
    """Indices of the renders (one per face, face keys ``keys``) that enter the similarity.

    The :data:`MAX_RENDERS` faces with the smallest keys, in their original order: two
    classes drawn in mostly the same faces are compared on mostly the same faces.

    >>> render_subset([5, 3, 9]).tolist()
    [0, 1, 2]
    >>> render_subset(list(range(40, 0, -1)))[:3].tolist()
    [24, 25, 26]
    """
    keys = np.asarray(keys, dtype=np.int64)
    if len(keys) <= MAX_RENDERS:
        return np.arange(len(keys))
    return np.sort(np.argsort(keys, kind="stable")[:MAX_RENDERS])


def pooled(renders: np.ndarray) -> np.ndarray:
    """(k, S, S) 0/1 renders -> (k, (S/2)^2) float32 block sums (small exact integers)."""
    k, s, _ = renders.shape
    sums = renders.reshape(k, s // POOL, POOL, s // POOL, POOL).sum(axis=(2, 4), dtype=np.int32)
    return sums.reshape(k, -1).astype(np.float32)


def lookalike_similarity(
    renders: Sequence[np.ndarray],
    face_keys: Sequence[Sequence[int] | np.ndarray] | None = None,
    *,
    block: int = 4096,
) -> np.ndarray:
    """Symmetric mean-of-best-match cosine between glyph classes.

    For classes a and b with renders (one per face) ``a_f`` and ``b_g``, pooled to 32x32,

    .. math:: d(a, b) = \\frac{1}{|a|} \\sum_f \\max_g \\cos(a_f, b_g), \\qquad
              s(a, b) = \\tfrac12 \\big(d(a, b) + d(b, a)\\big).

    ``s = 1`` when every render of each class has an identical render in the other (Latin
    ``o`` and Cyrillic ``о``); unlike the cosine of mean prototypes it does not grow when many
    different faces blur both means into blobs. Pooled renders hold small integers, so the
    float32 dot products are exact and the result does not depend on the BLAS in use.

    Parameters
    ----------
    renders:
        One array per class, shape (faces, S, S), values 0/1 (S even).
    face_keys:
        Per class, one :func:`face_key` per render. At most :data:`MAX_RENDERS` renders per
        class are used (:func:`render_subset`); without keys, the first ones.
    block:
        Rows of the render-by-render Gram matrix computed at once (memory bound).

    Returns
    -------
    ndarray
        (C, C) float64, symmetric, in [0, 1], diagonal 1.

    Examples
    --------
    >>> ring = np.zeros((8, 8), dtype=np.uint8); ring[1:7, 1:7] = 1; ring[3:5, 3:5] = 0
    >>> bar = np.zeros((8, 8), dtype=np.uint8); bar[:, 3:5] = 1
    >>> s = lookalike_similarity([ring[None], np.stack([ring, ring]), bar[None]])
    >>> np.round(s, 3).tolist()
    [[1.0, 1.0, 0.833], [1.0, 1.0, 0.833], [0.833, 0.833, 1.0]]
    """
    if face_keys is None:
        face_keys = [np.arange(len(r)) for r in renders]
    if len(face_keys) != len(renders):
        raise ValueError(
            f"`face_keys` must have one entry per class ({len(renders)}); got {len(face_keys)!r}."
        )
    chosen = [np.asarray(r)[render_subset(k)] for r, k in zip(renders, face_keys, strict=True)]
    if not chosen:
        return np.zeros((0, 0))
    owner = np.concatenate([np.full(len(r), i) for i, r in enumerate(chosen)])
    feats = np.concatenate([pooled(np.asarray(r, dtype=np.uint8)) for r in chosen])
    norms = np.sqrt(np.einsum("ij,ij->i", feats.astype(np.float64), feats.astype(np.float64)))
    starts = np.flatnonzero(np.r_[True, owner[1:] != owner[:-1]])
    n_classes, n_renders = len(chosen), len(feats)
    directed = np.empty((n_classes, n_classes))
    row = 0
    while row < n_renders:
        end = min(n_renders, row + block)
        while end < n_renders and owner[end] == owner[end - 1]:
            end += 1  # keep each class's renders in one block
        gram = (feats[row:end] @ feats.T).astype(np.float64)
        gram /= norms[row:end, None] * norms[None, :]
        best = np.maximum.reduceat(gram, starts, axis=1)  # (rows, C): best render per class
        local = np.flatnonzero(np.r_[True, owner[row + 1 : end] != owner[row : end - 1]])
        counts = np.diff(np.r_[local, end - row])
        directed[owner[row + local]] = np.add.reduceat(best, local, axis=0) / counts[:, None]
        row = end
    sim = 0.5 * (directed + directed.T)
    np.fill_diagonal(sim, 1.0)
    return np.clip(sim, 0.0, 1.0)
