"""A baseline that costs nothing: the support set's nearest-centroid leave-one-out accuracy.

Each support sample x_i is classified by the nearest (Euclidean) class centroid computed from
the *other* support samples; the score is the fraction classified correctly. It needs no source
labels and no fitting: a transferability metric that does not beat it on a study's episodes adds
nothing a user could not get for free. Higher is better; in [0, 1].

Conventions: distances that agree within 1e-12 · d (after the features are centred and scaled to
a largest absolute value of 1; the score depends on neither) are ties, and a tie counts as a
uniformly random pick among the tied classes (the expected accuracy), so relabelling the classes
does not change the score. A sample whose class has no other sample has no centroid of its own
class and is counted wrong: in 1-shot episodes the score is 0 whatever the features (no
information, like the H-score when n - 1 <= d). One class gives 1; features with no variation
give 1 / (classes with at least two samples) on average.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from metaleep._exact import matmul
from metaleep.metrics.spec import define_metric

if TYPE_CHECKING:
    import torch

    from metaleep.metrics._validation import Episodes

__all__ = ["centroid_loo_score", "centroid_loo_score_batch"]

TIE_TOLERANCE = 1e-12
"""Squared distances within ``TIE_TOLERANCE * d`` of the smallest are ties (scaled features)."""


def _centroid_loo_core(ep: Episodes, **_options: Any) -> torch.Tensor:
    """Leave-one-out nearest-centroid accuracy of every episode of ``ep`` (the implementation)."""
    import torch

    from metaleep.metrics._linalg import class_sums

    feats = ep.zero_padding()
    _, _, dim = feats.shape
    n = ep.sizes.to(feats.dtype)
    x = feats - (feats.sum(1) / n[:, None])[:, None, :]
    if ep.valid is not None:
        x = x * ep.valid[..., None]
    scale = x.abs().amax((1, 2))
    x = x / torch.where(scale > 0, scale, 1.0)[:, None, None]
    counts = ep.class_counts.to(feats.dtype)
    centroids = class_sums(x, ep.groups, ep.n_codes) / counts.clamp_min(1.0)[..., None]
    # ‖x_i - μ_c‖² for every class from one batched product; for the sample's own class the
    # centroid without it, (n_c μ_c - x_i) / (n_c - 1), is at (n_c / (n_c - 1))² ‖x_i - μ_c‖².
    dist = (
        x.square().sum(2)[..., None]
        + centroids.square().sum(2)[:, None, :]
        - 2.0 * matmul(x, centroids.transpose(1, 2))
    ).clamp_min(0.0)
    own_count = counts.gather(1, ep.codes)  # (E, n)
    factor = torch.where(own_count > 1, own_count / (own_count - 1.0).clamp_min(1.0), math.inf)
    own = dist.gather(2, ep.codes[..., None])[..., 0] * factor.square()
    own = torch.where(own_count > 1, own, math.inf)  # no centroid of its own class
    dist = dist.scatter(2, ep.codes[..., None], own[..., None])
    dist = torch.where((ep.class_counts > 0)[:, None, :], dist, math.inf)
    best = dist.amin(2, keepdim=True)
    tied = dist <= best + TIE_TOLERANCE * dim
    hit = torch.where(
        torch.isfinite(own), tied.gather(2, ep.codes[..., None])[..., 0] / tied.sum(2), 0.0
    )
    if ep.valid is not None:
        hit = hit * ep.valid
    return hit.sum(1) / n


SPEC = define_metric(
    name="centroid_loo",
    title="Nearest-centroid leave-one-out accuracy",
    core=_centroid_loo_core,
    input_kind="features",
    min_samples=2,
    module=__name__,
    description="Baseline: leave-one-out nearest-centroid accuracy of the support set "
    "(free; a metric should beat it).",
    returns="The fraction of support samples whose leave-one-out nearest centroid is their "
    "class's (ties shared), in [0, 1].",
    examples="""
    >>> feats = [[0.0], [0.1], [1.0], [1.1], [0.45]]
    >>> centroid_loo_score(feats, [0, 0, 1, 1, 1])   # 0.45 is nearer class 0's centroid
    0.8
    >>> centroid_loo_score([[0.0], [1.0]], [0, 1])   # 1-shot: no own centroid, always wrong
    0.0
    """,
    batch_examples="""
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> feats = rng.normal(size=(3, 10, 4))
    >>> labels = np.tile(np.arange(10) % 2, (3, 1))
    >>> scores = centroid_loo_score_batch(feats, labels)
    >>> bool(scores[1] == centroid_loo_score(feats[1], labels[1]))
    True
    """,
)
centroid_loo_score = SPEC.score
centroid_loo_score_batch = SPEC.score_batch
__test__ = {"centroid_loo_score": centroid_loo_score, "batch": centroid_loo_score_batch}
