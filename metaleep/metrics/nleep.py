"""N-LEEP (Li et al., CVPR 2021, "Ranking neural checkpoints"): LEEP on a Gaussian mixture.

The features are reduced by PCA to the fewest components that keep 80 % of their variance
(more than 80 %, as scikit-learn's ``PCA(0.8)``); a Gaussian mixture (scikit-learn, full
covariances, ``random_state=seed``) is fitted on them, and LEEP is computed with the mixture's
posterior probabilities in place of a source model's softmax. Higher is better. The PCA scores
are measured in units of the first component's standard deviation, so that N-LEEP does not
depend on the scale of the features (scikit-learn's absolute covariance floor, ``reg_covar``,
would otherwise make it).

Components: ``n_components`` defaults to 5·C (C classes present in the episode), the choice of
public implementations; the paper's default is not confirmed. The number used is clipped to
``max(1, n // 2)`` for n samples, default or not: a mixture with as many components as samples
gives each sample its own component, its posteriors are one-hot and N-LEEP is 0 whatever the
features; at least two samples per component on average keep the score informative. In
few-shot supports the clip binds: 5-way 1-shot (n = 5) uses 2 components, 5-way 5-shot
(n = 25) uses 12 instead of 25.

Features with zero variance (all samples equal) give posteriors that cannot depend on the
input: N-LEEP is then LEEP of an input-independent source, -H(Y), without fitting a mixture.

Stochastic through the mixture's k-means initialisation: a given ``seed`` reproduces the score;
in a batch every episode is fitted with the same ``seed`` (or with its own, when a sequence of
seeds is given), so a batch and per-episode calls agree. The initialisation also depends on
the order of the samples, so the mixture is fitted on them in a canonical (lexicographic)
order: N-LEEP does not depend on the sample order.

The mixture is scikit-learn's ``GaussianMixture`` (k-means initialisation, EM), computed for all
episodes of one shape at once by :func:`metaleep.metrics._mixture.mixture_posteriors`: the same
posteriors to about 1e-12, about 100x faster than one scikit-learn fit per few-shot episode
(whose cost is mostly per-call overhead). Episodes on which scikit-learn would warn or fail
are fitted by scikit-learn itself.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any

import numpy as np

from metaleep.metrics._validation import check_optional_positive_int, check_seed, message
from metaleep.metrics.spec import VALIDATE, Option, define_metric

if TYPE_CHECKING:
    import torch

    from metaleep.metrics._validation import Episodes

__all__ = ["nleep_score", "nleep_score_batch"]

VARIANCE_KEPT = 0.8
"""PCA keeps the fewest components whose explained variance exceeds this fraction."""
COMPONENTS_PER_CLASS = 5
"""Default mixture size per target class."""


def _pca_scores(feats: np.ndarray) -> list[np.ndarray | None]:
    """PCA projections keeping > 80 % of the variance, for a stack ``(E, n, d)`` of episodes.

    One batched SVD for the stack; ``None`` for an episode whose features do not vary.
    """
    centred = feats - feats.mean(1, keepdims=True)
    _, s, vh = np.linalg.svd(centred, full_matrices=False)
    n_rows, dim = feats.shape[1:]
    scale = np.maximum(np.abs(feats).max(axis=(1, 2)), np.finfo(np.float64).tiny)
    # Singular values at rounding level of the data are no variance at all.
    flat = s[:, 0] <= np.sqrt(n_rows * dim) * np.finfo(np.float64).eps * scale * 16
    first = np.where(flat, 1.0, s[:, 0])
    var = (s / first[:, None]) ** 2  # relative variances (no overflow)
    total = np.where(flat, 1.0, var.sum(axis=1))  # flat episodes: all zeros, unused
    ratio = np.cumsum(var, axis=1) / total[:, None]
    # Components up to the first whose cumulative share exceeds VARIANCE_KEPT (ratio rises).
    n_keep = np.minimum((ratio <= VARIANCE_KEPT).sum(axis=1) + 1, s.shape[1])
    # In units of the first component's standard deviation: the mixture's absolute covariance
    # floor (reg_covar = 1e-6) then means the same at every scale of the features.
    unit = first / np.sqrt(n_rows)
    out: list[np.ndarray | None] = []
    for e in range(feats.shape[0]):
        if flat[e]:
            out.append(None)
        else:
            out.append((centred[e] / unit[e]) @ vh[e, : n_keep[e]].T)
    return out


class NLeepConvergenceWarning(UserWarning):
    """An episode's Gaussian mixture stopped before EM converged (its posteriors are used)."""


