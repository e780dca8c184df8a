"""Naive reference implementations of the metrics, written from the equations of the notes.

Plain Python loops and explicit matrices, deliberately unlike metaleep's implementation (no
torch, no batching, no SVD tricks), so that agreement between the two means something. Slow:
use on small inputs only. Also the public test vectors V1, V2, V3 of the notes.
"""

from __future__ import annotations

import math

import numpy as np


def encode(labels: np.ndarray) -> tuple[np.ndarray, int]:
    """Labels re-encoded to 0..C-1 in sorted order of their ids."""
    ids = sorted({int(v) for v in labels})
    index = {v: i for i, v in enumerate(ids)}
    return np.array([index[int(v)] for v in labels], dtype=np.int64), len(ids)


def leep_ref(probs: np.ndarray, labels: np.ndarray) -> float:
    """LEEP from its definition; zero-mass source labels contribute 0; one class gives 0."""
    y, n_classes = encode(labels)
    n, n_src = probs.shape
    if n_classes == 1:
        return 0.0
    joint = [[0.0] * n_src for _ in range(n_classes)]
    for i in range(n):
        for z in range(n_src):
            joint[y[i]][z] += probs[i, z] / n
    marginal = [sum(joint[c][z] for c in range(n_classes)) for z in range(n_src)]
    total = 0.0
    for i in range(n):
        expected = 0.0
        for z in range(n_src):
            if marginal[z] > 0:
                expected += joint[y[i]][z] / marginal[z] * probs[i, z]
        total += math.log(expected)
    return total / n


def argmax_first(row: np.ndarray) -> int:
    """Index of the first maximum."""
    best = 0
    for z in range(1, len(row)):
        if row[z] > row[best]:
            best = z
    return best


def nce_ref(probs: np.ndarray, labels: np.ndarray) -> float:
    """NCE = sum_{y,z} P(y,z) log P(y|z) over the hard predictions."""
    y, _ = encode(labels)
    n = len(y)
    counts: dict[tuple[int, int], int] = {}
    per_source: dict[int, int] = {}
    for i in range(n):
        z = argmax_first(probs[i])
        counts[(int(y[i]), z)] = counts.get((int(y[i]), z), 0) + 1
        per_source[z] = per_source.get(z, 0) + 1
    return sum(c / n * math.log(c / per_source[z]) for (_, z), c in counts.items())


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(1, keepdims=True)
    e = np.exp(shifted)
    return e / e.sum(1, keepdims=True)


def entropy_of_labels(labels: np.ndarray) -> float:
    """Empirical entropy H(Y) of the labels (natural log)."""
    _, counts = np.unique(labels, return_counts=True)
    p = counts / counts.sum()
    return float(-(p * np.log(p)).sum())


def h_score_ref(features: np.ndarray, labels: np.ndarray) -> float:
    """tr(pinv(cov f) cov g) with np.cov (unbiased) and pinv(rcond=1e-15), g by a loop."""
    y, n_classes = encode(labels)
    g = np.zeros_like(features)
    for c in range(n_classes):
        rows = [i for i in range(len(y)) if y[i] == c]
        mean = features[rows].sum(0) / len(rows)
        for i in rows:
            g[i] = mean
    cov_f = np.cov(features, rowvar=False).reshape(features.shape[1], -1)
    cov_g = np.cov(g, rowvar=False).reshape(features.shape[1], -1)
    return float(np.trace(np.linalg.pinv(cov_f, rcond=1e-15) @ cov_g))


def logme_ref(features: np.ndarray, labels: np.ndarray) -> float:
    """LogME with explicit D x D matrices: A = a I + b F'F, m = b A^-1 F'y, log|A| by slogdet.

    Fixed point as in the notes (and the authors' code): a = b = 1, at most 11 updates, stop at
    relative change <= 1e-3 of a/b, 1e-5 added to the denominators; evidence at the last
    update (with m'm and |Fm - y|^2 of the (a, b) that produced it).
    """
    y, n_classes = encode(labels)
    n, dim = features.shape
    gram = features.T @ features
    eig = np.linalg.eigvalsh(gram)
    evidences = []
    for c in range(n_classes):
        target = (y == c).astype(np.float64)
        alpha, beta = 1.0, 1.0
        for _ in range(11):
            a_mat = alpha * np.eye(dim) + beta * gram
            m = beta * np.linalg.solve(a_mat, features.T @ target)
            gamma = sum(beta * s / (alpha + beta * s) for s in eig)
            m2 = float(m @ m)
            res2 = float(((features @ m - target) ** 2).sum())
            t = alpha / beta
            alpha = gamma / (m2 + 1e-5)
            beta = (n - gamma) / (res2 + 1e-5)
            if abs(alpha / beta - t) / t <= 1e-3:
                break
        a_mat = alpha * np.eye(dim) + beta * gram
        _, log_det = np.linalg.slogdet(a_mat)
        evidence = (
            n / 2 * math.log(beta)
            + dim / 2 * math.log(alpha)
            - n / 2 * math.log(2 * math.pi)
            - beta / 2 * res2
            - alpha / 2 * m2
            - 0.5 * log_det
        )
        evidences.append(evidence / n)
    return float(np.mean(evidences))


