"""LEEP, the Log Expected Empirical Prediction (Nguyen, Hassner, Seeger, Archambeau, ICML 2020).

A source model θ maps each target input x_i to a distribution θ(x_i) over its Z source labels.
With n target samples and labels y_i:

- joint       P(y, z) = (1/n) Σ_{i: y_i = y} θ(x_i)_z
- marginal    P(z) = Σ_y P(y, z)
- conditional P(y | z) = P(y, z) / P(z)
- LEEP = (1/n) Σ_i log( Σ_z P(y_i | z) θ(x_i)_z )  ≤ 0

Conventions (see the module docs of :mod:`metaleep.metrics`): a source label with zero mass in
every row (P(z) = 0) contributes 0 (the terms using P(y | z) are multiplied by θ(x_i)_z = 0), so
the score is finite and equals the paper's value; one target class gives exactly 0; target ids
are re-encoded, so gaps do not matter.

Both :func:`leep_score` and :func:`leep_score_batch` derive from :func:`leep_core`
(:func:`metaleep.metrics.spec.define_metric`): torch ops, or a fused CPU kernel for large inputs
(:mod:`metaleep.metrics._kernels`); tests run both.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from metaleep._exact import matmul
from metaleep.metrics.spec import FROM_LOGITS, VALIDATE, Option, define_metric

if TYPE_CHECKING:
    import torch

    from metaleep.metrics._validation import Episodes

__all__ = ["leep_score", "leep_score_batch"]

Strategy = Literal["auto", "torch", "kernel", "dense", "sparse", "gather"]

_DENSE_MAX_CODES = 16
"""``auto`` uses the dense expected-prediction pass when C <= min(16, Z), else the gathered
dot products."""

KERNEL_MIN_VALUES = 1 << 20
"""``auto`` uses the fused CPU kernel from this many probabilities (E * n * Z) up. Below, torch
ops take at most a few milliseconds, while the kernel's first call in a process costs about
0.4 s (importing numba and loading the compiled kernel from its cache): it pays off only on
large batches. The choice depends on the input's shape alone, so results are reproducible."""


def use_kernel(values: torch.Tensor) -> bool:
    """Whether ``auto`` computes on ``values`` with the fused CPU kernel."""
    return values.device.type == "cpu" and values.numel() >= KERNEL_MIN_VALUES


def kernel_strategy(kernel: object, probs: object = None) -> Strategy:
    """The strategy of the ``kernel`` option: None ``auto``, True ``kernel``, False ``torch``
    (checked, with ``probs`` when it is a tensor, before any other work)."""
    import torch

    if kernel is None:
        return "auto"
    if not isinstance(kernel, bool):
        raise TypeError(f"`kernel` must be None, True or False; got {kernel!r}.")
    if kernel and isinstance(probs, torch.Tensor):
        check_kernel_device(probs)
    return "kernel" if kernel else "torch"


def check_kernel_device(values: torch.Tensor) -> None:
    """The fused kernel runs on the CPU: a clear error for tensors elsewhere."""
    if values.device.type != "cpu":
        raise ValueError(
            "`kernel=True` needs the input on the CPU (the fused kernel is CPU code); got a "
            f"tensor on {values.device}. Pass kernel=None or False for torch ops on any device."
        )


