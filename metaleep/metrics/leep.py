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

The per-episode :func:`leep_score` is :func:`leep_score_batch` on a batch of one episode; both run
:func:`_leep_core`, the only implementation of the formula.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

import numpy as np

if TYPE_CHECKING:
    import torch

    from metaleep.metrics._validation import Episodes, Kind

__all__ = ["leep_score", "leep_score_batch"]

Strategy = Literal["auto", "dense", "sparse", "gather"]

_DENSE_MAX_CODES = 16
"""``auto`` uses the dense expected-prediction pass when C <= min(16, Z), else the sparse one."""


def leep_score(
    probs: Any, labels: Any, *, from_logits: bool = False, validate: bool = True
) -> float:
    """LEEP of one episode: how well the source model's outputs predict the target labels.

    Parameters
    ----------
    probs:
        ``(n, Z)`` source-model probabilities θ(x_i) of the n target samples over the Z source
        labels (numpy array, torch tensor or nested list; computed in float64 on the tensor's
        device). Rows must be finite, non-negative and sum to 1 within ``1e-6``.
    labels:
        ``(n,)`` integer target labels y_i; any ids (re-encoded internally).
    from_logits:
        ``probs`` holds logits (any finite reals); θ = softmax computed in log space
        (``exp(logits - logsumexp(logits))``), so that huge logits neither overflow nor turn
        into NaN.
    validate:
        Check the values (finite, probability rows; one or two extra reads of ``probs``).
        ``False`` skips those checks for speed: the caller guarantees valid input. Shapes and
        dtypes are always checked.

    Returns
    -------
    float
        LEEP in ``(-inf, 0]``; higher is better.

    Raises
    ------
    TypeError
        Non-numeric ``probs``; non-integer ``labels`` (bool and float included).
    ValueError
        Wrong shapes, no samples, non-finite values, or rows that are not probabilities (the
        message suggests ``from_logits=True``).

    Notes
    -----
    Only the probabilities need log space: the expected prediction of sample i is at least
    1 / (n Z²) (its most likely source label z* has θ(x_i)_z* >= 1/Z and P(y_i | z*) >= θ(x_i)_z*
    / n), so its log never underflows; a source label whose probability underflows contributes
    less than the float64 resolution.

    Examples
    --------
    A source whose output ignores the input scores -H(Y) (here log 2 for two balanced classes):

    >>> leep_score([[0.5, 0.5]] * 4, [0, 1, 0, 1])
    -0.6931...

    A confident source whose labels map one-to-one onto the targets scores 0:

    >>> leep_score([[1.0, 0.0], [0.0, 1.0]], [3, 7])
    0.0
    >>> leep_score([[2.0, -1.0], [0.5, 3.0]], [0, 1], from_logits=True)
    -0.1225...
    """
    from metaleep.metrics._validation import check_flag, episodes

    check_flag(from_logits, "from_logits")
    check_flag(validate, "validate")
    kind: Kind = "logits" if from_logits else "probs"
    ep = episodes(
        probs, labels, name="probs", kind=kind, metric="leep", single=True, validate=validate
    )
    return float(_leep_core(ep, from_logits=from_logits)[0])


def leep_score_batch(
    probs: Any,
    labels: Any,
    *,
    mask: Any = None,
    from_logits: bool = False,
    validate: bool = True,
) -> np.ndarray:
    """LEEP of E episodes at once, vectorised in torch (no Python loop over episodes).

    Parameters
    ----------
    probs:
        ``(E, n, Z)`` array or tensor, or a sequence of E ``(n_e, Z)`` arrays (episodes of
        different sizes; padded internally). Computed in float64 on the tensor's device.
    labels:
        ``(E, n)`` integer labels, or a sequence of E ``(n_e,)`` arrays.
    mask:
        Optional ``(E, n)`` bool (array form only): ``True`` for the rows of each episode;
        the other rows are ignored and may hold anything.
    from_logits, validate:
        As in :func:`leep_score`.

    Returns
    -------
    numpy.ndarray
        ``(E,)`` float64 scores, equal to :func:`leep_score` of each episode (to ~1e-15).

    Notes
    -----
    Cost: with validation, two reads of ``probs`` to check it and two to score it, with no
    temporary of its size (``from_logits=True`` makes one, the probabilities): the joint is one
    ``index_add_`` of the rows into an (E, C, Z) table; the expected prediction
    Σ_z P(y_i | z) θ(x_i)_z is a batched matmul against P(y | z)ᵀ (E, Z, C) followed by a
    gather when C <= min(16, Z), and otherwise a sampled sparse product that computes only the
    n needed dot products (``torch.sparse.sampled_addmm``).

    Examples
    --------
    >>> import numpy as np
    >>> probs = np.array([[[0.9, 0.1], [0.2, 0.8]], [[0.5, 0.5], [0.5, 0.5]]])
    >>> leep_score_batch(probs, [[0, 1], [0, 1]])
    array([-0.2910..., -0.6931...])
    >>> leep_score_batch([probs[0], probs[1, :1]], [[0, 1], [4]])  # ragged: a list of episodes
    array([-0.2910...,  0.        ])
    """
    from metaleep.metrics._validation import as_float_array, check_flag, episodes

    check_flag(from_logits, "from_logits")
    check_flag(validate, "validate")
    kind: Kind = "logits" if from_logits else "probs"
    ep = episodes(
        probs,
        labels,
        mask,
        name="probs",
        kind=kind,
        metric="leep",
        single=False,
        validate=validate,
    )
    return as_float_array(_leep_core(ep, from_logits=from_logits))


