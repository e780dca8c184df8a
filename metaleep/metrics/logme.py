"""LogME, the log maximum evidence (You, Liu, Wang, Long, ICML 2021; JMLR 2022 fixed point).

For each target class c, a Bayesian linear regression of the one-hot column y_c on the features
F (n × D), prior w ~ N(0, α⁻¹ I), noise N(0, β⁻¹), has evidence

    L(α, β) = n/2 log β + D/2 log α - n/2 log 2π - β/2 ‖F m - y_c‖² - α/2 mᵀm - ½ log|A|,

A = α I + β FᵀF, m = β A⁻¹ Fᵀ y_c. It is maximised by the MacKay fixed point
γ = Σ_i β σ_i / (α + β σ_i), α ← γ / mᵀm, β ← (n - γ) / ‖F m - y_c‖² (σ_i: eigenvalues of FᵀF).
LogME = mean over the classes present of L / n; higher is better.

The iteration follows the authors' reference (``thuml/LogME``, ``_fit_fixed_point``): start at
α = β = 1, at most 11 updates, stop when α/β changes by <= 1e-3 relative, ``1e-5`` added to the
denominators mᵀm and ‖F m - y‖² (which keeps α and β finite when a class has no signal, where
the maximum lies at α → ∞). One difference, deliberate: log|A| sums over all D eigenvalues of
FᵀF, including the D - rank(F) zeros that contribute log α each. The reference sums over the
min(n, D) singular values only, which overstates L by (D - n)/2 log α whenever n < D, the usual
case in few-shot episodes. Both agree when F has full column rank.

Both :func:`logme_score` and :func:`logme_score_batch` derive from :func:`_logme_core`
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

__all__ = ["logme_score", "logme_score_batch"]

MAX_ITER = 11
"""Fixed-point updates per class at most (as in the reference implementation)."""
RTOL = 1e-3
"""Stop when |t' - t| <= RTOL t for t = α/β."""
EPSILON = 1e-5
"""Added to mᵀm and ‖F m - y‖² in the updates of α and β."""