def leep_core(ep: Episodes, *, from_logits: bool, strategy: Strategy = "auto") -> torch.Tensor:
    """LEEP of every episode of ``ep`` as an ``(E,)`` float64 tensor.

    ``strategy`` picks how (same maths, different cost): ``"kernel"``, the fused CPU kernel of
    :mod:`metaleep.metrics._kernels` (numpy-backed CPU tensors only), or torch ops in two
    passes, the joint (one ``index_add_`` of the rows into an (E*C + 1, Z) table) then the
    expected prediction: ``"dense"`` (batched matmul against all C classes, then a gather),
    ``"sparse"`` (a sampled sparse product computing one dot product per row) or ``"gather"``
    (the same dot products on gathered chunks of rows). ``"auto"`` picks the kernel for large
    inputs on the CPU (:data:`KERNEL_MIN_VALUES`), else dense when C <= min(16, Z), else
    gather; ``"torch"`` picks like ``"auto"`` without the kernel. The kernel, dense and gather
    give each episode the same bits in any batch (:mod:`metaleep._exact`); the sampled sparse
    product (MKL) does not promise that and is never picked on its own. When ``ep``
    defers the probability checks, every strategy computes the row sums and the minimum in
    its own passes and runs them.
    """
    import torch

    values = ep.values
    if strategy == "kernel":
        check_kernel_device(values)
    if strategy == "kernel" or (strategy == "auto" and use_kernel(values)):
        return _leep_kernel(ep, from_logits=from_logits)
    probs = _softmax(values) if from_logits else values
    check = ep.probs_unchecked and not from_logits
    minimum = torch.amin(values) if check else None  # NaN if any entry is NaN
    n_ep, n_rows, n_src = probs.shape
    n_codes = ep.n_codes
    flat = probs.view(n_ep * n_rows, n_src)

    if strategy in ("auto", "torch"):
        dense = n_codes <= min(_DENSE_MAX_CODES, n_src)
        if not dense:
            strategy = "gather"
    else:
        dense = strategy == "dense"
    # Joint (unnormalised: the 1/n cancels in P(y|z)), one read of probs: rows added into an
    # (E*C + 1, Z) table; the extra row collects the padding, which may hold NaN.
    table = probs.new_zeros((n_ep * n_codes + 1, n_src))
    table.index_add_(0, ep.groups, flat)
    joint = table[: n_ep * n_codes].view(n_ep, n_codes, n_src)
    marginal = joint.sum(1)  # (E, Z)
    # P(y | z); a zero-mass source label (marginal 0, so joint 0) gets 0: its terms vanish.
    inv = torch.where(marginal > 0, marginal.reciprocal(), 0.0)
    cond = joint.mul_(inv[:, None, :])  # (E, C, Z)
    # Row E*C becomes ones: a product with it is a row sum (for the checks).
    table[n_ep * n_codes] = 1.0

    row_sums: torch.Tensor | None = None
    if dense:
        # (E, n, C + 1): the expected prediction for every class, and the row sums, when that
        # product is small (C + 1 <= Z / 2); otherwise (E, n, C) and the row sums apart (a
        # matrix-vector product), so that the temporaries stay below the input's size.
        fused = check and 2 * (n_codes + 1) <= n_src
        rhs = cond
        if check and not fused and minimum is not None:
            # Checked before the product, so that the row sums are freed before it exists.
            sums = flat.sum(1).view(n_ep, n_rows)
            if ep.valid is not None:
                sums = torch.where(ep.valid, sums, 1.0)
            ep.check_probs(sums, minimum)
            del sums
            check = False
        if fused:
            rhs = table.new_empty((n_ep, n_codes + 1, n_src))
            rhs[:, :n_codes] = cond
            rhs[:, n_codes].fill_(1.0)
        expected = matmul(probs, rhs.transpose(1, 2))
        pred = expected.gather(2, ep.codes[:, :, None]).squeeze(2)  # (E, n)
        if fused:
            row_sums = expected[:, :, n_codes]
        if ep.valid is None:
            log_sum = pred.log_().sum(1)
        else:
            log_sum = torch.where(ep.valid, pred, 1.0).log_().sum(1)
            if row_sums is not None:
                row_sums = torch.where(ep.valid, row_sums, 1.0)
    else:
        gather = strategy == "gather"
        pred, row_sums, episode_of_row = _sampled_expected_prediction(
            flat, table, ep, gather=gather, row_sums=check
        )
        log_sum = probs.new_zeros(n_ep).index_add_(0, episode_of_row, pred.log_())
    if check and row_sums is not None and minimum is not None:
        ep.check_probs(row_sums, minimum)
    scores = log_sum / ep.sizes
    # One target class: P(y | z) = 1 wherever P(z) > 0, LEEP = log 1 = 0 exactly (without this,
    # rows summing to 1 within the tolerance would give a tiny non-zero value).
    return torch.where(ep.n_classes == 1, 0.0, scores)


def _leep_kernel(ep: Episodes, *, from_logits: bool) -> torch.Tensor:
    """:func:`leep_core` on the CPU: the fused numba kernel, one episode at a time."""
    import torch

    from metaleep.metrics._kernels import leep_log_sums

    n_ep, n_rows, n_src = ep.values.shape
    probs = _softmax(ep.values) if from_logits else ep.values
    check = ep.probs_unchecked and not from_logits
    log_sums, row_sums, minimum = leep_log_sums(
        probs.numpy().reshape(n_ep * n_rows, n_src),
        ep.groups.numpy(),
        n_ep,
        ep.n_codes,
        check=check,
    )
    if row_sums is not None:
        ep.check_probs(torch.from_numpy(row_sums), torch.tensor(minimum))
    return torch.from_numpy(log_sums) / ep.sizes  # 0 for one target class


