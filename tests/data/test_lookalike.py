"""The look-alike similarity (metaleep/data/_lookalike.py) against a naive reference."""

from __future__ import annotations

import re

import numpy as np
import pytest

from metaleep.data._lookalike import MAX_RENDERS, face_key, lookalike_similarity, render_subset


def _naive(renders, keys):
    def feats(r, k):
        chosen = sorted(np.argsort(np.asarray(k), kind="stable")[:MAX_RENDERS])
        out = []
        for i in chosen:
            x = r[i].astype(float)
            pooled = x.reshape(x.shape[0] // 2, 2, x.shape[1] // 2, 2).sum(axis=(1, 3))
            out.append(pooled.ravel())
        return out

    f = [feats(r, k) for r, k in zip(renders, keys, strict=True)]

    def cos(u, v):
        return u @ v / (np.linalg.norm(u) * np.linalg.norm(v))

    n = len(f)
    s = np.eye(n)
    for a in range(n):
        for b in range(n):
            if a != b:
                d_ab = np.mean([max(cos(u, v) for v in f[b]) for u in f[a]])
                d_ba = np.mean([max(cos(u, v) for v in f[a]) for u in f[b]])
                s[a, b] = (d_ab + d_ba) / 2
    return s


def test_matches_naive_on_random_classes():
    gen = np.random.default_rng(3)
    renders = [(gen.random((n, 12, 12)) < 0.3).astype(np.uint8) for n in (1, 3, 20, 5, 17, 2)]
    keys = [gen.integers(0, 2**32, len(r)) for r in renders]
    fast = lookalike_similarity(renders, keys, block=7)  # small blocks: several passes
    np.testing.assert_allclose(fast, _naive(renders, keys), atol=1e-12)
    np.testing.assert_allclose(fast, fast.T)


def test_identical_renders_are_one_and_subset_is_by_key():
    gen = np.random.default_rng(4)
    shared = (gen.random((MAX_RENDERS + 4, 8, 8)) < 0.4).astype(np.uint8)
    other = (gen.random((3, 8, 8)) < 0.4).astype(np.uint8)
    keys = np.arange(MAX_RENDERS + 4)[::-1]
    # class 1 has the same faces in another order: the same subset is chosen
    perm = gen.permutation(len(shared))
    s = lookalike_similarity([shared, shared[perm], other], [keys, keys[perm], [1, 2, 3]])
    assert s[0, 1] == pytest.approx(1.0) and s[0, 2] < 0.9
    assert render_subset(keys).tolist() == list(range(4, MAX_RENDERS + 4))


def test_face_key_is_stable_and_errors():
    assert face_key("NotoSans-Regular.ttf") == face_key("NotoSans-Regular.ttf")
    assert face_key("a.ttf") != face_key("b.ttf")
    message = "`face_keys` must have one entry per class (2); got 1."
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        lookalike_similarity([np.ones((1, 4, 4))] * 2, [[0]])