def _components(n_rows: int, n_classes: int, n_components: int | None) -> int:
    """Mixture size: ``n_components`` or 5·C, clipped to ``max(1, n // 2)``."""
    k = n_components if n_components is not None else COMPONENTS_PER_CLASS * n_classes
    return max(1, min(k, n_rows // 2))


def _sklearn_posteriors(
    scores: np.ndarray, k: int, seed: int, shape: tuple[int, ...]
) -> np.ndarray:
    """scikit-learn's mixture posteriors ``(n, k)`` of PCA ``scores`` of features of ``shape``."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.mixture import GaussianMixture

    from metaleep.metrics._validation import message

    mixture = GaussianMixture(n_components=k, covariance_type="full", random_state=seed)
    try:
        with np.errstate(all="ignore"), warnings.catch_warnings(record=True) as caught:
            # scikit-learn's warnings are translated: fewer distinct samples than components is
            # a case N-LEEP handles (duplicate samples share a component), EM stopped before
            # converging is said in N-LEEP's words.
            warnings.simplefilter("always", ConvergenceWarning)
            post = np.asarray(mixture.fit(scores).predict_proba(scores), dtype=np.float64)
        for note in caught:
            if not issubclass(note.category, ConvergenceWarning):
                warnings.warn_explicit(note.message, note.category, note.filename, note.lineno)
            elif "did not converge" in str(note.message):
                warnings.warn(
                    f"nleep: the Gaussian mixture of an episode ({shape[0]} samples, {k} "
                    f"components) did not converge in {mixture.max_iter} EM iterations; its "
                    "last posteriors are used.",
                    NLeepConvergenceWarning,
                    stacklevel=5,
                )
    except (ValueError, FloatingPointError, np.linalg.LinAlgError) as e:
        expected = f"data a Gaussian mixture can fit in nleep (scikit-learn: {e})"
        raise ValueError(message("features", expected, shape)) from e
    if not np.all(np.isfinite(post)):
        expected = "data a Gaussian mixture can fit in nleep (non-finite posteriors)"
        raise ValueError(message("features", expected, shape))
    return post


def _all_posteriors(
    rows: list[np.ndarray], n_classes: list[int], n_components: int | None, seeds: np.ndarray
) -> list[np.ndarray]:
    """Mixture posteriors ``(n_e, K_e)`` of every episode's feature rows ``(n_e, d)``.

    Each episode is fitted on its samples in a canonical (lexicographic) order, so that the
    mixture, whose k-means initialisation depends on the order of the samples, does not.
    Episodes of one shape (n, PCA dimensions, components) are fitted together by
    :func:`metaleep.metrics._mixture.mixture_posteriors`, which computes scikit-learn's
    ``GaussianMixture`` posteriors (equal to about 1e-12) without its per-call overhead;
    episodes it flags (where scikit-learn would warn or fail) go to scikit-learn itself.
    """
    from metaleep.metrics._mixture import mixture_posteriors

    posts: list[np.ndarray] = [np.empty(0)] * len(rows)
    orders = [np.lexsort(feats.T[::-1]) for feats in rows]
    by_size: dict[int, list[int]] = {}
    for e, feats in enumerate(rows):
        by_size.setdefault(feats.shape[0], []).append(e)
    scores: dict[int, np.ndarray] = {}
    groups: dict[tuple[int, int, int], list[int]] = {}
    for n_rows, members in by_size.items():
        stack = np.stack([rows[e][orders[e]] for e in members])
        for e, projected in zip(members, _pca_scores(stack), strict=True):
            if projected is None:
                posts[e] = np.ones((n_rows, 1))
                continue
            scores[e] = projected
            k = _components(n_rows, n_classes[e], n_components)
            groups.setdefault((n_rows, projected.shape[1], k), []).append(e)
    for (_, _, k), members in groups.items():
        batch = np.stack([scores[e] for e in members])
        fitted, ok = mixture_posteriors(batch, k, seeds[members])
        for j, e in enumerate(members):
            if ok[j]:
                post = fitted[j]
            else:
                post = _sklearn_posteriors(batch[j], k, int(seeds[e]), rows[e].shape)
            unsorted = np.empty_like(post)
            unsorted[orders[e]] = post
            posts[e] = unsorted
    return posts


def _check_n_components(value: object) -> int | None:
    return check_optional_positive_int(value, "n_components")


def _check_seeds(value: object) -> int | list[int]:
    """One seed, or a sequence of per-episode seeds (the batched form)."""
    if isinstance(value, list | tuple | np.ndarray):
        return [check_seed(s) for s in np.asarray(value).reshape(-1).tolist()]
    return check_seed(value)


def _nleep_core(
    ep: Episodes, *, n_components: int | None, seed: int | list[int] | np.ndarray, **_options: Any
) -> torch.Tensor:
    """N-LEEP of every episode of ``ep`` as an ``(E,)`` float64 tensor (the only implementation).

    ``seed`` is one seed for every episode or E per-episode seeds.
    """
    import dataclasses

    import torch

    from metaleep.metrics.leep import leep_core

    if isinstance(seed, list):
        if len(seed) != ep.n_episodes:
            raise ValueError(message("seed", f"one seed or {ep.n_episodes} seeds", len(seed)))
        seed = np.asarray(seed, dtype=np.int64)

    feats = ep.values.detach().cpu().numpy()
    valid = None if ep.valid is None else ep.valid.cpu().numpy()
    rows = [feats[e] if valid is None else feats[e][valid[e]] for e in range(ep.n_episodes)]
    seeds = np.broadcast_to(np.asarray(seed, dtype=np.int64), (ep.n_episodes,))
    posts = _all_posteriors(rows, ep.n_classes.tolist(), n_components, seeds)
    width = max(p.shape[1] for p in posts)
    probs = np.zeros((ep.n_episodes, feats.shape[1], width))
    for e, post in enumerate(posts):
        if valid is None:
            probs[e, :, : post.shape[1]] = post
        else:
            probs[e, valid[e], : post.shape[1]] = post
    # Zero columns (episodes with fewer components) are zero-mass source labels: no effect.
    source = dataclasses.replace(ep, values=torch.from_numpy(probs).to(ep.values.device))
    # Always torch ops, never the fused kernel that LEEP picks by input size: the kernel agrees
    # only to ~1e-16, and an episode's N-LEEP must not depend on the episodes scored beside it
    # (the mixture fits, not this step, are N-LEEP's cost).
    return leep_core(source, from_logits=False, strategy="torch")


SPEC = define_metric(
    name="nleep",
    title="N-LEEP",
    core=_nleep_core,
    input_kind="features",
    min_samples=2,
    options=(
        Option(
            "n_components",
            None,
            "Mixture components; ``None`` means 5·C for the C classes present. Clipped to "
            "``max(1, n // 2)`` (see the module notes).",
            _check_n_components,
            annotation="int | None",
        ),
        Option(
            "seed",
            0,
            "``random_state`` of the mixture (a non-negative int).",
            check_seed,
            check_batch=_check_seeds,
            annotation="int | Sequence[int]",
        ),
        VALIDATE,
    ),
    module=__name__,
    description="LEEP on Gaussian-mixture posteriors of PCA features (Li et al., CVPR 2021).",
    returns="N-LEEP in ``(-inf, 0]``; never NaN.",
    examples="""
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> labels = np.arange(60) % 3
    >>> feats = rng.normal(size=(60, 8)) + 4.0 * rng.normal(size=(3, 8))[labels]
    >>> score = nleep_score(feats, labels, seed=1)
    >>> -np.log(3) < score <= 0.0
    True
    >>> score == nleep_score(feats, labels, seed=1)
    True
    """,
    batch_notes="""
    One PCA and mixture per episode (episodes of one shape fitted together), then one batched
    LEEP. ``seed`` may also be a sequence of E seeds: episode e is fitted with ``seed[e]``,
    as :func:`nleep_score` with that seed.
    """,
    batch_examples="""
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> feats = rng.normal(size=(2, 30, 4))
    >>> labels = np.tile(np.arange(30) % 3, (2, 1))
    >>> scores = nleep_score_batch(feats, labels, seed=0)
    >>> bool(scores[1] == nleep_score(feats[1], labels[1], seed=0))
    True
    >>> scores = nleep_score_batch(feats, labels, seed=[5, 7])
    >>> bool(scores[1] == nleep_score(feats[1], labels[1], seed=7))
    True
    """,
)
nleep_score = SPEC.score
nleep_score_batch = SPEC.score_batch
__test__ = {"nleep_score": nleep_score, "batch": nleep_score_batch}
