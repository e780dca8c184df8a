"""Input conversion and validation shared by every metric (private).

Every public metric function goes through :func:`episodes`, which turns its inputs into one
:class:`Episodes` batch: a float64 tensor ``values`` of shape ``(E, n, K)`` on the device of the
input tensor (CPU for numpy arrays and lists), target labels re-encoded to small integer codes,
and an optional boolean ``valid`` mask for episodes of different sizes. A per-episode call is the
batch with ``E = 1``.

All errors use one wording, ``f"`{name}` must be {expected}; got {actual!r}."``: ``TypeError``
for a wrong type or dtype, ``ValueError`` for a wrong shape or value.

What is checked
---------------
- ``probs`` (source-model probabilities, ``from_logits=False``): every row finite, non-negative
  and summing to 1 within an absolute tolerance of :func:`probs_atol`: :data:`PROBS_ATOL`
  (``1e-6``) for float64 input, and ``2 * eps * sqrt(Z)`` when that is larger, ``eps`` being
  the machine epsilon of the input's float type: a float32 softmax over Z = 100,000 labels sums
  to 1 only within about 1e-5, a float16 one within about 6e-4 (measured: at most 0.6
  ``eps * sqrt(Z)`` over torch, numpy and scipy softmaxes). Errors about negative values, or
  about row sums of rows with entries above 1, suggest ``from_logits=True``, the usual cause;
  a row of values in [0, 1] that does not sum to 1 is said to need normalising.
- pandas ``DataFrame``/``Series`` inputs are read as their ``to_numpy()`` arrays.
- ``probs`` with ``from_logits=True`` and ``features``: every entry finite.
- ``labels``: integer class ids (numpy or torch integer dtypes, or a list of Python ints), one
  per row. Any integer values are accepted (negative, with gaps, unsorted): they are re-encoded
  per episode, so scores do not depend on the ids. Boolean labels and float labels are rejected
  with ``TypeError``, even float labels with integral values: a float array passed as labels is
  far more often a mistake (probabilities, regression targets) than a label vector; cast with
  ``.astype(int)`` / ``.long()``.
- sample counts: at least one sample per episode; metrics that need more say so
  (``h_score`` and ``nleep``: 2, for an unbiased covariance and a PCA).
- ``mask`` (batched functions, array form only): boolean ``(E, n)``; rows where it is ``False``
  are ignored entirely and may hold anything, NaN included.

Cost: validating ``probs`` reads the tensor twice (row sums and a global minimum); a metric that
computes the row sums anyway (LEEP, in its expected-prediction pass) asks :func:`episodes` to
defer the check (``defer_probs_check=True``) and hands its row sums to
:meth:`Episodes.check_probs`, saving one read. Features and logits are read once (row sums,
which are non-finite exactly when a row holds a non-finite entry or overflows; an overflow alone
is then ruled out entry by entry). ``validate=False`` in the
public functions skips these reads; the caller then guarantees valid input, and invalid input
gives undefined results.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

if TYPE_CHECKING:
    import torch

__all__ = ["PROBS_ATOL", "Episodes", "check_flag", "episodes", "message", "probs_atol"]

PROBS_ATOL = 1e-6
"""Absolute tolerance on the row sums of float64 ``probs``: ``|sum_z probs[i, z] - 1| <= 1e-6``
(see :func:`probs_atol` for other float types)."""


def probs_atol(eps: float, width: int) -> float:
    """Tolerance on the row sums of probabilities of a float type with machine epsilon ``eps``
    over ``width`` (Z) source labels: ``max(PROBS_ATOL, 2 * eps * sqrt(Z))``.

    >>> probs_atol(2.0**-52, 1000) == PROBS_ATOL  # float64
    True
    >>> round(probs_atol(2.0**-23, 20000), 7)  # float32, Z = 20,000
    3.37e-05
    """
    return max(PROBS_ATOL, 2.0 * eps * math.sqrt(width))


def _input_eps(x: Any) -> float:
    """Machine epsilon of the float type ``x`` came in (float64's for integers and lists)."""
    import torch

    x = _from_pandas(x)
    if isinstance(x, torch.Tensor):
        return float(torch.finfo(x.dtype).eps) if x.is_floating_point() else _EPS64
    dtype = getattr(x, "dtype", None)
    try:
        if dtype is not None and np.dtype(dtype).kind == "f":
            return float(np.finfo(dtype).eps)
    except TypeError:  # not a numpy dtype (e.g. a pandas extension type)
        pass
    if isinstance(x, list | tuple) and x and not isinstance(x[0], list | tuple | float | int):
        return max(_input_eps(part) for part in x)  # a sequence of per-episode arrays
    return _EPS64


_EPS64 = float(np.finfo(np.float64).eps)


def _from_pandas(x: Any) -> Any:
    """A pandas DataFrame or Series as its numpy array; anything else as it is."""
    module = type(x).__module__
    if (module == "pandas" or module.startswith("pandas.")) and hasattr(x, "to_numpy"):
        return x.to_numpy()
    return x


Kind = Literal["probs", "logits", "features"]
Form = Literal["single", "grid", "list"]

_REAL_EXPECTED = "real numbers (an integer or float dtype)"
_LABELS_EXPECTED = (
    "integer class ids (bool and float labels are rejected; cast with .astype(int) or .long())"
)
_LOGITS_HINT = "pass from_logits=True if these are logits"


def message(name: str, expected: str, actual: object) -> str:
    """The one error wording of metaleep: ``f"`{name}` must be {expected}; got {actual!r}."``.

    Examples
    --------
    >>> message("labels", "1-D", (3, 2))
    '`labels` must be 1-D; got (3, 2).'
    """
    return f"`{name}` must be {expected}; got {actual!r}."


def check_flag(value: object, name: str) -> bool:
    """Return ``value`` if it is a ``bool``, else raise ``TypeError``.

    Examples
    --------
    >>> check_flag(True, "from_logits")
    True
    >>> check_flag(1, "from_logits")
    Traceback (most recent call last):
    ...
    TypeError: `from_logits` must be a bool; got 1.
    """
    if not isinstance(value, bool | np.bool_):
        raise TypeError(message(name, "a bool", value))
    return bool(value)


@dataclass(frozen=True)
class Episodes:
    """A validated batch of E episodes, padded to a common size n.

    Attributes
    ----------
    values:
        ``(E, n, K)`` float64: probabilities (Z = K source labels), logits or features (d = K).
        Rows outside ``valid`` are unspecified (they may hold NaN).
    codes:
        ``(E, n)`` int64 target-label codes in ``0 .. n_codes - 1``; 0 outside ``valid``.
        Codes are a per-episode re-encoding of the labels; a code may be unused in an episode
        (see ``class_counts``), which no metric counts.
    groups:
        ``(E * n,)`` int64 flat index ``e * C + code`` of each row, and ``E * C`` outside
        ``valid``: one ``index_add_`` with it accumulates per-(episode, class) sums, the extra
        index ``E * C`` being a dump row for the padding.
    valid:
        ``(E, n)`` bool, or ``None`` when every row is valid.
    sizes:
        ``(E,)`` int64, valid rows per episode.
    n_codes:
        C, the number of codes (``max`` over episodes of the classes present, or the label
        range when it is small).
    probs_unchecked:
        ``True`` when the value checks of probabilities were deferred to the metric
        (``episodes(..., defer_probs_check=True)``), which must then call :meth:`check_probs`.
    """

    values: torch.Tensor
    codes: torch.Tensor
    groups: torch.Tensor
    valid: torch.Tensor | None
    sizes: torch.Tensor
    n_codes: int
    probs_unchecked: bool = False
    namer: _Namer | None = field(default=None, repr=False, compare=False)
    probs_atol: float = PROBS_ATOL

    @property
    def n_episodes(self) -> int:
        """E."""
        return int(self.values.shape[0])

    @cached_property
    def class_counts(self) -> torch.Tensor:
        """``(E, n_codes)`` int64, rows of each code per episode (computed on first use)."""
        import torch

        n_cells = self.n_episodes * self.n_codes
        counts = torch.bincount(self.groups, minlength=n_cells + 1)[:n_cells]
        return counts.view(self.n_episodes, self.n_codes)

    @property
    def n_classes(self) -> torch.Tensor:
        """``(E,)`` int64, target classes present in each episode."""
        return (self.class_counts > 0).sum(1)

    def zero_padding(self) -> torch.Tensor:
        """``values`` with the rows outside ``valid`` set to 0 (a copy only when masked)."""
        import torch

        if self.valid is None:
            return self.values
        return torch.where(self.valid[..., None], self.values, 0.0)

    def check_probs(
        self, row_sums: torch.Tensor | None = None, minimum: torch.Tensor | None = None
    ) -> None:
        """Run the deferred probability checks, from statistics the metric computed anyway.

        Raises exactly the errors :func:`episodes` raises with ``defer_probs_check=False``;
        does nothing when the checks were not deferred.

        Parameters
        ----------
        row_sums:
            The row sums of the valid rows, any shape (rows outside ``valid`` excluded, or set
            to 1); ``None``: computed here (one read of ``values``).
        minimum:
            The minimum of ``values`` (NaN if any entry is NaN); ``None``: computed here.
        """
        if self.probs_unchecked and self.namer is not None:
            _check_probs(
                self.values,
                self.valid,
                self.namer,
                row_sums=row_sums,
                minimum=minimum,
                atol=self.probs_atol,
            )


class _Namer:
    """Names of parts of an input in error messages, in the user's indexing."""

    def __init__(self, name: str, form: Form) -> None:
        self.name = name
        self.form = form

    def episode(self, e: int) -> str:
        return self.name if self.form == "single" else f"{self.name}[{e}]"

    def index(self, e: int, *rest: int) -> str:
        tail = ", ".join(str(i) for i in rest)
        if self.form == "single":
            return f"{self.name}[{tail}]"
        if self.form == "grid":
            return f"{self.name}[{e}, {tail}]"
        return f"{self.name}[{e}][{tail}]"


# ----------------------------------------------------------------------------- conversion


def _to_numpy(x: Any, name: str) -> np.ndarray:
    try:
        with warnings.catch_warnings():
            # numpy >= 2 deprecates some ragged conversions with a warning before failing.
            warnings.simplefilter("ignore")
            return np.asarray(x)
    except (ValueError, TypeError) as e:
        raise ValueError(message(name, "a rectangular array", "a ragged nested sequence")) from e


def _as_tensor(
    x: Any, name: str, what: Literal["real", "int", "bool"], device: torch.device | None
) -> torch.Tensor:
    """Convert ``x`` (tensor, ndarray, nested list) to a tensor of the ``what`` dtype family.

    ``what="real"`` accepts integer and float dtypes (cast to float64), ``"int"`` integer dtypes
    (cast to int64), ``"bool"`` booleans.
    """
    import torch

    x = _from_pandas(x)
    arr: np.ndarray | None = None
    if isinstance(x, torch.Tensor):
        t = x.detach()
        dtype_repr: object = t.dtype
        if t.dtype == torch.bool:
            family = "bool"
        elif t.is_complex():
            family = "complex"
        elif t.is_floating_point():
            family = "float"
        else:
            family = "int"
    elif isinstance(x, np.ndarray | list | tuple | np.generic | int | float):
        arr = _to_numpy(x, name)
        if arr.size == 0 and isinstance(x, list | tuple) and what != "real":
            arr = arr.astype(np.int64 if what == "int" else np.bool_)
        dtype_repr = arr.dtype
        family = {"b": "bool", "i": "int", "u": "int", "f": "float"}.get(arr.dtype.kind, "other")
    else:
        expected = "a numpy array, a torch tensor or a (nested) list"
        raise TypeError(message(name, expected, type(x)))

    if what == "real" and family not in ("int", "float"):
        raise TypeError(message(name, _REAL_EXPECTED, dtype_repr))
    if what == "int" and family != "int":
        raise TypeError(message(name, _LABELS_EXPECTED, dtype_repr))
    if what == "bool" and family != "bool":
        raise TypeError(message(name, "boolean", dtype_repr))
    target = {"real": torch.float64, "int": torch.int64, "bool": torch.bool}[what]
    if arr is not None:
        np_target = {"real": np.float64, "int": np.int64, "bool": np.bool_}[what]
        arr = np.ascontiguousarray(arr, dtype=np_target)
        with warnings.catch_warnings():
            # Read-only arrays: torch warns that it cannot protect them; nothing writes to them.
            warnings.simplefilter("ignore", UserWarning)
            t = torch.from_numpy(arr)
    return t.to(device=device, dtype=target)


def _is_episode_sequence(x: Any) -> bool:
    return isinstance(x, list | tuple)


def _values_2d(x: Any, name: str, cols: str, device: torch.device | None) -> torch.Tensor:
    t = _as_tensor(x, name, "real", device)
    if t.ndim != 2:
        raise ValueError(message(name, f"a 2-D array of shape (n, {cols})", tuple(t.shape)))
    return t


def _check_sizes(
    values: torch.Tensor,
    sizes: torch.Tensor,
    namer: _Namer,
    form: Form,
    *,
    metric: str,
    min_samples: int,
    masked: bool,
    cols: str,
) -> None:
    shape = tuple(values.shape) if form == "grid" else tuple(values.shape[1:])
    if shape[-1] == 0:
        what = "source label" if cols == "Z" else "feature"
        name = namer.name if form != "list" else namer.episode(0)
        raise ValueError(message(name, f"an array with at least one column ({what})", shape))
    too_small = (sizes < min_samples).nonzero()
    if too_small.numel() == 0:
        return
    e = int(too_small[0, 0])
    n_e = int(sizes[e])
    rows = f"at least {min_samples} row{'s' if min_samples > 1 else ''} (samples)"
    if min_samples > 1:
        rows += f" for {metric}"
    if masked:
        raise ValueError(message(f"mask[{e}]", f"True in {rows}", n_e))
    if form == "list":
        raise ValueError(message(namer.episode(e), f"an array with {rows}", (n_e, shape[-1])))
    raise ValueError(message(namer.name, f"an array with {rows}", shape))


# ----------------------------------------------------------------------------- value checks


def _first(mask: torch.Tensor) -> tuple[int, ...]:
    return tuple(int(i) for i in mask.nonzero()[0])


def check_finite(values: torch.Tensor, valid: torch.Tensor | None, namer: _Namer) -> None:
    """Every valid entry finite; one read (row sums) unless something is flagged."""
    import torch

    row_sums = _row_sums(values)
    bad = ~torch.isfinite(row_sums)
    if valid is not None:
        bad &= valid
    if not bool(bad.any()):
        return
    # Flagged rows hold a non-finite entry, or only overflowed: look entry by entry.
    entries = ~torch.isfinite(values) & bad[..., None]
    if bool(entries.any()):
        e, i, k = _first(entries)
        raise ValueError(message(namer.index(e, i, k), "finite", float(values[e, i, k])))


def _row_sums(values: torch.Tensor) -> torch.Tensor:
    """``(E, n)`` row sums; a matrix-vector product, faster than ``sum(-1)`` on short rows."""
    import torch

    n_ep, n_rows, width = values.shape
    ones = values.new_ones(width)
    return torch.mv(values.view(n_ep * n_rows, width), ones).view(n_ep, n_rows)


def _check_probs(
    values: torch.Tensor,
    valid: torch.Tensor | None,
    namer: _Namer,
    *,
    row_sums: torch.Tensor | None = None,
    minimum: torch.Tensor | None = None,
    atol: float = PROBS_ATOL,
) -> None:
    """Rows finite, non-negative and summing to 1 within ``atol``; two reads of ``values``.

    The row sums are non-finite exactly when the row holds a non-finite entry; the global
    minimum (NaN if any entry is NaN) rules out negative entries. ``row_sums`` (of the valid
    rows, padding excluded or set to 1) and ``minimum`` may be given by a caller that computed
    them anyway; ``values`` is then read again only if something is wrong.
    """
    import torch

    if row_sums is None:
        row_sums = _row_sums(values)
        if valid is not None:
            row_sums = torch.where(valid, row_sums, 1.0)
    if minimum is None:
        minimum = torch.amin(values)
    low, high = torch.aminmax(row_sums)  # NaN propagates
    if bool(low >= 1.0 - atol) and bool(high <= 1.0 + atol) and bool(minimum >= 0):
        return
    # Something is off (or only the padding is negative/NaN): find the first bad row.
    row_sums = _row_sums(values)
    row_ok = (row_sums - 1.0).abs() <= atol  # False for NaN and inf rows
    bad = ~row_ok | ~(values.amin(-1) >= 0)
    if valid is not None:
        bad &= valid
    if not bool(bad.any()):
        return
    e, i = _first(bad)
    row = values[e, i]
    non_finite = ~torch.isfinite(row)
    if bool(non_finite.any()):
        k = _first(non_finite)[0]
        raise ValueError(message(namer.index(e, i, k), "finite", float(row[k])))
    negative = row < 0
    if bool(negative.any()):
        k = _first(negative)[0]
        expected = f"non-negative (a probability; {_LOGITS_HINT})"
        raise ValueError(message(namer.index(e, i, k), expected, float(row[k])))
    if bool((row > 1.0).any()):  # entries above 1: logits, most likely
        why = f"a row of probabilities; {_LOGITS_HINT}"
    else:
        why = "a row of probabilities, each in [0, 1]; normalise the row if it is one"
    expected = f"1 within an absolute tolerance of {atol:g} ({why})"
    raise ValueError(message(f"{namer.index(e, i)}.sum()", expected, float(row.sum())))


# ----------------------------------------------------------------------------- labels


def _encode_labels(
    labels: torch.Tensor, valid: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Re-encode labels ``(E, n)``; return ``(codes, groups, n_codes)``.

    When the label range over the whole batch is at most n, codes are ``label - min`` (cheap,
    no sort; unused codes are empty classes that no metric counts). Otherwise each episode's
    distinct labels are ranked (one sort per row), so ``n_codes <= n``. Either way the
    per-(episode, code) arrays the metrics build are no larger than the input.
    """
    import torch

    n_ep, n_rows = labels.shape
    present = labels if valid is None else labels[valid]
    lo_t, hi_t = torch.aminmax(present)
    lo, hi = int(lo_t), int(hi_t)
    if hi - lo + 1 <= n_rows:
        codes = labels - lo if lo != 0 else labels
        n_codes = hi - lo + 1
    else:
        key = labels if valid is None else torch.where(valid, labels, hi)
        sorted_key, order = torch.sort(key, dim=1)
        new = torch.ones_like(sorted_key, dtype=torch.bool)
        new[:, 1:] = sorted_key[:, 1:] != sorted_key[:, :-1]
        ranks = new.cumsum(1).sub_(1)
        codes = torch.empty_like(labels).scatter_(1, order, ranks)
        n_codes = int(ranks.max()) + 1
    offsets = torch.arange(n_ep, device=codes.device).mul_(n_codes)[:, None]
    if valid is None:
        groups = (codes + offsets).view(n_ep * n_rows)
    else:
        codes = codes.masked_fill(~valid, 0)
        groups = (codes + offsets).masked_fill_(~valid, n_ep * n_codes).view(n_ep * n_rows)
    return codes.contiguous(), groups, n_codes


def _labels_1d(x: Any, name: str, n: int, device: torch.device) -> torch.Tensor:
    t = _as_tensor(x, name, "int", device)
    if t.ndim != 1 or t.shape[0] != n:
        expected = f"1-D with one label per row (length {n})"
        raise ValueError(message(name, expected, tuple(t.shape)))
    return t


# ----------------------------------------------------------------------------- entry point


def source_outputs(
    probs: Any,
    labels: Any,
    mask: Any = None,
    *,
    metric: str,
    single: bool,
    from_logits: object,
    validate: object,
) -> Episodes:
    """:func:`episodes` for the metrics that read the source model's outputs (LEEP, NCE).

    Checks the two flags, reads ``probs`` as logits when ``from_logits``, and defers the
    probability checks to the metric's own pass over the values.
    """
    check_flag(from_logits, "from_logits")
    check_flag(validate, "validate")
    return episodes(
        probs,
        labels,
        mask,
        name="probs",
        kind="logits" if from_logits else "probs",
        metric=metric,
        single=single,
        validate=bool(validate),
        defer_probs_check=True,
    )


def episodes(
    x: Any,
    labels: Any,
    mask: Any = None,
    *,
    name: Literal["probs", "features"],
    kind: Kind,
    metric: str,
    single: bool,
    min_samples: int = 1,
    validate: bool = True,
    defer_probs_check: bool = False,
) -> Episodes:
    """Convert and validate the inputs of a metric into an :class:`Episodes` batch.

    Parameters
    ----------
    x:
        Per-episode (``single=True``): ``(n, K)``. Batched: ``(E, n, K)`` array or tensor, or a
        sequence (list/tuple) of ``(n_e, K)`` per-episode arrays (padded internally).
    labels:
        ``(n,)``; batched: ``(E, n)`` array, or a sequence of ``(n_e,)`` arrays.
    mask:
        Batched array form only: ``(E, n)`` bool, ``True`` for the rows to use.
    name, kind, metric, min_samples:
        How ``x`` is called in messages, what it holds, the metric asking (for messages) and
        the fewest samples the metric needs per episode.
    validate:
        Run the value checks (finiteness, probability rows); shapes, dtypes and sample counts
        are always checked.
    defer_probs_check:
        With ``validate`` and ``kind="probs"``: leave the probability checks to the caller,
        which computes the row sums and the minimum in its own passes and calls
        :meth:`Episodes.check_probs` before returning (``probs_unchecked`` is then ``True``).

    Examples
    --------
    >>> ep = episodes([[0.5, 0.5], [1.0, 0.0]], [7, 9], name="probs", kind="probs",
    ...               metric="leep", single=True)
    >>> ep.values.shape, ep.codes.tolist(), ep.n_classes.tolist()
    (torch.Size([1, 2, 2]), [[0, 1]], [2])
    >>> episodes([[0.5, 0.6]], [0], name="probs", kind="probs", metric="leep", single=True)
    Traceback (most recent call last):
    ...
    ValueError: `probs[0].sum()` must be 1 within an absolute tolerance of 1e-06 (a row of
    probabilities, each in [0, 1]; normalise the row if it is one); got 1.1.
    """
    import torch

    cols = "Z" if name == "probs" else "d"
    x, labels, mask = _from_pandas(x), _from_pandas(labels), _from_pandas(mask)
    eps = _input_eps(x) if kind == "probs" else _EPS64
    device = x.device if isinstance(x, torch.Tensor) else None
    valid: torch.Tensor | None = None
    masked = False

    lengths: list[int] = []
    if single:
        form: Form = "single"
        if mask is not None:
            raise TypeError(message("mask", "None for a per-episode score", type(mask)))
        values = _values_2d(x, name, cols, device)[None]
    elif _is_episode_sequence(x):
        form = "list"
        if mask is not None:
            expected = "None when episodes are given as a sequence (sizes come from the arrays)"
            raise TypeError(message("mask", expected, type(mask)))
        if len(x) == 0:
            raise ValueError(message(name, "a non-empty sequence of episodes", x))
        parts = []
        for e, part in enumerate(x):
            parts.append(_values_2d(part, f"{name}[{e}]", cols, device))
            device = parts[0].device  # every episode goes to the first one's device
        width = int(parts[0].shape[1])
        for e, part in enumerate(parts):
            if int(part.shape[1]) != width:
                expected = f"an array with {width} columns like `{name}[0]`"
                raise ValueError(message(f"{name}[{e}]", expected, tuple(part.shape)))
        lengths = [int(p.shape[0]) for p in parts]
        n_max = max(lengths)
        if all(n_e == n_max for n_e in lengths):
            values = torch.stack(parts)
        else:
            values = parts[0].new_zeros((len(parts), n_max, width))
            for e, part in enumerate(parts):
                values[e, : part.shape[0]] = part
            idx = torch.arange(n_max, device=values.device)
            valid = idx[None, :] < torch.tensor(lengths, device=values.device)[:, None]
    else:
        form = "grid"
        values = _as_tensor(x, name, "real", device)
        if values.ndim != 3:
            expected = f"a 3-D array of shape (E, n, {cols}) or a sequence of (n_e, {cols}) arrays"
            raise ValueError(message(name, expected, tuple(values.shape)))
        if values.shape[0] == 0:
            raise ValueError(message(name, "a non-empty batch of episodes", tuple(values.shape)))
        if mask is not None:
            valid = _as_tensor(mask, "mask", "bool", values.device)
            if tuple(valid.shape) != tuple(values.shape[:2]):
                expected = f"of shape (E, n) = {tuple(values.shape[:2])}"
                raise ValueError(message("mask", expected, tuple(valid.shape)))
            masked = True

    values = values.contiguous()
    device = values.device
    namer = _Namer(name, form)
    n_ep, n_rows = int(values.shape[0]), int(values.shape[1])
    if valid is None:
        sizes = torch.full((n_ep,), n_rows, dtype=torch.int64, device=device)
    else:
        sizes = valid.sum(1)
    _check_sizes(
        values,
        sizes,
        namer,
        form,
        metric=metric,
        min_samples=min_samples,
        masked=masked,
        cols=cols,
    )
    if valid is not None and bool(valid.all()):
        valid = None

    # Labels, once the samples are known to be there.
    if form == "single":
        label_t = _labels_1d(labels, "labels", n_rows, device)[None]
    elif form == "list":
        if _is_episode_sequence(labels):
            if len(labels) != n_ep:
                expected = f"a sequence of {n_ep} label arrays, one per episode"
                raise ValueError(message("labels", expected, len(labels)))
            label_parts = [
                _labels_1d(lab, f"labels[{e}]", lengths[e], device) for e, lab in enumerate(labels)
            ]
        else:
            grid = _as_tensor(labels, "labels", "int", device)
            expected = f"a sequence of {n_ep} label arrays (or an (E, n) array)"
            if grid.ndim != 2 or grid.shape[0] != n_ep:
                raise ValueError(message("labels", expected, tuple(grid.shape)))
            label_parts = [
                _labels_1d(grid[e, : lengths[e]], f"labels[{e}]", lengths[e], device)
                for e in range(n_ep)
            ]
        label_t = torch.zeros((n_ep, n_rows), dtype=torch.int64, device=device)
        for e, lab in enumerate(label_parts):
            label_t[e, : lab.shape[0]] = lab
    else:
        label_t = _as_tensor(labels, "labels", "int", device)
        if tuple(label_t.shape) != (n_ep, n_rows):
            expected = f"of shape (E, n) = {(n_ep, n_rows)}"
            raise ValueError(message("labels", expected, tuple(label_t.shape)))

    deferred = validate and kind == "probs" and defer_probs_check
    atol = probs_atol(eps, int(values.shape[-1]))
    if validate and not deferred:
        if kind == "probs":
            _check_probs(values, valid, namer, atol=atol)
        else:
            check_finite(values, valid, namer)
    codes, groups, n_codes = _encode_labels(label_t, valid)
    return Episodes(values, codes, groups, valid, sizes, n_codes, deferred, namer, atol)


def as_float_array(scores: torch.Tensor) -> np.ndarray:
    """``(E,)`` scores as a float64 numpy array on the CPU."""
    import torch

    return scores.detach().to(device="cpu", dtype=torch.float64).numpy()


def check_seed(seed: object) -> int:
    """``seed`` must be a non-negative int (not a bool).

    Examples
    --------
    >>> check_seed(3)
    3
    >>> check_seed(-1)
    Traceback (most recent call last):
    ...
    ValueError: `seed` must be a non-negative integer; got -1.
    """
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer):
        raise TypeError(message("seed", "a non-negative integer", seed))
    if seed < 0:
        raise ValueError(message("seed", "a non-negative integer", seed))
    if seed >= 2**32:  # numpy's legacy seeding (k-means++ as scikit-learn draws it)
        raise ValueError(message("seed", "a non-negative integer below 2**32", seed))
    return int(seed)


def check_optional_positive_int(value: object, name: str) -> int | None:
    """``value`` must be ``None`` or an int >= 1 (not a bool).

    Examples
    --------
    >>> check_optional_positive_int(None, "n_components") is None
    True
    >>> check_optional_positive_int(0, "n_components")
    Traceback (most recent call last):
    ...
    ValueError: `n_components` must be None or an integer >= 1; got 0.
    """
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise TypeError(message(name, "None or an integer >= 1", value))
    if value < 1:
        raise ValueError(message(name, "None or an integer >= 1", value))
    return int(value)
