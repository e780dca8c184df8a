"""Linear algebra shared by the feature metrics (H-score, LogME); private."""

from __future__ import annotations

import torch

__all__ = ["singular_values_and_vectors"]


def singular_values_and_vectors(matrix: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Singular values and right singular vectors of a batch of ``(n, d)`` matrices.

    Parameters
    ----------
    matrix:
        ``(E, n, d)`` float64.

    Returns
    -------
    (torch.Tensor, torch.Tensor)
        ``s`` of shape ``(E, k)`` (descending) and ``vh`` of shape ``(E, k, d)``,
        ``k = min(n, d)``, with ``matrix = u @ diag(s) @ vh`` for some orthonormal ``u``.

    Notes
    -----
    Works on the matrix itself, never on ``matrixᵀ matrix`` (which would square its condition
    number and turn rounding noise into spurious eigenvalues). Tall matrices (n > d) go through
    a QR factorisation first, so that no ``(n, d)`` factor ``u`` is formed. Each matrix is
    factorised alone (:func:`metaleep._exact.per_matrix`): the batched LAPACK calls give a
    matrix other bits at other positions of the batch.

    Examples
    --------
    >>> s, vh = singular_values_and_vectors(torch.tensor([[[3.0, 0.0], [0.0, 4.0], [0.0, 0.0]]],
    ...                                                   dtype=torch.float64))
    >>> s.tolist()
    [[4.0, 3.0]]
    """
    from metaleep._exact import per_matrix

    n, d = matrix.shape[-2:]

    def factorise(one: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if n > d:
            one = torch.linalg.qr(one, mode="r")[1]
        _, s, vh = torch.linalg.svd(one, full_matrices=False)
        return s, vh

    s, vh = per_matrix(factorise, matrix)
    return s, vh


def class_blocks(values: torch.Tensor, groups: torch.Tensor, n_groups: int) -> torch.Tensor:
    """The rows of each group stacked into a zero-padded ``(n_groups, m, K)`` tensor.

    Parameters
    ----------
    values:
        ``(N, K)`` rows.
    groups:
        ``(N,)`` int64 group of each row; rows with a group ``>= n_groups`` (padding) are
        dropped.
    n_groups:
        Number of groups G.

    Returns
    -------
    torch.Tensor
        ``(G, m, K)``, m the size of the largest group; group g's rows first, in their order,
        then zero rows (which change neither ``Bᵀ B`` nor ``B Bᵀ``'s non-zero eigenvalues).

    Examples
    --------
    >>> rows = torch.tensor([[1.0], [2.0], [3.0]])
    >>> class_blocks(rows, torch.tensor([1, 0, 1]), 2)[:, :, 0].tolist()
    [[2.0, 0.0], [1.0, 3.0]]
    """
    keep = groups < n_groups
    groups = groups[keep]
    values = values[keep]
    counts = torch.bincount(groups, minlength=n_groups)
    width = int(counts.max()) if counts.numel() else 0
    order = torch.sort(groups, stable=True).indices
    sorted_groups = groups[order]
    starts = torch.cumsum(counts, 0) - counts
    position = torch.arange(groups.shape[0], device=groups.device) - starts[sorted_groups]
    out = values.new_zeros((n_groups, max(width, 1), values.shape[1]))
    out[sorted_groups, position] = values[order]
    return out


def class_sums(values: torch.Tensor, groups: torch.Tensor, n_codes: int) -> torch.Tensor:
    """``(E, C, K)`` sums of the rows of each (episode, class) of ``values`` ``(E, n, K)``.

    ``groups`` is :attr:`Episodes.groups <metaleep.metrics._validation.Episodes.groups>` (the
    padding goes to a dump row, dropped).

    Examples
    --------
    >>> rows = torch.tensor([[[1.0], [2.0], [4.0]]])
    >>> class_sums(rows, torch.tensor([1, 0, 1]), 2)[0, :, 0].tolist()
    [2.0, 5.0]
    """
    n_ep, n_rows, width = values.shape
    sums = values.new_zeros((n_ep * n_codes + 1, width))
    sums.index_add_(0, groups, values.reshape(n_ep * n_rows, width))
    return sums[: n_ep * n_codes].view(n_ep, n_codes, width)