_SMALL_SOFTMAX = 16
"""Up to this many source labels, :func:`_softmax` uses elementwise ops (torch's softmax kernel
is slow on short rows)."""


def _softmax(logits: torch.Tensor) -> torch.Tensor:
    """Softmax over the last dimension of finite logits ``(E, n, Z)``, as a new tensor.

    ``exp(logits - max)`` normalised by its row sums: the largest term of each row is 1, so
    nothing overflows, and a row sum is at least 1. On short rows the row max and row sums are
    two reductions, several times faster there than torch's kernel (row sums by a
    matrix-vector product would be faster still, but MKL's give a row other bits at other
    positions of the batch).
    """
    import torch

    n_src = logits.shape[-1]
    if n_src > _SMALL_SOFTMAX:
        return torch.softmax(logits, dim=-1)
    probs = logits - torch.amax(logits, dim=-1, keepdim=True)
    probs.exp_()
    probs.div_(probs.sum(-1, keepdim=True))
    return probs


def _sampled_expected_prediction(
    flat: torch.Tensor,
    table: torch.Tensor,
    ep: Episodes,
    *,
    gather: bool = False,
    row_sums: bool = False,
) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
    """Σ_z P(y_i | z) θ(x_i)_z for the valid rows only, their row sums, each row's episode.

    ``table`` is ``(E*C + 1, Z)``: P(y | z) in rows ``e*C + y``, ones in the last row. A sparse
    CSR pattern with the entry (row i, column e*C + y_i) per valid row, and (row i, E*C) when
    ``row_sums`` is set, samples the product ``flat @ tableᵀ``: dot products of length Z, no
    (n, C) or (n, Z) temporary. Where ``torch.sparse.sampled_addmm`` is unavailable (or
    ``gather=True``), the same dot products run on chunks of rows: the rows of P(y | z)
    gathered by label, multiplied by the rows of probs and summed, with temporaries of about
    8 MiB. The row sums are ``None`` unless ``row_sums`` is set.
    """
    import warnings

    import torch

    n_rows, n_src = flat.shape
    n_ep, rows_per_ep = ep.codes.shape
    ones_row = table.shape[0] - 1
    device = flat.device
    if ep.valid is None:
        rows = None
        columns = ep.groups
        episode_of_row = torch.arange(n_ep, device=device).repeat_interleave(rows_per_ep)
    else:
        valid_flat = ep.valid.reshape(-1)
        rows = valid_flat.nonzero().squeeze(1)
        columns = ep.groups[valid_flat]
        episode_of_row = torch.arange(n_ep, device=device)[:, None].expand_as(ep.valid)
        episode_of_row = episode_of_row[ep.valid]
    n_valid = columns.shape[0]
    if not gather:
        per_row = 2 if row_sums else 1
        if ep.valid is None:
            crow = torch.arange(0, per_row * n_rows + 1, per_row, device=device)
        else:
            crow = torch.zeros(n_rows + 1, dtype=torch.int64, device=device)
            torch.cumsum(valid_flat, 0, out=crow[1:])
            crow.mul_(per_row)
        if row_sums:
            columns = torch.stack((columns, columns.new_full((n_valid,), ones_row)), 1).view(-1)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)  # "sparse CSR support is in beta"
                pattern = torch.sparse_csr_tensor(
                    crow,
                    columns,
                    flat.new_zeros(columns.shape[0]),
                    size=(n_rows, table.shape[0]),
                    check_invariants=False,
                )
                sampled = torch.sparse.sampled_addmm(pattern, flat, table.t(), beta=0.0)
            products = sampled.values()
            if not row_sums:
                return products, None, episode_of_row
            products = products.view(n_valid, 2)
            return products[:, 0], products[:, 1], episode_of_row
        except (RuntimeError, NotImplementedError):  # pragma: no cover - build without it
            columns = columns.view(n_valid, per_row)[:, 0]
    pred = flat.new_empty(n_valid)
    sums = flat.new_empty(n_valid) if row_sums else None
    chunk = max(1, (1 << 20) // n_src)
    for start in range(0, n_valid, chunk):
        stop = min(start + chunk, n_valid)
        part = flat[start:stop] if rows is None else flat.index_select(0, rows[start:stop])
        block = table.index_select(0, columns[start:stop])
        block.mul_(part)
        torch.sum(block, 1, out=pred[start:stop])
        if sums is not None:
            torch.sum(part, 1, out=sums[start:stop])
    return pred, sums, episode_of_row


def check_kernel(value: object) -> bool | None:
    """The ``kernel`` option: None, True or False."""
    kernel_strategy(value)
    return value  # type: ignore[return-value]


def precheck_kernel(x: object, options: dict[str, Any]) -> None:
    """``kernel=True`` with a tensor off the CPU fails before any conversion."""
    kernel_strategy(options["kernel"], x)


KERNEL = Option(
    "kernel",
    None,
    "``None`` (default): the fused CPU kernel for inputs of at least 2^20 values on the CPU "
    "(:data:`metaleep.metrics.leep.KERNEL_MIN_VALUES`), torch ops otherwise; ``True``: the "
    "kernel (CPU only); ``False``: torch ops. The two agree to about 1e-15, not bit for bit: "
    "fix it when values must not depend on how many episodes go into one call.",
    check_kernel,
    annotation="bool | None",
)
"""The ``kernel`` option of LEEP and NCE."""


def _leep(ep: Episodes, *, from_logits: bool, kernel: bool | None, **_options: Any) -> torch.Tensor:
    return leep_core(ep, from_logits=from_logits, strategy=kernel_strategy(kernel))


SPEC = define_metric(
    name="leep",
    title="LEEP",
    core=_leep,
    input_kind="probs",
    options=(FROM_LOGITS, VALIDATE, KERNEL),
    precheck=precheck_kernel,
    module=__name__,
    description="Log expected empirical prediction (Nguyen et al., ICML 2020).",
    summary="How well the source model's outputs predict the target labels.",
    returns="LEEP in ``(-inf, 0]``; higher is better.",
    notes="""
    Only the probabilities need log space: the expected prediction of sample i is at least
    1 / (n Z²) (its most likely source label z* has θ(x_i)_z* >= 1/Z and P(y_i | z*) >= θ(x_i)_z*
    / n), so its log never underflows; a source label whose probability underflows contributes
    less than the float64 resolution.
    """,
    examples="""
    A source whose output ignores the input scores -H(Y) (here log 2 for two balanced classes):

    >>> leep_score([[0.5, 0.5]] * 4, [0, 1, 0, 1])
    -0.6931...

    A confident source whose labels map one-to-one onto the targets scores 0:

    >>> leep_score([[1.0, 0.0], [0.0, 1.0]], [3, 7])
    0.0
    >>> leep_score([[2.0, -1.0], [0.5, 3.0]], [0, 1], from_logits=True)
    -0.1225...
    """,
    batch_notes="""
    Inputs of at least 2^20 probabilities on the CPU go to a fused kernel (numba) that scores
    one episode at a time, checks included: the joint, the row sums and the minimum in one
    pass over the episode's rows, then the expected prediction Σ_z P(y_i | z) θ(x_i)_z from
    cache: about one read of ``probs`` from memory when episodes are small, two for one large
    episode; its temporaries are the row sums (1/Z of the input) and one (C, Z) table. Its
    first call in a process takes about 0.4 s more (numba's start-up). Smaller inputs, and
    CUDA tensors, go through torch ops in two passes: one ``index_add_`` of the rows into an
    (E, C, Z) table, then a batched matmul against [P(y | z)ᵀ | 1] and a gather when
    C <= min(16, Z), otherwise only the needed dot products, on gathered rows. Either way an
    episode's value does not depend on the other episodes of the batch.
    ``from_logits=True`` adds the probabilities as one temporary of the input's size (a
    softmax: exp-bound, several reads' worth).
    """,
    batch_examples="""
    >>> import numpy as np
    >>> probs = np.array([[[0.9, 0.1], [0.2, 0.8]], [[0.5, 0.5], [0.5, 0.5]]])
    >>> leep_score_batch(probs, [[0, 1], [0, 1]])
    array([-0.2910..., -0.6931...])
    >>> leep_score_batch([probs[0], probs[1, :1]], [[0, 1], [4]])  # ragged: a list of episodes
    array([-0.2910...,  0.        ])
    """,
)
leep_score = SPEC.score
leep_score_batch = SPEC.score_batch
__test__ = {"leep_score": leep_score, "batch": leep_score_batch}