def _logme_core(ep: Episodes, **_options: Any) -> torch.Tensor:
    """LogME of every episode of ``ep`` as an ``(E,)`` float64 tensor (the only implementation)."""
    import torch

    from metaleep.metrics._linalg import singular_values_and_vectors
    from metaleep.metrics._validation import message

    feats = ep.zero_padding()  # zero rows change neither FᵀF nor Fᵀy
    n_ep, n_rows, dim = feats.shape
    n = ep.sizes.to(feats.dtype)[:, None]  # (E, 1)
    counts = ep.class_counts.to(feats.dtype)  # (E, C) = ‖y_c‖²
    present = ep.class_counts > 0

    s, vh = singular_values_and_vectors(feats)  # (E, k), (E, k, D)
    eig = s.square()  # eigenvalues of FᵀF
    if not bool(torch.isfinite(eig).all()):
        largest = float(feats.abs().max())
        expected = "small enough for FᵀF to be finite in logme (|values| up to about 1e150)"
        raise ValueError(message("features", expected, largest))
    # Numerical rank: singular values below max(n, D) * eps * s_max are zeros of FᵀF, and so
    # are those whose square underflows.
    tiny = max(n_rows, dim) * torch.finfo(feats.dtype).eps
    keep = (s > tiny * s[:, :1]) & (eig > 0)
    rank = keep.sum(1, keepdim=True).to(feats.dtype)  # (E, 1)
    sigma = torch.where(keep, eig, 0.0)[:, None, :]  # (E, 1, k)
    keep3 = keep[:, None, :]

    # x = Uᵀ y_c over the kept components, from the class sums Fᵀ y_c: Uᵀ y = S⁻¹ Vᵀ Fᵀ y.
    class_sums = feats.new_zeros((n_ep * ep.n_codes + 1, dim))
    class_sums.index_add_(0, ep.groups, feats.view(n_ep * n_rows, dim))
    class_sums = class_sums[: n_ep * ep.n_codes].view(n_ep, ep.n_codes, dim)
    inv_s = torch.where(keep, s.reciprocal(), 0.0)
    x2 = (matmul(class_sums, vh.transpose(1, 2)) * inv_s[:, None, :]).square()  # (E, C, k)
    residual0 = (counts - x2.sum(2)).clamp_min(0.0)  # part of ‖y‖² outside the kept span

    alpha = torch.ones_like(counts)
    beta = torch.ones_like(counts)
    m2 = torch.zeros_like(counts)
    res2 = torch.zeros_like(counts)
    active = present.clone()
    smallest = torch.finfo(feats.dtype).tiny
    for _ in range(MAX_ITER):
        t = (alpha / beta)[..., None]  # (E, C, 1)
        denom = sigma + t
        gamma = torch.where(keep3, sigma / denom, 0.0).sum(2)
        not_gamma = (n - rank) + torch.where(keep3, t / denom, 0.0).sum(2)  # n - γ, no cancel
        new_m2 = torch.where(keep3, sigma * x2 / denom.square(), 0.0).sum(2)  # 0/0 if t tiny
        new_res2 = (x2 * (t / denom).square()).sum(2) + residual0
        new_alpha = (gamma / (new_m2 + EPSILON)).clamp_min(smallest)
        new_beta = (not_gamma / (new_res2 + EPSILON)).clamp_min(smallest)
        new_t = new_alpha / new_beta
        t = t[..., 0]
        alpha = torch.where(active, new_alpha, alpha)
        beta = torch.where(active, new_beta, beta)
        m2 = torch.where(active, new_m2, m2)
        res2 = torch.where(active, new_res2, res2)
        active &= ~((new_t - t).abs() <= RTOL * t)
        if not bool(active.any()):
            break

    log_det = torch.where(keep3, torch.log(alpha[..., None] + beta[..., None] * sigma), 0.0)
    # D/2 log α - (D - rank)/2 log α (the zero eigenvalues' share of -½ log|A|) = rank/2 log α.
    evidence = (
        rank / 2 * torch.log(alpha)
        + n / 2 * torch.log(beta)
        - 0.5 * log_det.sum(2)
        - beta / 2 * res2
        - alpha / 2 * m2
        - n / 2 * math.log(2 * math.pi)
    ) / n
    per_episode = torch.where(present, evidence, 0.0).sum(1)
    return per_episode / ep.n_classes.to(feats.dtype)


SPEC = define_metric(
    name="logme",
    title="LogME",
    core=_logme_core,
    input_kind="features",
    module=__name__,
    description="Log maximum evidence of a Bayesian linear model (You et al., ICML 2021).",
    returns="LogME (the mean per-sample log evidence over the classes present); higher is better.",
    summary="""
    Features are used as given (not centred); classes absent from ``labels`` are not
    counted.
    """,
    raises="""
    ValueError
        Also: features so large that FᵀF overflows (LogME is not scale-invariant, so they
        cannot be rescaled silently).
    """,
    examples="""
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> labels = np.arange(40) % 2
    >>> informative = rng.normal(size=(40, 3)) + 3.0 * labels[:, None]
    >>> noise = rng.normal(size=(40, 3))
    >>> logme_score(informative, labels) > logme_score(noise, labels)
    True
    """,
    batch_notes="""
    One batched SVD for all episodes (one per episode, shared by all its classes); the fixed
    point runs on all (episode, class) pairs together, each pair frozen once it has converged,
    so every pair takes exactly the updates it would take alone.
    """,
    batch_examples="""
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> feats = rng.normal(size=(3, 10, 4))
    >>> labels = np.tile(np.arange(10) % 2, (3, 1))
    >>> scores = logme_score_batch(feats, labels)
    >>> scores.shape
    (3,)
    >>> bool(abs(scores[1] - logme_score(feats[1], labels[1])) < 1e-12)
    True
    """,
)
logme_score = SPEC.score
logme_score_batch = SPEC.score_batch
__test__ = {"logme_score": logme_score, "batch": logme_score_batch}