def nleep_ref(
    features: np.ndarray, labels: np.ndarray, *, n_components: int | None = None, seed: int = 0
) -> float:
    """N-LEEP with scikit-learn's PCA(0.8) and GaussianMixture, then :func:`leep_ref`."""
    from sklearn.decomposition import PCA
    from sklearn.mixture import GaussianMixture

    _, n_classes = encode(labels)
    order = sorted(range(len(labels)), key=lambda i: tuple(features[i]))  # canonical order
    features, labels = features[order], np.asarray(labels)[order]
    pca = PCA(n_components=0.8, svd_solver="full")
    reduced = pca.fit_transform(features)
    # In units of the first component's (biased) standard deviation, as metaleep does.
    reduced /= np.sqrt(pca.explained_variance_[0] * (len(labels) - 1) / len(labels))
    k = max(1, min(n_components or 5 * n_classes, len(labels) // 2))
    mixture = GaussianMixture(n_components=k, random_state=seed).fit(reduced)
    return leep_ref(mixture.predict_proba(reduced), labels)


# ----------------------------------------------------------------------------- test vectors


def make_random(
    seed: int, n: int, n_src: int, n_classes: int, dim: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The notes' generator of random test vectors: ``(probs, labels, features)``."""
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.arange(n) % n_classes)
    logits = 2.0 * rng.normal(size=(n, n_src)) + 3.0 * rng.normal(size=(n_classes, n_src))[labels]
    probs = softmax(logits)
    features = rng.normal(size=(n, dim)) + 1.5 * rng.normal(size=(n_classes, dim))[labels]
    return probs, labels, features


def make_degenerate(
    seed: int, n: int = 50, n_src: int = 6, n_classes: int = 3, dim: int = 8
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The notes' degenerate vector: source label 0 has zero mass in every row."""
    rng = np.random.default_rng(seed)
    probs = softmax(rng.normal(size=(n, n_src)))
    probs[:, 0] = 0.0
    probs /= probs.sum(1, keepdims=True)
    if n_classes == 1:
        labels = np.zeros(n, dtype=np.int64)
    else:
        labels = rng.permutation(np.arange(n) % n_classes)
    features = rng.normal(size=(n, dim))
    return probs, labels, features


VECTORS = {
    "V1": make_random(0, 200, 10, 5, 16),
    "V2": make_random(1, 500, 64, 5, 32),
    "V3": make_degenerate(4),
}
"""The public test vectors of the notes."""

EXPECTED = {
    "V1": {
        "leep": -0.6046478723607934,
        "nce": -0.5842912432797144,
        "h_score": 3.2387022789669766,
        "logme": 0.11207391913932715,
    },
    "V2": {
        "leep": -0.3160978116279715,
        "nce": -0.19541035424867503,
        "h_score": 3.722384489768358,
        "logme": 0.5617593644682397,
    },
    "V3": {
        "leep": -1.0881116926151584,
        "nce": -1.0402518103351734,
        "h_score": 0.26940505865257247,
        "logme": -0.8700182714812933,
    },
}
"""Values of the notes' table (float64 reference implementations)."""


def random_episode(
    rng: np.random.Generator, n: int, n_src: int, n_classes: int, dim: int, *, sharp: float = 2.0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A random episode with every class present: ``(probs, labels, features)``."""
    labels = rng.permutation(np.arange(n) % n_classes)
    logits = sharp * rng.normal(size=(n, n_src)) + 2.0 * rng.normal(size=(n_classes, n_src))[labels]
    features = rng.normal(size=(n, dim)) + 2.0 * rng.normal(size=(n_classes, dim))[labels]
    return softmax(logits), labels, features


BAD_PROB_ROWS = [
    ([0.5, 0.6, 0.0], "`probs[1, 2].sum()` must be 1 within an absolute tolerance of 1e-06"),
    ([1.5, -0.5, 0.0], "`probs[1, 2, 1]` must be non-negative"),
    ([np.nan, 0.5, 0.5], "`probs[1, 2, 0]` must be finite; got nan."),
    ([np.inf, 0.0, 0.0], "`probs[1, 2, 0]` must be finite; got inf."),
]
"""Row 2 of episode 1 that fails each probability check, and the start of the message."""


def separate_check_and_deferred(probs: np.ndarray, labels: np.ndarray, metric: str, msg: str):
    """The message of the separate probability checks on a bad batch (which must start with
    ``msg``), and the same batch with the checks deferred to the metric."""
    import re

    import pytest

    from metaleep.metrics._validation import episodes

    with pytest.raises(ValueError, match=re.escape(msg)) as separate:
        episodes(probs, labels, name="probs", kind="probs", metric=metric, single=False)
    ep = episodes(
        probs,
        labels,
        name="probs",
        kind="probs",
        metric=metric,
        single=False,
        defer_probs_check=True,
    )
    assert ep.probs_unchecked
    return str(separate.value), ep


# ----------------------------------------------------------------------------- after LEEP
# Naive references of the metrics that came after LEEP, written from the papers and the public
# code's documented behaviour (explicit d x d matrices, loops over classes and pairs, scipy
# and scikit-learn where the public code uses them), labels re-encoded first.


def shrinkage_h_score_ref(features: np.ndarray, labels: np.ndarray) -> float:
    """TLlib's regularized_h_score: LedoitWolf on centred features, np.cov of class means."""
    from sklearn.covariance import LedoitWolf

    y, n_classes = encode(labels)
    f = features - features.mean(0, keepdims=True)
    fitted = LedoitWolf(assume_centered=False).fit(f)
    alpha = fitted.shrinkage_
    g = np.zeros_like(f)
    for c in range(n_classes):
        g[y == c] = f[y == c].mean(0)
    cov_g = np.cov(g, rowvar=False).reshape(f.shape[1], -1)
    pinv = np.linalg.pinv(fitted.covariance_, rcond=1e-15)
    return float(np.trace(pinv @ ((1 - alpha) * cov_g)))


def gbc_ref(features: np.ndarray, labels: np.ndarray, gaussian: str = "spherical") -> float:
    """GBC over ordered class pairs, with np.var (÷ n_c) floored at 1e-4."""
    y, n_classes = encode(labels)
    stats = []
    for c in range(n_classes):
        rows = features[y == c]
        stats.append((rows.mean(0), np.maximum(rows.var(0), 1e-4)))
    total = 0.0
    for c1 in range(n_classes):
        for c2 in range(n_classes):
            if c1 == c2:
                continue
            mu1, var1 = stats[c1]
            mu2, var2 = stats[c2]
            if gaussian == "spherical":
                var1, var2 = np.mean(var1), np.mean(var2)
            avg = (var1 + var2) / 2
            first = np.sum((mu1 - mu2) ** 2 / avg) / 8
            second = np.sum(np.log(avg)) - 0.5 * np.sum(np.log(var1)) - 0.5 * np.sum(np.log(var2))
            total += math.exp(-(first + 0.5 * second))
    return -total


def _coding_rate_tllib(z: np.ndarray) -> float:
    n, dim = z.shape
    return 0.5 * np.linalg.slogdet(np.eye(dim) + z.T @ z / (n * 1e-4))[1]


def transrate_ref(features: np.ndarray, labels: np.ndarray, variant: str = "authors") -> float:
    """TransRate with explicit d x d matrices: slogdet (TLlib) or eigvalsh (the authors')."""
    y, n_classes = encode(labels)
    if n_classes == 1:
        return 0.0
    if variant == "tllib":
        z = features - features.mean(0, keepdims=True)
        rates = [_coding_rate_tllib(z[y == c]) for c in range(n_classes)]
        return float(_coding_rate_tllib(z) - sum(rates) / n_classes)
    z = features / np.linalg.norm(features, axis=1, keepdims=True)
    z = z - z.mean(0, keepdims=True)
    z = z / np.linalg.norm(z, axis=1, keepdims=True)
    n = len(z)
    cov = z.T @ z / n
    total = np.linalg.eigvalsh(cov).sum()
    rank = np.linalg.matrix_rank(cov)

    def rate(matrix: np.ndarray) -> float:
        eig = np.clip(np.linalg.eigvalsh(matrix) / total, 0.0, None)
        return float(np.sum(np.log(1 + eig / 1e-4)) / rank)

    within = 0.0
    for c in range(n_classes):
        zc = z[y == c]
        within += len(zc) / n * rate(zc.T @ zc / len(zc))
    return 0.5 * rate(cov) - 0.5 * within


def _power_iteration(a: np.ndarray) -> float:
    x = a.sum(axis=1)
    for _ in range(3):
        t = a @ x
        y = t / np.linalg.norm(t)
        t = a @ y
        x = t / np.linalg.norm(t)
    return float(x @ a @ y)


def _sfda_fit(
    x: np.ndarray, y: np.ndarray, n_classes: int, shrinkage: float | None
) -> tuple[np.ndarray, float]:
    """The published SFDA class: shrinkage LDA through scipy's generalised eigh."""
    import scipy.linalg

    n, dim = x.shape
    priors = np.bincount(y, minlength=n_classes) / n
    means = np.stack([x[y == c].mean(0) for c in range(n_classes)])
    within = np.zeros((dim, dim))
    for c in range(n_classes):
        within += priors[c] * np.atleast_2d(np.cov(x[y == c].T, bias=True))
    if shrinkage is None:
        shrinkage = max(math.exp(-5 * _power_iteration(within)), 1e-10)
    total = np.atleast_2d(np.cov(x.T, bias=True))
    total = (1 - shrinkage) * total + shrinkage * np.trace(total) / dim * np.eye(dim)
    shrunk = (1 - shrinkage) * within + shrinkage * np.trace(within) / dim * np.eye(dim)
    evals, evecs = scipy.linalg.eigh(total - shrunk, shrunk)
    evecs = evecs[:, np.argsort(evals)[::-1]]
    coef = means @ evecs @ evecs.T
    intercept = -0.5 * np.diag(means @ coef.T) + np.log(priors)
    return softmax(x @ coef.T + intercept), shrinkage


def sfda_ref(features: np.ndarray, labels: np.ndarray) -> float:
    """SFDA_Score as published (on a copy): LDA, softmax of p, ConfMix, LDA with the same s."""
    y, n_classes = encode(labels)
    if n_classes == 1:
        return 1.0
    x = features.copy()
    n = len(y)
    probs, shrinkage = _sfda_fit(x, y, n_classes, None)
    probs = np.exp(probs) / np.exp(probs).sum(axis=1, keepdims=True)
    means = np.stack([x[y == c].mean(0) for c in range(n_classes)])
    others = (means.sum(0) - means) / (n_classes - 1)
    for c in range(n_classes):
        rows = np.where(y == c)[0]
        q = probs[rows, c][:, None]
        x[rows] = q * x[rows] + (1 - q) * others[c]
    probs, _ = _sfda_fit(x, y, n_classes, shrinkage)
    return float(probs[np.arange(n), y].mean())


def centroid_loo_ref(features: np.ndarray, labels: np.ndarray) -> float:
    """Leave-one-out nearest-centroid accuracy by explicit loops (no ties in random data)."""
    y, n_classes = encode(labels)
    n = len(y)
    correct = 0
    for i in range(n):
        others = [j for j in range(n) if j != i]
        best, best_class = math.inf, -1
        for c in range(n_classes):
            rows = [j for j in others if y[j] == c]
            if not rows:
                continue
            dist = float(((features[i] - features[rows].mean(0)) ** 2).sum())
            if dist < best:
                best, best_class = dist, c
        correct += best_class == y[i]
    return correct / n


def cosine_spread_ref(features: np.ndarray) -> float:
    """Mean over pairs i < j of 1 - cos(f_i, f_j), by explicit loops (zero rows: cosine 0)."""
    n = len(features)
    total, pairs = 0.0, 0
    for i in range(n):
        for j in range(i + 1, n):
            a, b = features[i], features[j]
            na, nb = math.sqrt(float(a @ a)), math.sqrt(float(b @ b))
            cos = 0.0 if na == 0 or nb == 0 else float(a @ b) / (na * nb)
            total += 1.0 - cos
            pairs += 1
    return total / pairs


EXPECTED_AFTER_LEEP = {
    "V1": {
        "shrinkage_h_score": 3.195533430153196,
        "gbc": -0.08266209570068841,
        "gbc_diagonal": -0.06753246334210201,
        "transrate": 0.23212407647455002,
        "transrate_tllib": 3.7735798808977847,
        "sfda": 0.9492653114085772,
    },
    "V2": {
        "shrinkage_h_score": 3.7159735652298083,
        "gbc": -3.1056022549319754e-05,
        "gbc_diagonal": -3.4646780510678156e-05,
        "transrate": 0.17629324154473203,
        "transrate_tllib": 5.69778412832693,
        "sfda": 0.9997906887849362,
    },
    "V3": {
        "shrinkage_h_score": 0.034518351080161214,
        "gbc": -5.393734491736126,
        "gbc_diagonal": -4.944049451635221,
        "transrate": 0.09855709662863177,
        "transrate_tllib": 0.945005801796654,
        "sfda": 0.3475844175477686,
    },
}
"""Values of the notes' table "Metrics after LEEP" (float64 public implementations)."""
