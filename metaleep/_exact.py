"""Batched linear algebra whose result for each matrix does not depend on the batch.

A study scores and adapts the episodes of a chunk in batched calls, so an episode's numbers
must not depend on which other episodes share its call (``--chunk-size``, workers, resuming).
torch's batched BLAS and LAPACK calls on the CPU did not give that: ``bmm``, ``mv``, ``cdist``
and ``linalg.svd`` / ``qr`` / ``eigvalsh`` / ``cholesky_ex`` / ``solve`` / ``matrix_norm`` go
to MKL, whose kernels take another code path for a matrix that does not start on a 64-byte
boundary, and another for a product with one column (a matrix-vector product) when it is alone
than when it is in a batch. The same matrix then gave results a few units in the last place
apart depending on its position in the batch and on the batch's size (torch 2.14 / MKL
2024.2: a 5 x 32 by 32 x 5 ``bmm`` differed at every odd position, whose 200-byte outputs
start off the boundary; ``svd`` of a 7 x 17 matrix at position 1 of 3). On ``glyphs-mixed``
that made LEEP, H-score, LogME, shrinkage H-score, TransRate and SFDA values, and the
retrain-head and ANIL losses, differ between chunk sizes (SFDA in 8-16 of 480 values).

torch's own elementwise kernels and reductions (``sum``, ``softmax``, ``logsumexp``, norms)
compute each output from its own row, wherever the row is. The two primitives here remove the
cause for the rest:

- :func:`matmul`: one ``bmm`` on zero-padded copies whose every matrix (of both factors and
  of the product) fills a whole number of 64-byte blocks, so that in a contiguous batch each
  starts on a boundary, as a matrix alone does; a product with one column gets a second (a
  matrix-vector product alone takes another path). The padding depends on one matrix's shape,
  never on the batch, and its zero rows and columns are dropped. Checked on 1,536 shapes x
  batch sizes (batches of 2 to 64) and the study's shapes in batches of up to 600: each
  matrix's product equal, bit for bit, to its product alone.
- :func:`per_matrix`: any per-matrix function (a factorisation, a solve) called on each matrix
  alone, on fresh copies: torch's batched LAPACK calls copy the batch into one buffer, whose
  matrices start where they fall.

The padded products cost up to twice the bare ``bmm`` on the study's small matrices (a 5-way
head's logits: 0.44 ms against 0.23 for 200 episodes); the per-matrix calls a few
microseconds each.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, overload

if TYPE_CHECKING:
    import torch

__all__ = ["matmul", "per_matrix"]

_ALIGNMENT = 64
"""Bytes: every matrix :func:`matmul` hands to ``bmm`` starts on such a boundary."""


def _fresh(matrix: torch.Tensor) -> torch.Tensor:
    """A contiguous copy in new (aligned) storage: the same input for BLAS wherever it was."""
    import torch

    return matrix.clone(memory_format=torch.contiguous_format)


def _padded(rows: int, inner: int, columns: int, quantum: int) -> tuple[int, int]:
    """Rows and columns, at least the given ones (columns at least 2), such that a left factor
    ``(rows, inner)``, a right one ``(inner, columns)`` and the product ``(rows, columns)`` each
    fill a whole number of 64-byte blocks (``quantum`` values)."""
    columns = max(columns, 2)
    while (inner * columns) % quantum:
        columns += 1
    while (rows * inner) % quantum or (rows * columns) % quantum:
        rows += 1
    return rows, columns


def matmul(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``a @ b`` for batches of matrices, each product independent of the batch.

    Parameters
    ----------
    a, b:
        ``(..., m, k)`` and ``(..., k, n)`` with the same leading (batch) shape, any strides
        (transposed views welcome), on any device.

    Returns
    -------
    torch.Tensor
        ``(..., m, n)``, contiguous. The result for one matrix is the same bits whatever else
        is in the batch, and wherever it is.

    Examples
    --------
    >>> import torch
    >>> a = torch.arange(12.0, dtype=torch.float64).view(2, 2, 3)
    >>> b = torch.ones(2, 3, 1, dtype=torch.float64)
    >>> matmul(a, b)[:, :, 0].tolist()
    [[3.0, 12.0], [21.0, 30.0]]
    >>> torch.equal(matmul(a, b)[1], matmul(a[1:], b[1:])[0])
    True
    """
    import torch

    *batch, m, k = a.shape
    n = b.shape[-1]
    if tuple(b.shape[:-2]) != tuple(batch) or b.shape[-2] != k:
        raise ValueError(
            f"`b` must be of shape (..., {k}, n) with a's batch shape {tuple(batch)}; got "
            f"{tuple(b.shape)}."
        )
    flat_a, flat_b = a.reshape(-1, m, k), b.reshape(-1, k, n)
    quantum = max(1, _ALIGNMENT // a.element_size())
    rows, columns = _padded(m, k, n, quantum)
    left = a.new_zeros((flat_a.shape[0], rows, k))  # new storage starts on a boundary
    left[:, :m] = flat_a
    right = a.new_zeros((flat_b.shape[0], k, columns))
    right[:, :, :n] = flat_b
    return torch.bmm(left, right)[:, :m, :n].contiguous().view(*batch, m, n)


@overload
def per_matrix(function: Callable[..., torch.Tensor], *batches: torch.Tensor) -> torch.Tensor: ...


@overload
def per_matrix(
    function: Callable[..., tuple[torch.Tensor, ...]], *batches: torch.Tensor
) -> tuple[torch.Tensor, ...]: ...


def per_matrix(
    function: Callable[..., Any], *batches: torch.Tensor
) -> torch.Tensor | tuple[torch.Tensor, ...]:
    """``function`` applied to each matrix of the batches alone, results stacked.

    Parameters
    ----------
    function:
        Takes one matrix from each of ``batches`` (without the batch dimension) and returns a
        tensor or a tuple of tensors, e.g. ``lambda m: torch.linalg.svd(m,
        full_matrices=False)``.
    batches:
        Tensors with the same first (batch) dimension.

    Returns
    -------
    torch.Tensor or tuple of torch.Tensor
        The results, stacked along a new first dimension (an empty batch calls ``function``
        on the empty batches once, for the shapes).

    Examples
    --------
    >>> import torch
    >>> grams = torch.eye(2, dtype=torch.float64).repeat(3, 1, 1) * torch.tensor([1.0, 2, 3],
    ...     dtype=torch.float64)[:, None, None]
    >>> per_matrix(torch.linalg.eigvalsh, grams).tolist()
    [[1.0, 1.0], [2.0, 2.0], [3.0, 3.0]]
    """
    import torch

    count = batches[0].shape[0]
    if count == 0:
        return function(*batches)
    results = [function(*(_fresh(batch[i]) for batch in batches)) for i in range(count)]
    first = results[0]
    if isinstance(first, tuple):
        return tuple(torch.stack(parts) for parts in zip(*results, strict=True))
    return torch.stack(results)
