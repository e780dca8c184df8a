"""TransRate (Huang, Huang, Xu, Ding, Zhu, ICML 2022): the coding rate of the features minus
that of the features given the labels.

Two public implementations disagree (by 4-150x on the notes' test vectors); ``variant`` picks:

- ``"authors"`` (default), as the authors' ``Long-Kai/TransRate`` (non-projected path):
  L2-normalise the rows, centre, L2-normalise the rows again (Z, n x d); λ the eigenvalues of
  ZᵀZ / n and λ_c those of Z_cᵀZ_c / n_c (class blocks not re-centred), all divided by the sum
  of the λ; R(λ) = Σ log(1 + λ / ε) / r with ε = 1e-4 and r the rank of ZᵀZ / n;
  TransRate = ½ R(λ) - ½ Σ_c (n_c / n) R(λ_c).
- ``"tllib"``, as TLlib's ``tllib/ranking/transrate.py``: Z the centred features (no
  normalisation); R(Z) = ½ log det(I + ZᵀZ / (n ε)); TransRate = R(Z) - (1/C) Σ_c R(Z_c),
  an unweighted mean over the classes.

Higher is better. The rank r counts the eigenvalues above d · eps · λ_max (numpy's
``matrix_rank`` of ZᵀZ / n); the eigenvalues of ZᵀZ / n below it (rounding noise around exact
zeros, e.g. the direction centring removes) count as 0 in both variants.

Degenerate input: one class gives 0 (Z_1 = Z); features with no variation give 0 (no coding
rate at all); a row that is zero, or equal to the mean, stays zero when normalised (the
reference divides 0 by 0). The authors' variant is scale-invariant (huge and tiny features are
normalised without overflow); TLlib's is not, and features so large that ZᵀZ overflows are an
error. With n - 1 < d the rank is n - 1, so few-shot episodes are scored
on the span of their samples.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from metaleep._exact import matmul, per_matrix
from metaleep.metrics._validation import message
from metaleep.metrics.spec import VALIDATE, Option, define_metric

if TYPE_CHECKING:
    import torch

    from metaleep.metrics._validation import Episodes

__all__ = ["transrate_score", "transrate_score_batch"]

EPSILON = 1e-4
"""ε, the distortion of the coding rate (both references)."""
VARIANTS = ("authors", "tllib")


def _check_variant(value: object) -> str:
    if not isinstance(value, str):
        raise TypeError(message("variant", "'authors' or 'tllib'", value))
    if value not in VARIANTS:
        raise ValueError(message("variant", "'authors' or 'tllib'", value))
    return value


def _unit_rows(values: torch.Tensor) -> torch.Tensor:
    """Rows divided by their L2 norms; zero rows stay zero.

    Each row is first divided by its largest absolute value, so that the norm of huge or tiny
    rows neither overflows nor underflows.
    """
    import torch

    largest = values.abs().amax(-1, keepdim=True)
    values = values / torch.where(largest > 0, largest, 1.0)
    norms = torch.linalg.vector_norm(values, dim=-1, keepdim=True)
    return values / torch.where(norms > 0, norms, 1.0)


def _check_finite_gram(gram: torch.Tensor, rows: torch.Tensor) -> None:
    """Features so large that a Gram matrix overflows (TLlib's variant) are an error."""
    import torch

    if not bool(torch.isfinite(gram).all()):
        largest = float(rows.abs().max())
        expected = "small enough for ZᵀZ to be finite in transrate (|values| up to about 1e150)"
        raise ValueError(message("features", expected, largest))


def _gram_eigenvalues(z: torch.Tensor) -> torch.Tensor:
    """``(E, min(n, d))`` eigenvalues of ZᵀZ from the smaller Gram matrix (negatives: 0)."""
    import torch

    if z.shape[1] <= z.shape[2]:
        gram = matmul(z, z.transpose(1, 2))
    else:
        gram = matmul(z.transpose(1, 2), z)
    _check_finite_gram(gram, z)
    return per_matrix(torch.linalg.eigvalsh, gram).clamp_min(0.0)


def _log_det_rates(blocks: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """Σ log(1 + scale · λ) over the eigenvalues λ of BᵀB, for ``(G, m, d)`` blocks B.

    log det(I + scale · G) of the smaller Gram matrix G (m x m or d x d; zero padding rows
    add factors of exactly 1) from its Cholesky factor: no eigendecomposition, except for the
    blocks whose factorisation fails by rounding.
    """
    import torch

    if blocks.shape[1] <= blocks.shape[2]:
        gram = matmul(blocks, blocks.transpose(1, 2))
    else:
        gram = matmul(blocks.transpose(1, 2), blocks)
    _check_finite_gram(gram, blocks)
    eye = torch.eye(gram.shape[1], dtype=gram.dtype, device=gram.device)
    factor, info = per_matrix(torch.linalg.cholesky_ex, eye + scale[:, None, None] * gram)
    rates = 2.0 * torch.log(torch.diagonal(factor, dim1=1, dim2=2)).sum(1)
    failed = info != 0
    if bool(failed.any()):
        # Rounding made I + scale·G indefinite (huge features: the noise of G's zero
        # eigenvalues exceeds 1 / scale): its eigenvalues, those at rounding level taken as 0.
        eig = per_matrix(torch.linalg.eigvalsh, gram[failed])
        floor = gram.shape[1] * torch.finfo(gram.dtype).eps * eig.amax(1, keepdim=True)
        eig = torch.where(eig > floor, eig, 0.0)
        rates[failed] = torch.log1p(scale[failed][:, None] * eig).sum(1)
    return rates


def _class_rates(z: torch.Tensor, ep: Episodes, scale: torch.Tensor) -> torch.Tensor:
    """``(E, C)`` Σ log(1 + scale_ec · λ) over the eigenvalues of each class block's Z_cᵀZ_c."""
    from metaleep.metrics._linalg import class_blocks

    n_ep, n_rows, dim = z.shape
    blocks = class_blocks(z.reshape(n_ep * n_rows, dim), ep.groups, n_ep * ep.n_codes)
    return _log_det_rates(blocks, scale.reshape(-1)).view(n_ep, ep.n_codes)


def _transrate_core(ep: Episodes, *, variant: str = "authors", **_options: Any) -> torch.Tensor:
    """TransRate of every episode of ``ep`` (the only implementation)."""
    import torch

    feats = ep.zero_padding()
    dim = feats.shape[2]
    n = ep.sizes.to(feats.dtype)
    valid = None if ep.valid is None else ep.valid[..., None]
    z = _unit_rows(feats) if variant == "authors" else feats
    z = z - (z.sum(1) / n[:, None])[:, None, :]
    if valid is not None:
        z = z * valid
    if variant == "authors":
        z = _unit_rows(z)
    counts = ep.class_counts.to(feats.dtype)
    class_n = counts.clamp_min(1.0)
    # Eigenvalues of ZᵀZ / n; those at rounding level (below d · eps · λ_max, outside the
    # numerical rank: centring leaves one at least) are exact zeros, not noise to take logs of.
    lam = _gram_eigenvalues(z) / n[:, None]
    numerical = lam > dim * torch.finfo(feats.dtype).eps * lam.amax(1, keepdim=True)
    lam = torch.where(numerical, lam, 0.0)
    if variant == "authors":
        total = lam.sum(1)  # 1 unless rows are zero
        safe_total = torch.where(total > 0, total, 1.0)
        rank = numerical.sum(1).to(feats.dtype)
        safe_rank = rank.clamp_min(1.0)
        rate = torch.log1p(lam / (safe_total[:, None] * EPSILON)).sum(1) / safe_rank
        class_scale = 1.0 / (class_n * safe_total[:, None] * EPSILON)
        class_rate = _class_rates(z, ep, class_scale) / safe_rank[:, None]
        weights = counts / n[:, None]
        score = 0.5 * rate - 0.5 * (weights * class_rate).sum(1)
        score = torch.where((total > 0) & (rank > 0), score, 0.0)
    else:
        rate = 0.5 * torch.log1p(lam / EPSILON).sum(1)
        class_rate = 0.5 * _class_rates(z, ep, 1.0 / (class_n * EPSILON))
        class_rate = torch.where(ep.class_counts > 0, class_rate, 0.0)
        score = rate - class_rate.sum(1) / ep.n_classes.to(feats.dtype)
    return torch.where(ep.n_classes == 1, 0.0, score)


SPEC = define_metric(
    name="transrate",
    title="TransRate",
    core=_transrate_core,
    input_kind="features",
    options=(
        Option(
            "variant",
            "authors",
            "``'authors'`` (default): the authors' normalised rate (Long-Kai/TransRate); "
            "``'tllib'``: TLlib's unnormalised rate with an unweighted class mean.",
            _check_variant,
            annotation="str",
        ),
        VALIDATE,
    ),
    module=__name__,
    description="Coding rate of features minus that given the labels (Huang et al., ICML "
    "2022; the authors' normalised variant, TLlib's as an option).",
    returns="TransRate; 0 for one class or features with no variation; higher is better.",
    batch_notes="""
    The rate of Z comes from one batched symmetric eigendecomposition of its Gram matrix
    (n x n, or d x d when n > d), eigenvalues outside the numerical rank taken as 0. Those of
    the classes, Σ log(1 + λ / ε), are log-determinants: from batched Cholesky factors of
    the Gram matrices of all (episode, class) blocks, zero-padded to the largest class
    (padding adds factors of exactly 1).
    """,
    examples="""
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> labels = np.arange(40) % 2
    >>> separated = rng.normal(size=(40, 3)) + 3.0 * labels[:, None]
    >>> noise = rng.normal(size=(40, 3))
    >>> transrate_score(separated, labels) > transrate_score(noise, labels)
    True
    >>> transrate_score(noise, np.zeros(40, dtype=int))
    0.0
    """,
    batch_examples="""
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> feats = rng.normal(size=(3, 10, 4))
    >>> labels = np.tile(np.arange(10) % 2, (3, 1))
    >>> scores = transrate_score_batch(feats, labels, variant="tllib")
    >>> bool(abs(scores[1] - transrate_score(feats[1], labels[1], variant="tllib")) < 1e-12)
    True
    """,
)
transrate_score = SPEC.score
transrate_score_batch = SPEC.score_batch
__test__ = {"transrate_score": transrate_score, "batch": transrate_score_batch}
