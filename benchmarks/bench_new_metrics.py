"""The metrics after LEEP, batched, vs a per-episode numpy loop of their public references.

For 5-way 5-shot episodes (n = 25) with d = 32 and d = 64 features, 10,000 episodes each
(``--quick``: 500), in one process on one thread (``torch.set_num_threads(1)``, numpy's BLAS
limited to 1 thread with threadpoolctl):

- baseline: each metric as its public implementation computes it, for one episode, called in a
  Python loop (typed anew from the public code's documented behaviour: scikit-learn's
  ``LedoitWolf`` and ``np.linalg.pinv`` (shrinkage H-score, TLlib), per-class statistics and a
  loop over class pairs (GBC, google-research), ``slogdet`` / ``eigvalsh`` of d x d matrices
  (TransRate, the authors' and TLlib's), two shrinkage LDAs through scipy's generalised
  ``eigh`` (SFDA, TencentARC)); the centroid_loo baseline against a numpy loop over samples;
- metaleep: the batched function on the ``(E, n, d)`` float64 array (best of ``--repeats``).

Values are checked first: every looped episode's value must equal the batched one to 1e-9
relative (1e-12 absolute near 0). The loop runs over the first ``--loop-episodes`` episodes
(default 1,000; all of them with ``--loop-episodes 0``) and its time is scaled to E episodes:
it is a loop of independent calls, so its time is linear in E, and the full loop of the
slowest reference (SFDA) would take many minutes. Prints one line per (metric, d) with the
times for E episodes and the ratio.

Usage::

    python benchmarks/bench_new_metrics.py [--quick] [--episodes E] [--loop-episodes L]
                                           [--repeats R]
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Callable, Sequence

import numpy as np
import torch

# ----------------------------------------------------------------------------- baselines


def shrinkage_h_loop(f: np.ndarray, y: np.ndarray) -> float:
    """TLlib ``regularized_h_score`` (labels already 0..C-1)."""
    from sklearn.covariance import LedoitWolf

    f = f - f.mean(0, keepdims=True)
    fitted = LedoitWolf(assume_centered=False).fit(f)
    g = np.zeros_like(f)
    for c in range(int(y.max()) + 1):
        g[y == c] = f[y == c].mean(0)
    cov_g = np.cov(g, rowvar=False)
    pinv = np.linalg.pinv(fitted.covariance_, rcond=1e-15)
    return float(np.trace(pinv @ ((1 - fitted.shrinkage_) * cov_g)))


def gbc_loop(f: np.ndarray, y: np.ndarray) -> float:
    """google-research ``get_gbc_score`` (spherical): class statistics, then ordered pairs."""
    stats = {}
    for c in np.unique(y):
        rows = f[y == c]
        stats[c] = (rows.mean(0), np.maximum(rows.var(0), 1e-4))
    total = 0.0
    for c1 in stats:
        for c2 in stats:
            if c1 == c2:
                continue
            mu1, var1 = stats[c1][0], np.mean(stats[c1][1])
            mu2, var2 = stats[c2][0], np.mean(stats[c2][1])
            avg = (var1 + var2) / 2
            first = np.sum((mu1 - mu2) ** 2 / avg) / 8
            second = np.log(avg) - 0.5 * np.log(var1) - 0.5 * np.log(var2)
            total += math.exp(-(first + 0.5 * second))
    return -total


def transrate_loop(f: np.ndarray, y: np.ndarray) -> float:
    """Long-Kai/TransRate (non-projected): normalise, centre, normalise, eigenvalue rates."""
    z = f / np.linalg.norm(f, axis=1, keepdims=True)
    z = z - z.mean(0, keepdims=True)
    z = z / np.linalg.norm(z, axis=1, keepdims=True)
    n = len(z)
    cov = z.T @ z / n
    total = np.trace(cov)
    rank = np.linalg.matrix_rank(cov)

    def rate(matrix: np.ndarray) -> float:
        eig = np.clip(np.linalg.eigvalsh(matrix) / total, 0.0, None)
        return float(np.sum(np.log1p(eig / 1e-4)) / rank)

    within = sum(
        (y == c).sum() / n * rate(z[y == c].T @ z[y == c] / (y == c).sum()) for c in np.unique(y)
    )
    return 0.5 * rate(cov) - 0.5 * within


def transrate_tllib_loop(f: np.ndarray, y: np.ndarray) -> float:
    """TLlib ``transrate``: slogdet coding rates, unweighted mean over classes."""

    def rate(z: np.ndarray) -> float:
        n, d = z.shape
        return 0.5 * np.linalg.slogdet(np.eye(d) + z.T @ z / (n * 1e-4))[1]

    z = f - f.mean(0, keepdims=True)
    k = int(y.max()) + 1
    return rate(z) - sum(rate(z[y == c]) for c in range(k)) / k


def _sfda_fit(x: np.ndarray, y: np.ndarray, k: int, shrinkage: float | None):  # type: ignore[no-untyped-def]
    import scipy.linalg

    n, d = x.shape
    priors = np.bincount(y, minlength=k) / n
    means = np.stack([x[y == c].mean(0) for c in range(k)])
    within = sum(priors[c] * np.atleast_2d(np.cov(x[y == c].T, bias=True)) for c in range(k))
    if shrinkage is None:
        v = within.sum(axis=1)
        for _ in range(3):
            t = within @ v
            u = t / np.linalg.norm(t)
            t = within @ u
            v = t / np.linalg.norm(t)
        shrinkage = max(math.exp(-5 * float(v @ within @ u)), 1e-10)
    total = np.cov(x.T, bias=True)
    total = (1 - shrinkage) * total + shrinkage * np.trace(total) / d * np.eye(d)
    shrunk = (1 - shrinkage) * within + shrinkage * np.trace(within) / d * np.eye(d)
    _, evecs = scipy.linalg.eigh(total - shrunk, shrunk)
    coef = means @ evecs @ evecs.T
    scores = x @ coef.T - 0.5 * np.diag(means @ coef.T) + np.log(priors)
    scores = np.exp(scores - scores.max(1, keepdims=True))
    return scores / scores.sum(1, keepdims=True), shrinkage


def sfda_loop(f: np.ndarray, y: np.ndarray) -> float:
    """TencentARC/SFDA ``SFDA_Score`` (on a copy of the input)."""
    k = int(y.max()) + 1
    x = f.copy()
    probs, shrinkage = _sfda_fit(x, y, k, None)
    probs = np.exp(probs) / np.exp(probs).sum(axis=1, keepdims=True)
    means = np.stack([x[y == c].mean(0) for c in range(k)])
    others = (means.sum(0) - means) / (k - 1)
    q = probs[np.arange(len(y)), y][:, None]
    x = q * x + (1 - q) * others[y]
    probs, _ = _sfda_fit(x, y, k, shrinkage)
    return float(probs[np.arange(len(y)), y].mean())


def centroid_loo_loop(f: np.ndarray, y: np.ndarray) -> float:
    """Leave-one-out nearest-centroid accuracy, one sample at a time."""
    correct = 0
    sums = np.stack([f[y == c].sum(0) for c in range(int(y.max()) + 1)])
    counts = np.bincount(y)
    for i in range(len(y)):
        s, n = sums.copy(), counts.astype(float)
        s[y[i]] -= f[i]
        n[y[i]] -= 1
        ok = n > 0
        dist = np.where(ok, ((f[i] - s / np.maximum(n, 1)[:, None]) ** 2).sum(1), np.inf)
        correct += int(np.argmin(dist) == y[i])
    return correct / len(y)


CASES: list[tuple[str, dict[str, str], Callable[[np.ndarray, np.ndarray], float]]] = [
    ("shrinkage_h_score", {}, shrinkage_h_loop),
    ("gbc", {}, gbc_loop),
    ("transrate", {}, transrate_loop),
    ("transrate", {"variant": "tllib"}, transrate_tllib_loop),
    ("sfda", {}, sfda_loop),
    ("centroid_loo", {}, centroid_loo_loop),
]

# ----------------------------------------------------------------------------- driver


def _episodes(n_episodes: int, dim: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """5-way 5-shot feature episodes: class centres plus unit noise, labels 0..4."""
    rng = np.random.default_rng(seed)
    labels = np.tile(np.repeat(np.arange(5), 5), (n_episodes, 1))
    centres = rng.normal(size=(n_episodes, 5, dim))
    noise = rng.normal(size=(n_episodes, 25, dim))
    feats = 0.5 * np.take_along_axis(centres, labels[..., None], axis=1) + noise
    return feats, labels


def _best(fn: Callable[[], object], repeats: int) -> float:
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def main(argv: Sequence[str] | None = None) -> int:
    from metaleep.metrics import get_metric

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="500 episodes instead of 10,000")
    parser.add_argument("--episodes", type=int, default=None, help="episodes per shape")
    parser.add_argument(
        "--loop-episodes", type=int, default=1000, help="episodes of the timed loop (0: all)"
    )
    parser.add_argument("--repeats", type=int, default=3, help="best of R for metaleep")
    args = parser.parse_args(argv)
    n_episodes = args.episodes or (500 if args.quick else 10_000)
    torch.set_num_threads(1)
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)
    looped_n = min(n_episodes, args.loop_episodes or n_episodes)
    print(
        f"{n_episodes} episodes of 5-way 5-shot (n = 25), float64, 1 thread, torch "
        f"{torch.__version__}; loop timed on {looped_n} episodes and scaled"
    )
    header = ("metric", "d", "loop s", "metaleep s", "ratio", "max |diff|")
    print("{:28s} {:>3s} {:>9s} {:>11s} {:>8s} {:>11s}".format(*header))
    failed = 0
    for dim in (32, 64):
        feats, labels = _episodes(n_episodes, dim, seed=dim)
        for name, options, loop in CASES:
            spec = get_metric(name)
            looped = looped_n
            start = time.perf_counter()
            expected = np.array([loop(feats[e], labels[e]) for e in range(looped)])
            loop_s = (time.perf_counter() - start) * n_episodes / looped
            got = spec.score_batch(feats, labels, **options)[:looped]
            diff = float(np.max(np.abs(got - expected)))
            ok = np.allclose(got, expected, rtol=1e-9, atol=1e-12)
            failed += not ok
            batch_s = _best(
                lambda s=spec, o=options, x=feats, y=labels: s.score_batch(x, y, **o),
                args.repeats,
            )
            label = name + "".join(f" ({v})" for v in options.values())
            print(
                f"{label:28s} {dim:3d} {loop_s:9.3f} {batch_s:11.4f} {loop_s / batch_s:7.1f}x "
                f"{diff:11.1e}{'' if ok else '  VALUES DIFFER'}",
                flush=True,
            )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
