"""GBC, the Gaussian Bhattacharyya Coefficient (Pandy, Agostinelli, Uijlings, Ferrari, Mensink,
CVPR 2022), as google-research ``stable_transfer/transferability/gbc.py``.

Each target class c is a Gaussian with the class mean μ_c and the per-dimension variance σ²_c
(divided by n_c), floored at 1e-4. For two classes, the Bhattacharyya distance with
σ = (σ_1 + σ_2) / 2 is

    BD = (1/8) Σ_d (μ_1 - μ_2)² / σ + (1/2) (Σ log σ - ½ Σ log σ_1 - ½ Σ log σ_2),

and GBC = -Σ over ordered pairs c_1 ≠ c_2 of exp(-BD) (each pair counted twice, as the
reference does). Higher (closer to 0) is better: the classes overlap less.

``gaussian="spherical"`` (the reference's default) averages each class's variances to one number;
its log terms are then summed once, not d times (the reference's quirk, kept).
``"diagonal"`` keeps the d variances. The reference pipeline reduces features to 64 dimensions
by PCA before scoring; the score itself does not, and neither does metaleep.

Degenerate input: one class has no pair, GBC = 0; features with no variation give identical
Gaussians, BD = 0 and GBC = -C(C - 1); a class with one sample has variance 0, floored at 1e-4
(GBC depends on the scale of the features through that floor). Features so large that a class
variance overflows are an error.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from metaleep.metrics._validation import message
from metaleep.metrics.spec import VALIDATE, Option, define_metric

if TYPE_CHECKING:
    import torch

    from metaleep.metrics._validation import Episodes

__all__ = ["gbc_score", "gbc_score_batch"]

VARIANCE_FLOOR = 1e-4
"""Per-dimension class variances below this are raised to it (the reference's floor)."""
GAUSSIANS = ("spherical", "diagonal")
_CHUNK_VALUES = 1 << 21
"""Episodes are processed in chunks whose pairwise (chunk, C, C, d) temporaries stay below this."""


def _check_gaussian(value: object) -> str:
    if not isinstance(value, str):
        raise TypeError(message("gaussian", "'spherical' or 'diagonal'", value))
    if value not in GAUSSIANS:
        raise ValueError(message("gaussian", "'spherical' or 'diagonal'", value))
    return value


def _gbc_core(ep: Episodes, *, gaussian: str = "spherical", **_options: Any) -> torch.Tensor:
    """GBC of every episode of ``ep`` as an ``(E,)`` float64 tensor (the only implementation)."""
    import torch

    from metaleep.metrics._linalg import class_sums

    feats = ep.zero_padding()
    n_ep, _, dim = feats.shape
    counts = ep.class_counts.to(feats.dtype)
    present = ep.class_counts > 0
    means = class_sums(feats, ep.groups, ep.n_codes) / counts.clamp_min(1.0)[..., None]
    deviations = feats - means.gather(1, ep.codes[..., None].expand(-1, -1, dim))
    if ep.valid is not None:
        deviations = deviations * ep.valid[..., None]
    var = class_sums(deviations.square(), ep.groups, ep.n_codes) / counts.clamp_min(1.0)[..., None]
    if not bool(torch.isfinite(var).all()):
        largest = float(feats.abs().max())
        expected = (
            "small enough for the class variances to be finite in gbc (|values| up to about 1e150)"
        )
        raise ValueError(message("features", expected, largest))
    var = var.clamp_min(VARIANCE_FLOOR)
    if gaussian == "spherical":
        var = var.mean(2, keepdim=True)  # (E, C, 1): one variance per class
    log_var = var.log().sum(2)  # (E, C)
    pair = present[:, :, None] & present[:, None, :]
    pair &= ~torch.eye(ep.n_codes, dtype=torch.bool, device=feats.device)[None]
    out = feats.new_empty(n_ep)
    step = max(1, _CHUNK_VALUES // max(1, ep.n_codes * ep.n_codes * dim))
    for start in range(0, n_ep, step):
        part = slice(start, min(start + step, n_ep))
        diff = (means[part, :, None, :] - means[part, None, :, :]).square()
        avg = (var[part, :, None, :] + var[part, None, :, :]) / 2.0
        first = (diff / avg).sum(3) / 8.0
        second = avg.log().sum(3) - 0.5 * log_var[part, :, None] - 0.5 * log_var[part, None, :]
        coefficient = torch.exp(-(first + 0.5 * second))
        out[part] = -torch.where(pair[part], coefficient, 0.0).sum((1, 2))
    return out


SPEC = define_metric(
    name="gbc",
    title="GBC",
    core=_gbc_core,
    input_kind="features",
    options=(
        Option(
            "gaussian",
            "spherical",
            "``'spherical'`` (default, the reference's): one variance per class; "
            "``'diagonal'``: one per class and dimension.",
            _check_gaussian,
            annotation="str",
        ),
        VALIDATE,
    ),
    module=__name__,
    description="Gaussian Bhattacharyya coefficient between classes (Pandy et al., CVPR 2022; "
    "google-research stable_transfer).",
    returns="GBC, <= 0 (0 for one class); higher means less class overlap.",
    batch_notes="""
    Class means and variances come from two ``index_add_`` passes over the features (means,
    then squared deviations); the pairwise distances are computed for all episodes at once,
    in chunks of episodes that bound the (C, C, d) temporaries.
    """,
    examples="""
    >>> feats = [[0.0, 0.0], [0.2, 0.0], [5.0, 5.0], [5.2, 5.0]]
    >>> -1e-12 < gbc_score(feats, [0, 0, 1, 1]) <= 0.0   # far apart: almost no overlap
    True
    >>> gbc_score([[1.0], [1.0], [1.0]], [0, 1, 2])   # identical classes: -C(C - 1)
    -6.0
    """,
    batch_examples="""
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> feats = rng.normal(size=(3, 10, 4))
    >>> labels = np.tile(np.arange(10) % 2, (3, 1))
    >>> scores = gbc_score_batch(feats, labels, gaussian="diagonal")
    >>> bool(abs(scores[1] - gbc_score(feats[1], labels[1], gaussian="diagonal")) < 1e-12)
    True
    """,
)
gbc_score = SPEC.score
gbc_score_batch = SPEC.score_batch
__test__ = {"gbc_score": gbc_score, "batch": gbc_score_batch}
