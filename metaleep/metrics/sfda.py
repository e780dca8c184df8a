"""SFDA, the Self-challenging Fisher Discriminant Analysis score (Shao, Zhao, Li, Zhang, Luo,
ECCV 2022), as TencentARC/SFDA ``metrics.py`` ``SFDA_Score``.

1. A shrinkage LDA: the within-class scatter S_w = Σ_c (n_c / n) cov_c (covariances divided by
   n_c); its largest eigenvalue λ estimated by three fixed power iterations started from
   S_w · 1 (the reference's ``iterative_A``); shrinkage s = max(exp(-5 λ), 1e-10);
   B = (1 - s) S_w + s (tr S_w / d) I; the class scores x B⁻¹ μ_cᵀ - ½ μ_c B⁻¹ μ_cᵀ + log π_c
   (μ_c the class means, π_c = n_c / n) and their softmax p(c | x).
2. ConfMix: p is passed through a second softmax (as published), and each sample is mixed
   with the mean of the *other* classes' means: x ← q x + (1 - q) μ̄_{-y}, q = the softened
   p(y | x) of its own class.
3. The same LDA, with the same s, refitted on the mixed features; SFDA = the mean of p(y_i | x_i)
   -- no log, as published.

The reference solves a generalised eigenproblem (S_b, B) and keeps every eigenvector W; its
class scores use W Wᵀ = B⁻¹ only, so metaleep solves with B directly (the same values, without
the eigenproblem). The reference modifies its input in place; metaleep does not.

Higher is better; SFDA is in (0, 1]. Few-shot caveat: when n - C < d the within-class scatter is
singular, s is tiny and the LDA separates the classes perfectly along the directions the scatter
misses: SFDA is then 1 up to rounding for almost any features.

Degenerate input: one class gives 1 (p = 1); a zero within-class scatter (every class a single
sample, or samples identical within each class, up to rounding: 16 · n · eps of the largest
|value|) is the limit of a vanishing within-class
variance: each sample goes to the classes whose mean it equals (to rounding), in proportion to
their priors
(1 when the class means differ, e.g. in 1-shot episodes); a power iteration that meets a zero
vector estimates λ = 0 (the reference divides 0 by 0). The posteriors do not depend on the
scale of the features, the shrinkage does: features are divided by their largest absolute value
and λ computed at the original scale, so huge or tiny features neither overflow nor underflow.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from metaleep._exact import matmul, per_matrix
from metaleep.metrics.spec import define_metric

if TYPE_CHECKING:
    import torch

    from metaleep.metrics._validation import Episodes

__all__ = ["sfda_score", "sfda_score_batch"]

POWER_ITERATIONS = 3
"""Fixed power iterations estimating the largest eigenvalue of S_w (the reference's)."""
MIN_SHRINKAGE = 1e-10
"""Floor of the shrinkage s = max(exp(-5 λ), 1e-10)."""
ROUNDING = 16
"""Within-class deviations below ``ROUNDING * n * eps`` (features scaled to max |value| 1) are
rounding: the scatter counts as zero (a singular B would amplify that noise)."""


def _unit(v: torch.Tensor) -> torch.Tensor:
    import torch

    norm = torch.linalg.vector_norm(v, dim=-1, keepdim=True)
    return v / torch.where(norm > 0, norm, 1.0)


def largest_eigenvalue(matrix: torch.Tensor) -> torch.Tensor:
    """The reference's ``iterative_A``: three power iterations from ``matrix @ 1``, ``(E,)``."""

    x = matrix.sum(2)
    y = x
    for _ in range(POWER_ITERATIONS):
        y = _unit(matmul(matrix, x[..., None])[..., 0])
        x = _unit(matmul(matrix, y[..., None])[..., 0])
    return (x * matmul(matrix, y[..., None])[..., 0]).sum(1)


def _lda_probabilities(
    x: torch.Tensor, ep: Episodes, shrinkage: torch.Tensor | None, scale: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Shrinkage-LDA posteriors ``(E, n, C)`` of the rows of ``x`` and the shrinkage ``(E,)``.

    ``x`` holds the features divided by ``scale`` ``(E,)``: the posteriors do not depend on the
    scale, the shrinkage does, through λ = scale² λ(x).
    """
    import torch

    from metaleep.metrics._linalg import class_sums

    dim = x.shape[2]
    counts = ep.class_counts.to(x.dtype)
    present = ep.class_counts > 0
    n = ep.sizes.to(x.dtype)
    means = class_sums(x, ep.groups, ep.n_codes) / counts.clamp_min(1.0)[..., None]
    within = x - means.gather(1, ep.codes[..., None].expand(-1, -1, dim))
    if ep.valid is not None:
        within = within * ep.valid[..., None]
    scatter = matmul(within.transpose(1, 2), within) / n[:, None, None]  # S_w
    if shrinkage is None:
        largest = largest_eigenvalue(scatter) * scale.square()  # may overflow to inf: s = 1e-10
        shrinkage = torch.exp(-5.0 * largest).clamp_min(MIN_SHRINKAGE)
    mu = torch.diagonal(scatter, dim1=1, dim2=2).sum(1) / dim
    # No within-class variation beyond rounding (x is scaled to max |value| 1).
    rounding = ROUNDING * n * torch.finfo(x.dtype).eps  # (E,)
    flat = within.abs().amax((1, 2)) <= rounding
    shrunk = (1.0 - shrinkage)[:, None, None] * scatter
    shrunk = shrunk + (shrinkage * torch.where(flat, 1.0, mu))[:, None, None] * torch.eye(
        dim, dtype=x.dtype, device=x.device
    )
    coef = per_matrix(torch.linalg.solve, shrunk, means.transpose(1, 2)).transpose(1, 2)
    log_prior = torch.where(present, (counts / n[:, None]).clamp_min(1e-300).log(), -math.inf)
    intercept = -0.5 * (means * coef).sum(2) + log_prior
    scores = matmul(x, coef.transpose(1, 2)) + intercept[:, None, :]
    if bool(flat.any()):
        # The limit of a vanishing within-class variance (B -> 0 I): the nearest class means
        # (every sample equals its own class mean here), weighted by their priors.
        dist = (x[:, :, None, :] - means[:, None, :, :]).square().sum(3)
        dist = torch.where(present[:, None, :], dist, math.inf)
        tolerance = 4.0 * dim * rounding.square()[:, None, None]
        nearest = dist <= dist.amin(2, keepdim=True) + tolerance
        limit = torch.where(nearest, log_prior[:, None, :], -math.inf)
        scores = torch.where(flat[:, None, None], limit, scores)
    if ep.valid is not None:
        scores = torch.where(ep.valid[..., None], scores, 0.0)  # padding: anything finite
    return torch.softmax(scores, dim=2), shrinkage


def _sfda_core(ep: Episodes, **_options: Any) -> torch.Tensor:
    """SFDA of every episode of ``ep`` as an ``(E,)`` float64 tensor (the only implementation)."""
    import torch

    from metaleep.metrics._linalg import class_sums

    feats = ep.zero_padding()
    largest = feats.abs().amax((1, 2))
    scale = torch.where(largest > 0, largest, 1.0)
    feats = feats / scale[:, None, None]
    dim = feats.shape[2]
    present = ep.class_counts > 0
    counts = ep.class_counts.to(feats.dtype)
    n_classes = ep.n_classes.to(feats.dtype)
    codes = ep.codes[..., None]
    probs, shrinkage = _lda_probabilities(feats, ep, None, scale)
    # ConfMix: a second softmax over the classes present (as published), then each sample
    # mixed with the mean of the other classes' means.
    soft = torch.softmax(torch.where(present[:, None, :], probs, -math.inf), dim=2)
    own = soft.gather(2, codes)  # (E, n, 1)
    means = class_sums(feats, ep.groups, ep.n_codes) / counts.clamp_min(1.0)[..., None]
    means = torch.where(present[..., None], means, 0.0)
    others = (means.sum(1, keepdim=True) - means) / (n_classes - 1.0).clamp_min(1.0)[:, None, None]
    mixed = own * feats + (1.0 - own) * others.gather(1, codes.expand(-1, -1, dim))
    if ep.valid is not None:
        mixed = mixed * ep.valid[..., None]
    probs, _ = _lda_probabilities(mixed, ep, shrinkage, scale)
    hit = probs.gather(2, codes)[..., 0]
    if ep.valid is not None:
        hit = hit * ep.valid
    score = hit.sum(1) / ep.sizes
    return torch.where(ep.n_classes == 1, 1.0, score)


SPEC = define_metric(
    name="sfda",
    title="SFDA",
    core=_sfda_core,
    input_kind="features",
    module=__name__,
    description="Self-challenging Fisher discriminant analysis: mean LDA posterior after "
    "ConfMix (Shao et al., ECCV 2022; TencentARC/SFDA).",
    returns="SFDA in (0, 1] (a mean probability, no log); 1 for one class.",
    batch_notes="""
    All episodes at once: one batched d x d within-class scatter per fit, the power
    iterations as batched matrix-vector products, one batched linear solve for the class
    scores.
    """,
    examples="""
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> labels = np.arange(60) % 3
    >>> feats = rng.normal(size=(60, 4)) + 1.5 * rng.normal(size=(3, 4))[labels]
    >>> 0.0 < sfda_score(feats, labels) < 1.0
    True
    >>> sfda_score(np.eye(3), [0, 1, 2])   # one sample per class: the limit, 1
    1.0
    """,
    batch_examples="""
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> feats = rng.normal(size=(3, 30, 4))
    >>> labels = np.tile(np.arange(30) % 3, (3, 1))
    >>> scores = sfda_score_batch(feats, labels)
    >>> bool(abs(scores[1] - sfda_score(feats[1], labels[1])) < 1e-12)
    True
    """,
)
sfda_score = SPEC.score
sfda_score_batch = SPEC.score_batch
__test__ = {"sfda_score": sfda_score, "batch": sfda_score_batch}
