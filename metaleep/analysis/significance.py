"""Which metric is best in a setting, and whether that is a finding: one selection-aware rule.

The LEEP paper counts a metric "best in k of N settings" by the highest point estimate. Calling
a win *significant* needs care, because the winner is chosen by the very data that then test
it. Testing the chosen winner one-sided against each other metric ("is the winner's r higher?")
runs at about twice its level: with two truly tied metrics, one of them is always the winner,
and its one-sided test rejects whenever the gap is large in *either* direction (a simulation
with n = 600 gave a 9.3 % "significant winner" rate at a nominal 5 %).

The rule here (:func:`winner_test`):

- the **winner** is the metric with the highest point estimate among those with one;
- its **p-value** is two-sided against the strongest challenger:
  ``p = min(1, 2 max_m p_m)``, where ``p_m = (1 + #{d*_m <= 0}) / (1 + B)`` is the bootstrap
  p-value of "winner above m" from the B replicates ``d*_m = r*_winner - r*_m`` (the same
  resamples for every metric). The winner is significantly best when it beats every other
  metric (an intersection-union test: no correction for the number of challengers is needed),
  and the doubling pays for having picked the direction after looking: when the best two are
  tied, a false claim needs either of them to clear the one-sided ``alpha / 2`` bar, so the
  claim is wrong at most ``alpha`` of the time. The suite checks this by simulation
  (``tests/analysis/test_significance.py``);
- across settings, :func:`benjamini_hochberg` turns the p-values of the distinct tests into
  q-values (false discovery rate); a win is significant when its q is at most ``alpha``.

With B replicates the smallest p is ``2 / (B + 1)``: the grid uses B = 10,000 so that
Benjamini-Hochberg over about a hundred tests can still reject (its smallest threshold is
``alpha / m``).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from scipy import stats

__all__ = ["benjamini_hochberg", "one_sided_p", "winner_test"]


def one_sided_p(difference: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Bootstrap p-value of "the difference is above 0" over the last axis: ``(1 + #{d <= 0})
    / (1 + B)`` over the finite replicates (NaN when there are none).

    Examples
    --------
    >>> one_sided_p([0.2, 0.1, -0.05, 0.3]).round(3).tolist()
    0.4
    """
    d = np.asarray(difference, dtype=np.float64)
    finite = np.isfinite(d)
    below = (finite & (d <= 0)).sum(axis=-1)
    valid = finite.sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = np.where(valid > 0, (1.0 + below) / (1.0 + valid), np.nan)
    return np.asarray(p, dtype=np.float64)


def winner_test(
    point: npt.ArrayLike, replicates: npt.ArrayLike
) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.float64]]:
    """The winner and its selection-aware two-sided p-value (see the module docstring).

    Parameters
    ----------
    point:
        Each metric's statistic, shape (..., M) (NaN: the metric does not compete).
    replicates:
        Its bootstrap replicates, shape (..., B, M), the same resamples for every metric.

    Returns
    -------
    winner : ndarray of int, shape (...)
        Index of the highest finite ``point`` (the first on ties); -1 where none is finite.
    p : ndarray, shape (...)
        ``min(1, 2 max_m p_m)`` over the other competing metrics m; NaN without a winner or
        without a second competitor.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> boot = np.column_stack([0.6 + 0.02 * rng.normal(size=999),
    ...                         0.4 + 0.02 * rng.normal(size=999)])
    >>> winner, p = winner_test([0.6, 0.4], boot)
    >>> int(winner), float(p)
    (0, 0.002)
    >>> alone, p_alone = winner_test([0.6, np.nan], boot)   # nobody to beat: no p-value
    >>> int(alone), bool(np.isnan(p_alone))
    (0, True)
    """
    r = np.asarray(point, dtype=np.float64)
    boot = np.asarray(replicates, dtype=np.float64)
    competing = np.isfinite(r)
    winner = np.where(competing.any(axis=-1), np.where(competing, r, -np.inf).argmax(axis=-1), -1)
    safe = np.maximum(winner, 0)
    best = np.take_along_axis(boot, safe[..., None, None].repeat(boot.shape[-2], -2), axis=-1)
    p_each = one_sided_p(np.swapaxes(best - boot, -1, -2))  # (..., M)
    others = competing & (np.arange(r.shape[-1]) != safe[..., None])
    p_each = np.where(others, p_each, -np.inf)
    p_max = p_each.max(axis=-1)
    p = np.where((winner >= 0) & others.any(axis=-1), np.minimum(1.0, 2.0 * p_max), np.nan)
    return winner.astype(np.intp), np.asarray(p, dtype=np.float64)


def benjamini_hochberg(p: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Benjamini-Hochberg adjusted p-values (q-values) of the finite entries of ``p``.

    :func:`scipy.stats.false_discovery_control` (``method="bh"``) on the finite p-values; NaN
    entries stay NaN and do not count as tests.

    Examples
    --------
    >>> benjamini_hochberg([0.01, 0.04, np.nan, 0.03]).round(3).tolist()
    [0.03, 0.04, nan, 0.04]
    """
    values = np.asarray(p, dtype=np.float64)
    out = np.full(values.shape, np.nan)
    finite = np.isfinite(values)
    if finite.any():
        out[finite] = stats.false_discovery_control(values[finite], method="bh")
    return out
