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
    a QR factorisation first, so that no ``(n, d)`` factor ``u`` is formed.

    Examples
    --------
    >>> s, vh = singular_values_and_vectors(torch.tensor([[[3.0, 0.0], [0.0, 4.0], [0.0, 0.0]]],
    ...                                                   dtype=torch.float64))
    >>> s.tolist()
    [[4.0, 3.0]]
    """
    n, d = matrix.shape[-2:]
    if n > d:
        matrix = torch.linalg.qr(matrix, mode="r")[1]
    _, s, vh = torch.linalg.svd(matrix, full_matrices=False)
    return s, vh
