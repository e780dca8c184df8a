"""A label-free baseline that is defined at 1 shot: the cosine spread of the support embeddings.

The spread is the mean cosine distance between the support samples' embeddings over all pairs:

    spread = 1 - (2 / (n (n - 1))) sum_{i < j} cos(f_i, f_j),   in [0, 2].

It reads no labels, no source model and no fitting. In a 1-shot episode every support sample is
its own class, so a backbone that spreads the support images apart in its embedding space
separates the episode's classes: a transferability metric that does not beat the spread adds
nothing at 1 shot that the embedding alone does not say (``centroid_loo``, H-score, SFDA and
GBC are constant there). It was declared as the 1-shot baseline before any grid was run with
it. With several shots it mixes within- and between-class distances, and stays a baseline.
Higher is better.

Conventions: a zero embedding has no direction; its cosine with anything counts 0 (distance 1).
Invariant to the labels, to the sample order and to scaling the features by a positive number;
not to translating them (cosines are taken about the origin, where the backbone's features
live: a ReLU network's embeddings are non-negative, so the spread lies in [0, 1] there).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from metaleep.metrics.spec import define_metric

if TYPE_CHECKING:
    import torch

    from metaleep.metrics._validation import Episodes

__all__ = ["cosine_spread_score", "cosine_spread_score_batch"]


def _cosine_spread_core(ep: Episodes, **_options: Any) -> torch.Tensor:
    """Mean pairwise cosine distance of every episode of ``ep`` (the implementation)."""
    import torch

    feats = ep.zero_padding()
    scale = feats.abs().amax(2, keepdim=True)  # scale first: squares neither under- nor overflow
    unit = feats / torch.where(scale > 0, scale, 1.0)
    norm = unit.square().sum(2, keepdim=True).sqrt()
    unit = unit / torch.where(norm > 0, norm, 1.0)  # zero rows stay zero: cosine 0 with all
    n = ep.sizes.to(feats.dtype)
    total = unit.sum(1).square().sum(1)  # sum over all ordered pairs and the diagonal
    diagonal = unit.square().sum((1, 2))
    return 1.0 - (total - diagonal) / (n * (n - 1.0))


SPEC = define_metric(
    name="cosine_spread",
    title="Cosine spread of the support embeddings",
    core=_cosine_spread_core,
    input_kind="features",
    min_samples=2,
    module=__name__,
    description="Baseline: mean pairwise cosine distance of the support embeddings (label-free; "
    "defined at 1 shot; a metric should beat it).",
    returns="The mean over pairs of samples of 1 - cosine similarity of their features, in "
    "[0, 2]; labels are not read.",
    examples="""
    >>> cosine_spread_score([[1.0, 0.0], [0.0, 1.0]], [0, 1])     # orthogonal: distance 1
    1.0
    >>> cosine_spread_score([[1.0, 0.0], [2.0, 0.0], [0.0, 3.0]], [0, 1, 2])
    0.666...
    >>> cosine_spread_score([[1.0, 1.0], [-1.0, -1.0]], [5, 5])    # opposite: 2
    2.0
    """,
    batch_examples="""
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> feats = rng.normal(size=(3, 5, 4))
    >>> labels = np.tile(np.arange(5), (3, 1))
    >>> scores = cosine_spread_score_batch(feats, labels)
    >>> bool(abs(scores[2] - cosine_spread_score(feats[2], labels[2])) < 1e-12)
    True
    """,
)
cosine_spread_score = SPEC.score
cosine_spread_score_batch = SPEC.score_batch
__test__ = {"cosine_spread_score": cosine_spread_score, "batch": cosine_spread_score_batch}