def _leep_core(ep: Episodes, *, from_logits: bool, strategy: Strategy = "auto") -> torch.Tensor:
    """LEEP of every episode of ``ep`` as an ``(E,)`` float64 tensor (the only implementation).

    The joint is always one ``index_add_`` of the rows. ``strategy`` picks how the expected
    prediction is computed (same maths, different cost): ``"dense"`` (batched matmul against
    all C classes, then a gather), ``"sparse"`` (a sampled sparse product computing one dot
    product per row) or ``"gather"`` (the same dot products on gathered chunks of rows: the
    fallback where sampled products are unavailable); ``"auto"`` picks dense when
    C <= min(16, Z), else sparse.
    """
    import torch

    probs = ep.values
    if from_logits:
        probs = torch.log_softmax(probs, dim=-1).exp_()
    n_ep, n_rows, n_src = probs.shape
    n_codes = ep.n_codes
    flat = probs.view(n_ep * n_rows, n_src)

    dense = n_codes <= min(_DENSE_MAX_CODES, n_src) if strategy == "auto" else strategy == "dense"
    # Joint (unnormalised: the 1/n cancels in P(y|z)), one read of probs: rows added into an
    # (E*C + 1, Z) table; the extra row collects the padding, which may hold NaN.
    table = probs.new_zeros((n_ep * n_codes + 1, n_src))
    table.index_add_(0, ep.groups, flat)
    joint = table[: n_ep * n_codes].view(n_ep, n_codes, n_src)
    marginal = joint.sum(1)  # (E, Z)
    # P(y | z); a zero-mass source label (marginal 0, so joint 0) gets 0: its terms vanish.
    inv = torch.where(marginal > 0, marginal.reciprocal(), 0.0)
    cond = joint.mul_(inv[:, None, :])  # (E, C, Z)

    if dense:
        expected = torch.bmm(probs, cond.transpose(1, 2))  # (E, n, C)
        pred = expected.gather(2, ep.codes[:, :, None]).squeeze(2)  # (E, n)
        if ep.valid is None:
            log_sum = pred.log_().sum(1)
        else:
            log_sum = torch.where(ep.valid, pred, 1.0).log_().sum(1)
    else:
        gather = strategy == "gather"
        pred, episode_of_row = _sampled_expected_prediction(flat, cond, ep, gather=gather)
        log_sum = probs.new_zeros(n_ep).index_add_(0, episode_of_row, pred.log_())
    scores = log_sum / ep.sizes
    # One target class: P(y | z) = 1 wherever P(z) > 0, LEEP = log 1 = 0 exactly (without this,
    # rows summing to 1 within the tolerance would give a tiny non-zero value).
    return torch.where(ep.n_classes == 1, 0.0, scores)


def _sampled_expected_prediction(
    flat: torch.Tensor, cond: torch.Tensor, ep: Episodes, *, gather: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """Σ_z P(y_i | z) θ(x_i)_z for the valid rows only, and each row's episode index.

    A sparse CSR pattern with one entry (row i, column e*C + y_i) per valid row samples the
    product ``flat @ cond_flatᵀ``: n dot products of length Z, no (n, C) or (n, Z) temporary.
    Where ``torch.sparse.sampled_addmm`` is unavailable (or ``gather=True``), the same dot
    products run on chunks of rows: the rows of P(y | z) gathered by label, multiplied by the
    rows of probs and summed, with temporaries of about 8 MiB.
    """
    import warnings

    import torch

    n_ep, n_codes, n_src = cond.shape
    n_rows = flat.shape[0]
    device = flat.device
    rows_per_ep = ep.codes.shape[1]
    if ep.valid is None:
        rows = None
        columns = ep.groups
        crow = torch.arange(n_rows + 1, device=device)
        episode_of_row = torch.arange(n_ep, device=device).repeat_interleave(rows_per_ep)
    else:
        valid_flat = ep.valid.reshape(-1)
        rows = valid_flat.nonzero().squeeze(1)
        columns = ep.groups[valid_flat]
        crow = torch.zeros(n_rows + 1, dtype=torch.int64, device=device)
        torch.cumsum(valid_flat, 0, out=crow[1:])
        episode_of_row = torch.arange(n_ep, device=device)[:, None].expand_as(ep.valid)
        episode_of_row = episode_of_row[ep.valid]
    table = cond.view(n_ep * n_codes, n_src)
    if not gather:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)  # "sparse CSR support is in beta"
                pattern = torch.sparse_csr_tensor(
                    crow,
                    columns,
                    flat.new_zeros(columns.shape[0]),
                    size=(n_rows, n_ep * n_codes),
                    check_invariants=False,
                )
                sampled = torch.sparse.sampled_addmm(pattern, flat, table.t(), beta=0.0)
            return sampled.values(), episode_of_row
        except (RuntimeError, NotImplementedError):  # pragma: no cover - build without it
            pass
    pred = flat.new_empty(columns.shape[0])
    chunk = max(1, (1 << 20) // n_src)
    for start in range(0, columns.shape[0], chunk):
        stop = min(start + chunk, columns.shape[0])
        block = table.index_select(0, columns[start:stop])
        block.mul_(flat[start:stop] if rows is None else flat.index_select(0, rows[start:stop]))
        torch.sum(block, dim=1, out=pred[start:stop])
    return pred, episode_of_row
