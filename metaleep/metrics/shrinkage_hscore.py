"""Shrinkage H-score (Ibrahim, Ponomareva, Mazumder, "Newer is not always better", 2022).

The H-score with the features' covariance replaced by its Ledoit-Wolf shrinkage estimate, as in
TLlib's ``regularized_h_score``: centre the features; Σ_f = (1 - α) S + α μ I with S = FᵀF / n
(the biased covariance, scikit-learn's ``LedoitWolf(assume_centered=False)``), μ = tr(S) / d and
the Ledoit-Wolf shrinkage α; Σ_g = the covariance of the class means g_i with ``np.cov``
(divided by n - 1); H = tr( pinv(Σ_f, rcond=1e-15) · (1 - α) Σ_g ). The mix of /n and /(n - 1)
is the reference's; metaleep keeps it. Higher is better.

Unlike the plain H-score, it is not constant when n - 1 <= d: shrinkage keeps Σ_f full rank, so
the few-shot episodes of the default study get informative values.

Degenerate input: features with no variation give 0 (α = 0 and Σ_f = 0, whose pseudo-inverse
is 0); one class gives 0 (its class means are the global mean); a class with one sample is its
own mean. Scale-invariant (α and H do not depend on the scale), so features are divided by their
largest absolute value first.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from metaleep._exact import matmul
from metaleep.metrics.spec import define_metric

if TYPE_CHECKING:
    import torch

    from metaleep.metrics._validation import Episodes

__all__ = ["shrinkage_h_score", "shrinkage_h_score_batch"]

RCOND = 1e-15
"""Eigenvalues of Σ_f below ``RCOND`` times the largest count as 0 in the pseudo-inverse."""


def ledoit_wolf_shrinkage(centred: torch.Tensor, sizes: torch.Tensor) -> torch.Tensor:
    """Ledoit-Wolf shrinkage α ``(E,)`` of centred ``(E, n, d)`` rows (zero padding allowed).

    scikit-learn's ``ledoit_wolf_shrinkage`` formula, with β = ‖x_i‖⁴ sums and δ = ‖S - μI‖²
    from an n x n or d x d Gram matrix, whichever is smaller; α = min(β, δ) / δ, and 0 when
    δ = 0 (scikit-learn divides 0 by 0 there only when β < 0 by rounding).
    """
    import torch

    n = sizes.to(centred.dtype)
    dim = centred.shape[2]
    sq_norms = centred.square().sum(2)  # (E, n)
    total = sq_norms.sum(1)  # ‖F‖²
    mu = total / (n * dim)
    beta_sum = sq_norms.square().sum(1)
    if centred.shape[1] <= dim:
        gram = matmul(centred, centred.transpose(1, 2))
    else:
        gram = matmul(centred.transpose(1, 2), centred)
    delta_sum = gram.square().sum((1, 2)) / n.square()
    beta = (beta_sum / n - delta_sum) / (dim * n)
    delta = (delta_sum - 2.0 * mu * total / n + dim * mu.square()) / dim
    beta = torch.minimum(beta, delta)
    alpha = torch.where(delta > 0, beta / torch.where(delta > 0, delta, 1.0), 0.0)
    return alpha.clamp(0.0, 1.0)


def _shrinkage_h_core(ep: Episodes, **_options: Any) -> torch.Tensor:
    """Shrinkage H-score of every episode of ``ep`` (the only implementation)."""
    import torch

    from metaleep.metrics._linalg import class_sums, singular_values_and_vectors

    feats = ep.zero_padding()
    n_rows, dim = feats.shape[1:]
    scale = feats.abs().amax((1, 2))
    feats = feats / torch.where(scale > 0, scale, 1.0)[:, None, None]
    n = ep.sizes.to(feats.dtype)
    centred = feats - (feats.sum(1) / n[:, None])[:, None, :]
    if ep.valid is not None:
        centred = centred * ep.valid[..., None]
    alpha = ledoit_wolf_shrinkage(centred, ep.sizes)
    mu = centred.square().sum((1, 2)) / (n * dim)
    # Row c of M: sqrt(n_c) (mean_c - mean); Σ_g = MᵀM / (n - 1), in the span of the rows.
    counts = ep.class_counts.to(feats.dtype)
    weight = torch.where(counts > 0, counts.clamp_min(1.0).rsqrt(), 0.0)
    between = class_sums(centred, ep.groups, ep.n_codes) * weight[..., None]
    s, vh = singular_values_and_vectors(centred)
    # Σ_f = V diag((1 - α) s² / n + α μ) Vᵀ + α μ (I - V Vᵀ); M lies in the span of V.
    eig = (1.0 - alpha)[:, None] * s.square() / n[:, None] + (alpha * mu)[:, None]
    largest = torch.maximum(eig[:, 0], alpha * mu)
    noise = 8.0 * torch.finfo(feats.dtype).eps * math.sqrt(n_rows * dim)
    keep = (eig > RCOND * largest[:, None]) & ((s > noise) | (alpha > 0)[:, None])
    inv = torch.where(keep, 1.0 / torch.where(keep, eig, 1.0), 0.0)
    projected = matmul(between, vh.transpose(1, 2)).square()  # (E, C, k)
    trace = (projected.sum(1) * inv).sum(1)
    return (1.0 - alpha) * trace / (n - 1.0)


SPEC = define_metric(
    name="shrinkage_h_score",
    title="Shrinkage H-score",
    core=_shrinkage_h_core,
    input_kind="features",
    min_samples=2,
    module=__name__,
    description="H-score with a Ledoit-Wolf shrunk feature covariance (Ibrahim et al. 2022; "
    "TLlib's regularized_h_score).",
    returns="Shrinkage H-score, >= 0; 0 for one class or features with no variation.",
    notes="""
    Computed from the thin SVD of the centred features F = U S Vᵀ: Σ_f has eigenvalues
    (1 - α) s_k² / n + α μ on the span of V and α μ elsewhere, and the class-mean matrix lies
    in that span, so H = (1 - α) / (n - 1) Σ_k ‖M v_k‖² / ((1 - α) s_k² / n + α μ) without a
    d x d inverse.
    """,
    examples="""
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> labels = np.arange(25) % 5
    >>> feats = rng.normal(size=(25, 32)) + 2.0 * rng.normal(size=(5, 32))[labels]
    >>> round(shrinkage_h_score(feats, labels), 4)   # not C - 1 = 4 like the plain H-score
    3.8411
    """,
    batch_examples="""
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> feats = rng.normal(size=(3, 10, 4))
    >>> labels = np.tile(np.arange(10) % 2, (3, 1))
    >>> scores = shrinkage_h_score_batch(feats, labels)
    >>> bool(abs(scores[2] - shrinkage_h_score(feats[2], labels[2])) < 1e-12)
    True
    """,
)
shrinkage_h_score = SPEC.score
shrinkage_h_score_batch = SPEC.score_batch
__test__ = {"shrinkage_h_score": shrinkage_h_score, "batch": shrinkage_h_score_batch}
