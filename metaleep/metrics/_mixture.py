"""scikit-learn's ``GaussianMixture`` posteriors for many small episodes at once; private.

N-LEEP fits ``GaussianMixture(n_components=k, covariance_type="full", random_state=seed)`` on
each episode's PCA scores and reads ``predict_proba``. On few-shot episodes (5 to 100 samples,
a handful of dimensions) scikit-learn spends almost all of its time in per-call overhead
(input validation, array-API dispatch, thread-pool control): about 2 ms per episode, 95 % of
a study's scoring. :func:`mixture_posteriors` computes the same thing for E episodes of one
shape with batched NumPy operations, following scikit-learn 1.x step by step:

1. ``KMeans(k, n_init=1, random_state=RandomState(seed))``: the data centred, k-means++
   seeding (first centre by ``choice(n, p=uniform)``, then ``2 + int(log k)`` candidates per
   centre drawn by ``uniform() * potential`` against the cumulative squared distances, the
   candidate with the least potential kept), Lloyd iterations (labels by the least
   ``||c||² - 2 x·c``, first on ties) until the labels repeat or the centres move by at most
   ``1e-4 * mean(var(X))`` (then relabelled against the last centres), at most 300;
2. EM from the k-means labels as responsibilities: ``nk = Σ resp + 10 eps``, means, full
   covariances ``+ 1e-6 I``, precision Cholesky factors; E-step
   ``log N(x | μ, Σ) + log w`` normalised by log-sum-exp; stop when the mean log-likelihood
   changes by less than ``1e-3`` (at most 100 iterations), then one more E-step;
3. the posteriors ``exp(log_resp)``.

The random numbers are the ones scikit-learn draws from ``RandomState(seed)`` (the first from
``choice``, then ``uniform`` in the same stream), so each episode follows scikit-learn's path;
the arithmetic is the same up to the order of floating-point sums, so the posteriors agree to
about 1e-12 (``tests/metrics/test_mixture.py``). The discrete decisions (which candidate,
which label, whether converged) could differ only where two quantities tie to the last bit.

Episodes on which scikit-learn would warn or fail are not computed here but flagged (``ok``
False) for the caller to hand to scikit-learn itself: fewer distinct samples than
components, an empty cluster in Lloyd's iterations, a covariance without a Cholesky factor,
no convergence within the iteration limits, non-finite posteriors.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["mixture_posteriors"]

KMEANS_MAX_ITER = 300
KMEANS_TOL = 1e-4
EM_MAX_ITER = 100
EM_TOL = 1e-3
REG_COVAR = 1e-6
_LOG_2PI = math.log(2 * math.pi)


def mixture_posteriors(
    points: np.ndarray, n_components: int, seeds: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """``GaussianMixture(k, "full", random_state=seed).fit(X).predict_proba(X)`` per episode.

    Parameters
    ----------
    points:
        float64 ``(E, n, d)``: E episodes of n samples in d dimensions (n >= k).
    n_components:
        k, the mixture size.
    seeds:
        int ``(E,)``: each episode's ``random_state``.

    Returns
    -------
    (numpy.ndarray, numpy.ndarray)
        Posteriors ``(E, n, k)`` and ``ok`` bool ``(E,)``; rows of episodes with ``ok`` False
        are meaningless (compute those with scikit-learn).

    Examples
    --------
    >>> from sklearn.mixture import GaussianMixture
    >>> x = np.random.default_rng(0).normal(size=(3, 12, 2))
    >>> post, ok = mixture_posteriors(x, 3, np.array([0, 1, 2]))
    >>> ref = GaussianMixture(3, random_state=1).fit(x[1]).predict_proba(x[1])
    >>> bool(ok.all()), bool(np.allclose(post[1], ref, rtol=0, atol=1e-10))
    (True, True)
    """
    points = np.asarray(points, dtype=np.float64)
    k = int(n_components)
    labels, ok = _kmeans(points, k, np.asarray(seeds))
    post, em_ok = _em(points, labels, k)
    return post, ok & em_ok & np.isfinite(post).all(axis=(1, 2))


def _assign(points: np.ndarray, centers: np.ndarray) -> np.ndarray:
    """Lloyd's labels: argmin over centres of ``||c||² - 2 x·c`` (first on ties); (E, n)."""
    squared = np.einsum("ekd,ekd->ek", centers, centers)
    distances = squared[:, None, :] - 2.0 * (points @ centers.transpose(0, 2, 1))
    return np.asarray(distances.argmin(axis=2))


