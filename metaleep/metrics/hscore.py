"""H-score (Bao, Li, Huang, Wang, Zheng, ICIP 2019): tr( cov(f)⁺ cov(g) ).

Features f_i (n × d), g_i = the mean of f over the samples of class y_i; covariances unbiased
(n - 1, which cancels), pseudo-inverse with relative cutoff 1e-15 on the eigenvalues of cov(f).
Higher is better: the class means vary much relative to the features' own spread.

The shrinkage-regularised variant (Ibrahim et al., 2022) is a different metric:
:mod:`metaleep.metrics.shrinkage_hscore`.

Both :func:`h_score` and :func:`h_score_batch` derive from :func:`_h_score_core`
(:func:`metaleep.metrics.spec.define_metric`).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from metaleep._exact import matmul
from metaleep.metrics.spec import define_metric

if TYPE_CHECKING:
    import torch

    from metaleep.metrics._validation import Episodes

__all__ = ["h_score", "h_score_batch"]

RCOND = 1e-15
"""Eigenvalues of cov(f) below ``RCOND`` times the largest count as 0 in the pseudo-inverse."""


def _h_score_core(ep: Episodes, **_options: Any) -> torch.Tensor:
    """H-score of each episode of ``ep`` as an ``(E,)`` float64 tensor (the only implementation)."""
    import torch

    from metaleep.metrics._linalg import singular_values_and_vectors

    feats = ep.zero_padding()
    n_ep, n_rows, dim = feats.shape
    # H is invariant to the scale of the features: divide each episode by its largest |value|
    # so that no sum or square below overflows or underflows.
    scale = feats.abs().amax((1, 2))
    feats = feats / torch.where(scale > 0, scale, 1.0)[:, None, None]
    sizes = ep.sizes.to(feats.dtype)
    mean = feats.sum(1) / sizes[:, None]
    centred = feats - mean[:, None, :]
    if ep.valid is not None:
        centred.mul_(ep.valid[..., None])
    # Row c of M: sqrt(n_c) (mu_c - mu) = (sum of the centred rows of class c) / sqrt(n_c).
    class_sums = centred.new_zeros((n_ep * ep.n_codes + 1, dim))
    class_sums.index_add_(0, ep.groups, centred.view(n_ep * n_rows, dim))
    class_sums = class_sums[: n_ep * ep.n_codes].view(n_ep, ep.n_codes, dim)
    counts = ep.class_counts.to(feats.dtype)
    weight = torch.where(counts > 0, counts.clamp_min(1.0).rsqrt(), 0.0)
    between = class_sums * weight[..., None]  # (E, C, d)

    s, vh = singular_values_and_vectors(centred)  # (E, k), (E, k, d)
    # Eigenvalues s² of cov(f) above RCOND * the largest, and singular values above the rounding
    # noise of centring features scaled to max |value| = 1 (about eps per entry): without that
    # floor, features with no variation at all scored rounding noise (often 1) instead of 0.
    noise = 8.0 * torch.finfo(feats.dtype).eps * math.sqrt(n_rows * dim)
    keep = (s > math.sqrt(RCOND) * s[:, :1]) & (s > noise)
    inv_s = torch.where(keep, s.reciprocal(), 0.0)  # 1/0 = inf is never kept
    projected = matmul(between, vh.transpose(1, 2)) * inv_s[:, None, :]  # (E, C, k)
    return projected.square().sum((1, 2))


SPEC = define_metric(
    name="h_score",
    title="H-score",
    core=_h_score_core,
    input_kind="features",
    min_samples=2,
    module=__name__,
    description="tr(cov(f)^+ cov(g)) of features and class means (Bao et al., ICIP 2019).",
    returns="H-score, >= 0; at most C - 1 for C classes present (0 for one class).",
    notes="""
    With centred features F = U S Vᵀ (thin SVD), cov(f)⁺ = (n - 1) V S⁻² Vᵀ over the singular
    values kept, and cov(g) = Mᵀ M / (n - 1) where row c of M is √n_c (μ_c - μ). Hence
    H = ‖M V S⁻¹‖²_F, computed from the SVD of F rather than by inverting cov(f): same value,
    but rounding noise in cov(f) (which has rank <= n - 1, far below d in few-shot episodes)
    is never inverted. Features are divided by their largest absolute value first (H does not
    depend on the scale), so huge or tiny features neither overflow nor underflow.

    Few-shot caveat: when n - 1 <= d the centred features span every centred direction of the
    sample space, and H = C - 1 for any features in general position; the H-score then says
    nothing about the features (it needs n well above d). The shrinkage H-score
    (:func:`metaleep.metrics.shrinkage_h_score`) is the variant for that regime.
    """,
    examples="""
    Two classes separated along the first feature; the second feature is noise:

    >>> h_score([[0.0, 1.0], [0.0, -1.0], [2.0, 1.0], [2.0, -1.0]], [0, 0, 1, 1])
    1.0
    """,
    batch_notes="""
    One SVD per episode of the centred ``(E, n, d)`` features (after a QR when n > d) and one
    ``index_add_`` for the class sums; each episode's value is the same in any batch.
    """,
    batch_examples="""
    >>> feats = [[[0.0, 1.0], [0.0, -1.0], [2.0, 1.0], [2.0, -1.0]]] * 2
    >>> h_score_batch(feats, [[0, 0, 1, 1], [0, 1, 0, 1]])
    array([1., 1.])
    """,
)
h_score = SPEC.score
h_score_batch = SPEC.score_batch
__test__ = {"h_score": h_score, "batch": h_score_batch}
