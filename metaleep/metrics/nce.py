"""NCE, the Negative Conditional Entropy (Tran, Nguyen, Hassner, ICCV 2019), as in the LEEP paper.

The source model's hard predictions z_i = argmax_z θ(x_i)_z (ties: the lowest index) and the
target labels y_i give an empirical joint P̃(y, z) = #{i: y_i = y, z_i = z} / n;
NCE = -H(Y | Z) = Σ_{y,z} P̃(y, z) log P̃(y | z), empty cells skipped; NCE <= 0.

Both :func:`nce_score` and :func:`nce_score_batch` derive from :func:`_nce_core`
(:func:`metaleep.metrics.spec.define_metric`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from metaleep.metrics.leep import KERNEL, precheck_kernel
from metaleep.metrics.spec import FROM_LOGITS, VALIDATE, define_metric

if TYPE_CHECKING:
    import torch

    from metaleep.metrics._validation import Episodes

__all__ = ["nce_score", "nce_score_batch"]


def _nce_core(ep: Episodes, *, kernel: bool | None = None, **_options: Any) -> torch.Tensor:
    """NCE of every episode of ``ep`` as an ``(E,)`` float64 tensor.

    Works on probabilities or logits alike (argmax is invariant to the softmax). ``kernel``
    picks the implementation: the fused CPU kernel (:mod:`metaleep.metrics._kernels`) or torch
    ops (any device); ``None`` uses the kernel for large inputs on the CPU, like LEEP
    (:data:`metaleep.metrics.leep.KERNEL_MIN_VALUES`). Both run the deferred probability
    checks.
    """
    import torch

    from metaleep.metrics.leep import check_kernel_device, use_kernel

    if kernel:
        check_kernel_device(ep.values)
    if kernel or (kernel is None and use_kernel(ep.values)):
        return _nce_kernel(ep)
    ep.check_probs()  # the deferred checks, if any: two reads of the values
    n_ep, _, n_src = ep.values.shape
    n_cells = n_ep * ep.n_codes * n_src
    # Hard predictions; torch.max returns the first maximum on ties (and is much faster than
    # argmax on CPU).
    hard = torch.max(ep.values, dim=-1).indices.view(-1)
    # Cell (e, y, z) of each row; padding (group E*C) lands in the dump bins beyond E*C*Z.
    cells = ep.groups * n_src + hard
    weights = ep.values.new_ones(cells.shape[0])
    joint = torch.bincount(cells, weights, minlength=n_cells + n_src)[:n_cells]
    per_source = joint.view(n_ep, ep.n_codes, n_src).sum(1)  # (E, Z)
    # n NCE = sum_{y,z} c(y,z) log(c(y,z) / c(z)) = sum c log c - sum_z c(z) log c(z),
    # with 0 log 0 = 0 (xlogy).
    within = torch.special.xlogy(joint, joint).view(n_ep, -1).sum(1)
    marginal = torch.special.xlogy(per_source, per_source).sum(1)
    return (within - marginal) / ep.sizes


def _nce_kernel(ep: Episodes) -> torch.Tensor:
    """:func:`_nce_core` on the CPU: the fused numba kernel, one episode at a time."""
    import torch

    from metaleep.metrics._kernels import nce_sums

    n_ep, n_rows, n_src = ep.values.shape
    sums, row_sums, minimum = nce_sums(
        ep.values.numpy().reshape(n_ep * n_rows, n_src),
        ep.groups.numpy(),
        n_ep,
        ep.n_codes,
        check=ep.probs_unchecked,
    )
    if row_sums is not None:
        ep.check_probs(torch.from_numpy(row_sums), torch.tensor(minimum))
    return torch.from_numpy(sums) / ep.sizes


SPEC = define_metric(
    name="nce",
    title="NCE",
    core=_nce_core,
    input_kind="probs",
    options=(FROM_LOGITS, VALIDATE, KERNEL),
    precheck=precheck_kernel,
    module=__name__,
    description="Negative conditional entropy of labels given hard source predictions "
    "(Tran et al., ICCV 2019).",
    summary="-H(Y | Z) for the source model's hard predictions Z (only the argmax of each row "
    "is used; with ``from_logits=True``, the argmax of the logits).",
    returns="NCE in ``(-inf, 0]``; 0 when every source label maps to one target class.",
    examples="""
    Predictions z = (0, 0, 1, 1) for labels y = (0, 1, 1, 1): the cell z = 0 is split evenly
    (entropy log 2, weight 1/2), z = 1 is pure, so NCE = -(1/2) log 2:

    >>> nce_score([[0.9, 0.1], [0.6, 0.4], [0.3, 0.7], [0.2, 0.8]], [0, 1, 1, 1])
    -0.3465...
    >>> nce_score([[0.0, 3.0], [5.0, 1.0]], [10, 20], from_logits=True)
    0.0
    """,
    batch_notes="""
    One argmax pass over ``probs``, then one ``bincount`` of the (episode, y, z) cells into an
    (E, C, Z) table, no larger than the input; NCE = (Σ c log c - Σ_z c_z log c_z) / n over
    the cell counts c and the per-source counts c_z.
    """,
    batch_examples="""
    >>> nce_score_batch([[[1.0, 0.0], [0.0, 1.0]], [[1.0, 0.0], [1.0, 0.0]]], [[0, 1], [0, 1]])
    array([ 0.        , -0.6931...])
    """,
)
nce_score = SPEC.score
nce_score_batch = SPEC.score_batch
__test__ = {"nce_score": nce_score, "batch": nce_score_batch}