def _kmeans_plusplus(x: np.ndarray, x_squared: np.ndarray, k: int, seeds: np.ndarray) -> np.ndarray:
    """k-means++ seeding of centred ``x`` (E, n, d) with scikit-learn's draws; indices (E, k)."""
    n_episodes, n, _ = x.shape
    episodes = np.arange(n_episodes)
    trials = 2 + int(np.log(k))
    state = np.random.RandomState()  # reseeded per episode: 30x cheaper than a new one
    draws = np.empty((n_episodes, 1 + (k - 1) * trials))
    for e, seed in enumerate(seeds):
        state.seed(int(seed))
        draws[e] = state.random_sample(draws.shape[1])
    weights = np.ones(n)
    cdf = (weights / weights.sum()).cumsum()
    cdf /= cdf[-1]
    chosen = np.empty((n_episodes, k), dtype=np.int64)
    chosen[:, 0] = np.searchsorted(cdf, draws[:, 0], side="right")

    def distances_to(ids: np.ndarray) -> np.ndarray:  # ids (E, T) -> (E, T, n), squared
        cand = x[episodes[:, None], ids]
        cand_sq = np.einsum("etd,etd->et", cand, cand)
        out = -2.0 * (cand @ x.transpose(0, 2, 1))
        out += cand_sq[:, :, None]
        out += x_squared[:, None, :]
        return np.asarray(np.maximum(out, 0.0))

    # Sums as matrix products with the sample weights, as scikit-learn computes them: exact
    # ties between candidates are common (two isolated nearby points give the same potential
    # whichever is chosen) and are broken by the rounding of these sums.
    ones = np.ones((n, 1))
    closest = distances_to(chosen[:, :1])[:, 0]  # (E, n)
    potential = (closest[:, None, :] @ ones)[:, 0, 0]
    for c in range(1, k):
        targets = draws[:, 1 + (c - 1) * trials : 1 + c * trials] * potential[:, None]
        cumulative = np.cumsum(closest, axis=1)
        ids = (cumulative[:, None, :] < targets[:, :, None]).sum(axis=2)  # searchsorted left
        ids = np.minimum(ids, n - 1)
        candidates = np.minimum(closest[:, None, :], distances_to(ids))  # (E, T, n)
        pots = (candidates @ ones)[:, :, 0]
        best = pots.argmin(axis=1)
        potential = pots[episodes, best]
        closest = candidates[episodes, best]
        chosen[:, c] = ids[episodes, best]
    return chosen


def _kmeans(points: np.ndarray, k: int, seeds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's ``KMeans(k, n_init=1)`` labels (E, n) and ``ok`` (E,)."""
    n_episodes, n, _ = points.shape
    episodes = np.arange(n_episodes)
    same = (points[:, :, None, :] == points[:, None, :, :]).all(axis=3)  # (E, n, n)
    repeats = np.tril(same, k=-1).any(axis=2).sum(axis=1)  # rows equal to an earlier row
    ok = n - repeats >= k  # fewer distinct samples than components: scikit-learn warns
    tol = np.var(points, axis=1).mean(axis=1) * KMEANS_TOL  # before centring, as sklearn
    x = points - points.mean(axis=1, keepdims=True)
    x_squared = np.einsum("end,end->en", x, x)

    chosen = _kmeans_plusplus(x, x_squared, k, seeds)
    centers = x[episodes[:, None], chosen]  # (E, k, d)

    # Lloyd's iterations, every episode until its own stopping rule.
    labels = np.full((n_episodes, n), -1)
    final = np.full((n_episodes, n), -1)
    active = ok.copy()
    for _ in range(KMEANS_MAX_ITER):
        if not active.any():
            break
        new_labels = _assign(x, centers)
        onehot = np.eye(k)[new_labels]  # (E, n, k)
        counts = onehot.sum(axis=1)  # (E, k)
        empty = (counts == 0).any(axis=1)
        ok &= ~(active & empty)  # scikit-learn relocates empty clusters: not handled here
        active &= ~empty
        sums = onehot.transpose(0, 2, 1) @ x
        new_centers = sums / np.where(counts > 0, counts, 1.0)[:, :, None]
        shift = np.sqrt(((new_centers - centers) ** 2).sum(axis=2))
        strict = (new_labels == labels).all(axis=1) & active
        moved_little = ((shift**2).sum(axis=1) <= tol) & active & ~strict
        final[strict] = new_labels[strict]
        centers = np.where(active[:, None, None], new_centers, centers)
        if moved_little.any():
            final[moved_little] = _assign(x[moved_little], centers[moved_little])
        active &= ~(strict | moved_little)
        labels = new_labels
    ok &= ~active  # not converged within KMEANS_MAX_ITER
    return np.where(ok[:, None], final, 0), ok


def _parameters(points: np.ndarray, resp: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``nk`` (E, k), means (E, k, d), covariances (E, k, d, d) as scikit-learn estimates them."""
    nk = resp.sum(axis=1) + 10 * np.finfo(np.float64).eps
    means = (resp.transpose(0, 2, 1) @ points) / nk[:, :, None]
    diff = points[:, None, :, :] - means[:, :, None, :]  # (E, k, n, d)
    weighted = resp.transpose(0, 2, 1)[:, :, :, None] * diff
    covariances = weighted.transpose(0, 1, 3, 2) @ diff / nk[:, :, None, None]
    dim = points.shape[2]
    covariances[..., np.arange(dim), np.arange(dim)] += REG_COVAR
    return nk, means, covariances


def _precision_cholesky(covariances: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``inv(cholesky(Σ)).T`` per component, and ``ok`` per episode (a factor exists)."""
    n_episodes, _, dim, _ = covariances.shape
    ok = np.ones(n_episodes, dtype=bool)
    try:
        factors = np.linalg.cholesky(covariances)
    except np.linalg.LinAlgError:
        factors = np.empty_like(covariances)
        for e in range(n_episodes):
            try:
                factors[e] = np.linalg.cholesky(covariances[e])
            except np.linalg.LinAlgError:
                factors[e] = np.eye(dim)
                ok[e] = False
    eye = np.broadcast_to(np.eye(dim), covariances.shape)
    return np.linalg.solve(factors, eye).transpose(0, 1, 3, 2), ok


def _e_step(
    points: np.ndarray, weights: np.ndarray, means: np.ndarray, precision: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Mean log-likelihood (E,) and log responsibilities (E, n, k)."""
    dim = points.shape[2]
    log_det = np.log(np.diagonal(precision, axis1=2, axis2=3)).sum(axis=2)  # (E, k)
    y = points[:, None, :, :] @ precision - (means[:, :, None, :] @ precision)  # (E, k, n, d)
    log_prob = (y**2).sum(axis=3).transpose(0, 2, 1)  # (E, n, k)
    weighted = -0.5 * (dim * _LOG_2PI + log_prob) + log_det[:, None, :]
    weighted += np.log(weights)[:, None, :]
    top = weighted.max(axis=2, keepdims=True)
    top = np.where(np.isfinite(top), top, 0.0)
    with np.errstate(divide="ignore"):
        norm = np.log(np.exp(weighted - top).sum(axis=2)) + top[:, :, 0]
    with np.errstate(under="ignore", invalid="ignore"):
        log_resp = weighted - norm[:, :, None]
    return norm.mean(axis=1), log_resp


def _em(points: np.ndarray, labels: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """EM from k-means labels; posteriors (E, n, k) and ``ok`` (E,)."""
    n_episodes, n, _ = points.shape
    nk, means, covariances = _parameters(points, np.eye(k)[labels])
    weights = nk / n
    precision, ok = _precision_cholesky(covariances)
    lower = np.full(n_episodes, -np.inf)
    active = ok.copy()
    for _ in range(EM_MAX_ITER):
        if not active.any():
            break
        mean_log, log_resp = _e_step(points, weights, means, precision)
        nk, new_means, new_cov = _parameters(points, np.exp(log_resp))
        new_weights = nk / nk.sum(axis=1, keepdims=True)
        new_precision, factor_ok = _precision_cholesky(new_cov)
        ok &= ~(active & ~factor_ok)
        active &= factor_ok
        keep = active[:, None]
        weights = np.where(keep, new_weights, weights)
        means = np.where(keep[:, :, None], new_means, means)
        precision = np.where(keep[:, :, None, None], new_precision, precision)
        with np.errstate(invalid="ignore"):
            converged = np.abs(mean_log - lower) < EM_TOL
        lower = np.where(active, mean_log, lower)
        active &= ~converged
    ok &= ~active  # not converged within EM_MAX_ITER: scikit-learn warns
    _, log_resp = _e_step(points, weights, means, precision)
    with np.errstate(under="ignore"):
        return np.exp(log_resp), ok
