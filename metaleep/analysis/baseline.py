"""Does the best metric beat the free baseline? Paired bootstrap tests, familywise.

A transferability metric earns its cost only where it tracks post-adaptation accuracy better
than what comes for free: ``centroid_loo``, the support set's leave-one-out nearest-centroid
accuracy (:mod:`metaleep.metrics.centroid`).

- :func:`baseline_tests`: every metric against the baseline per group, on the same resampled
  episodes, with a familywise p-value (:func:`max_t_p_values`) over all of them;
- :func:`verdict`: per group, the metric with the highest Pearson r and whether it beats the
  baseline -- the study's answer in one row.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy import stats

from metaleep.analysis.resample import percentile_ci, replicate_statistics, row_weights, unit_codes
from metaleep.analysis.tables import (
    check_boot,
    check_table,
    is_constant,
    iter_groups,
    metric_columns,
    metric_sign,
)

__all__ = [
    "BASELINES",
    "BASELINE_TEST_COLUMNS",
    "VERDICT_COLUMNS",
    "baseline_tests",
    "max_t_p_values",
    "verdict",
]

BASELINES: tuple[str, ...] = ("centroid_loo",)
"""Metric columns that are free baselines, not transferability metrics: they never count as a
group's best metric."""

BASELINE_TEST_COLUMNS: tuple[str, ...] = (
    "metric",
    "baseline",
    "n",
    "n_episodes",
    "r",
    "r_baseline",
    "difference",
    "ci_low",
    "ci_high",
    "p_value",
    "p_adjusted",
    "beats",
    "note",
)
"""Columns of :func:`baseline_tests`'s table after the grouping columns."""

VERDICT_COLUMNS: tuple[str, ...] = (
    "best",
    "r",
    "ci_low",
    "ci_high",
    "n_episodes",
    "baseline",
    "baseline_r",
    "baseline_ci_low",
    "baseline_ci_high",
    "difference",
    "difference_ci_low",
    "difference_ci_high",
    "p_adjusted",
    "beats",
    "note",
)
"""Columns of :func:`verdict`'s table after the grouping columns."""


def _undefined(x: npt.NDArray[np.float64], y: npt.NDArray[np.float64], n_units: int) -> str:
    """Why Pearson r of (x, y) over ``n_units`` episodes is undefined ("" when defined)."""
    if n_units < 3:
        return "fewer than 3 episodes"
    if is_constant(x):
        return "constant metric"
    if is_constant(y):
        return "constant target"
    return ""


def max_t_p_values(
    differences: npt.ArrayLike, replicates: npt.ArrayLike
) -> npt.NDArray[np.float64]:
    """Familywise one-sided p-values: the single-step studentized max-T (Romano & Wolf 2005).

    Row i tests ``H_i: theta_i <= 0`` from its estimate ``d_i`` and bootstrap replicates
    ``d*_ib``. Each row's replicates are centred at ``d_i`` and divided by their standard
    deviation ``se_i``; ``M_b = max_i (d*_ib - d_i) / se_i`` is the largest centred statistic
    of replicate ``b``, and the adjusted p-value of row i is
    ``(1 + #{b : M_b >= d_i / se_i}) / (1 + B')`` over the ``B'`` replicates where some row is
    defined. Rejecting every ``H_i`` whose p-value is below ``alpha`` holds the probability of
    any false rejection at ``alpha`` (asymptotically), whatever the dependence between rows,
    because rows resampled together enter the maximum together.

    Parameters
    ----------
    differences:
        The estimates (NaN: no test; p NaN).
    replicates:
        Their bootstrap replicates (NaN where undefined, left out of that row).

    Returns
    -------
    ndarray, shape (k,)
        Adjusted p-values; 1 for a row whose replicates do not vary (no evidence either way).

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> noise = rng.normal(size=(2, 999))
    >>> p = max_t_p_values([4.0, 0.0], np.array([[4.0], [0.0]]) + noise)
    >>> bool(p[0] < 0.01), bool(p[1] > 0.5)
    (True, True)
    """
    d = np.asarray(differences, dtype=np.float64)
    reps = np.asarray(replicates, dtype=np.float64).reshape(len(d), -1)
    out = np.where(np.isfinite(d), 1.0, math.nan)
    if reps.shape[1] == 0:
        return np.full(len(d), math.nan)
    finite = np.isfinite(reps)
    counts = finite.sum(axis=1)
    means = np.where(finite, reps, 0.0).sum(axis=1) / np.maximum(counts, 1)
    squares = np.where(finite, (reps - means[:, None]) ** 2, 0.0).sum(axis=1)
    se = np.where(counts > 1, np.sqrt(squares / np.maximum(counts - 1, 1)), 0.0)
    usable = np.isfinite(d) & (se > 0)
    if not usable.any():
        return out
    centred = (reps[usable] - d[usable, None]) / se[usable, None]
    largest = np.where(np.isfinite(centred), centred, -np.inf).max(axis=0)
    largest = largest[np.isfinite(largest)]
    observed = d[usable] / se[usable]
    exceed = (largest[None, :] >= observed[:, None]).sum(axis=1)
    out[usable] = (1.0 + exceed) / (1.0 + largest.size)
    return out


def baseline_tests(
    table: pd.DataFrame,
    *,
    metrics: Sequence[str],
    baseline: str = "centroid_loo",
    target: str = "accuracy",
    by: Sequence[str] = ("backbone", "dummy", "adaptation"),
    n_boot: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
    alpha: float = 0.05,
    higher_is_better: Mapping[str, bool] | None = None,
) -> pd.DataFrame:
    """Does each metric correlate with accuracy better than the free baseline? Familywise.

    Per group of ``by`` and metric (the baseline and :data:`BASELINES` left out), on the
    episodes where the metric, the baseline and the target are finite: the difference of
    signed Pearson r, ``d = r_metric - r_baseline``, its percentile bootstrap interval (the
    same resampled episodes for both; the numbers of
    :func:`~metaleep.analysis.correlations.compare_metrics`), the one-sided bootstrap p-value
    for "the metric is better" and a **familywise** p-value, :func:`max_t_p_values` over every
    (group, metric) row. ``beats`` is ``p_adjusted < alpha``: the chance that a table of these
    names any metric that does not truly beat the baseline is at most ``alpha`` -- the group's
    best metric, chosen after looking, included.

    Groups on the same episodes share their resamples (the weights depend on the episodes and
    ``seed`` only), so the maximum sees how their statistics move together. Rows computed on
    identical data (a metric that does not read the dummy labels, in two dummy modes) are one
    comparison: ``attrs["n_comparisons"]`` counts the distinct ones.

    Parameters
    ----------
    table:
        The study table.
    metrics:
        Metric columns (``baseline`` and :data:`BASELINES` among them are skipped).
    baseline:
        The baseline column.
    target, by, n_boot, confidence, seed, higher_is_better
        As in :func:`~metaleep.analysis.correlations.correlations`.
    alpha:
        Familywise level of ``beats``.

    Returns
    -------
    DataFrame
        The ``by`` columns, then :data:`BASELINE_TEST_COLUMNS`: ``metric``, ``baseline``,
        ``n``, ``n_episodes``, ``r``, ``r_baseline``, ``difference``, ``ci_low``, ``ci_high``,
        ``p_value`` (one-sided, this comparison alone), ``p_adjusted`` (familywise),
        ``beats`` and ``note`` (why a row is NaN).

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> rng = np.random.default_rng(0)
    >>> acc = rng.normal(size=200)
    >>> t = pd.DataFrame({"episode": range(200), "accuracy": acc,
    ...                   "good": acc + 0.5 * rng.normal(size=200),
    ...                   "poor": acc + 5.0 * rng.normal(size=200),
    ...                   "centroid_loo": acc + 2.0 * rng.normal(size=200)})
    >>> out = baseline_tests(t, metrics=["good", "poor"], by=(), n_boot=500)
    >>> out[["metric", "beats"]].values.tolist()
    [['good', True], ['poor', False]]
    """
    check_table(table)
    others = [m for m in metric_columns(table, metrics) if m != baseline and m not in BASELINES]
    metric_columns(table, [baseline])
    check_boot(n_boot, confidence)
    if not 0.0 < float(alpha) < 1.0:
        raise ValueError(f"`alpha` must be in (0, 1); got {alpha!r}.")
    by_cols = list(by)
    missing = [c for c in (*by_cols, target) if c not in table.columns]
    if missing:
        raise ValueError(f"`by` and `target` must be columns of `table`; got {missing!r} missing.")

    rows: list[dict[str, object]] = []
    replicates: list[npt.NDArray[np.float64]] = []
    for key, frame in iter_groups(table, by_cols):
        units_all = unit_codes(frame)
        y_all = frame[target].to_numpy(dtype=np.float64)
        xb_all = metric_sign(baseline, higher_is_better) * frame[baseline].to_numpy(np.float64)
        cache: dict[bytes, tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]] = {}
        for metric in others:
            xa_all = metric_sign(metric, higher_is_better) * frame[metric].to_numpy(np.float64)
            keep = np.isfinite(xa_all) & np.isfinite(xb_all) & np.isfinite(y_all)
            xa, xb, y, units = xa_all[keep], xb_all[keep], y_all[keep], units_all[keep]
            n_units = len(np.unique(units))
            notes: list[str] = []
            if not keep.all():
                notes.append(f"{int((~keep).sum())} rows with non-finite values dropped")
            reason_a, reason_b = _undefined(xa, y, n_units), _undefined(xb, y, n_units)
            r_a = r_b = diff = low = high = p = math.nan
            boot = np.full(n_boot, math.nan)
            if reason_a or reason_b:
                notes.insert(0, f"{metric}: {reason_a}" if reason_a else f"{baseline}: {reason_b}")
            else:
                r_a = float(stats.pearsonr(xa, y).statistic)
                r_b = float(stats.pearsonr(xb, y).statistic)
                diff = r_a - r_b
                if n_boot > 0:
                    if keep.tobytes() not in cache:  # the baseline's replicates, once
                        weights = row_weights(units, n_boot, seed)
                        base = replicate_statistics(xb, y, weights, ["pearson"])["pearson"]
                        cache[keep.tobytes()] = (weights, base)
                    weights, base = cache[keep.tobytes()]
                    boot = replicate_statistics(xa, y, weights, ["pearson"])["pearson"] - base
                    ok = boot[np.isfinite(boot)]
                    if ok.size:
                        low, high = percentile_ci(ok, confidence)
                        p = (1.0 + float((ok <= 0).sum())) / (1.0 + ok.size)
                else:
                    notes.append("n_boot=0: no test")
            replicates.append(boot)
            rows.append(
                {
                    **dict(zip(by_cols, key, strict=True)),
                    "metric": metric,
                    "baseline": baseline,
                    "n": len(y),
                    "n_episodes": n_units,
                    "r": r_a,
                    "r_baseline": r_b,
                    "difference": diff,
                    "ci_low": low,
                    "ci_high": high,
                    "p_value": p,
                    "note": "; ".join(notes),
                }
            )
    out = pd.DataFrame(rows, columns=[*by_cols, *BASELINE_TEST_COLUMNS])
    differences = out["difference"].to_numpy(dtype=np.float64)
    matrix = np.vstack(replicates) if replicates else np.empty((0, n_boot))
    adjusted = max_t_p_values(differences, matrix)
    out["p_adjusted"] = adjusted
    out["beats"] = np.isfinite(adjusted) & (adjusted < alpha)
    distinct = {
        (float(d), row.tobytes())
        for d, row in zip(differences, matrix, strict=True)
        if np.isfinite(d)
    }
    out.attrs.update(
        by=by_cols,
        n_boot=int(n_boot),
        alpha=float(alpha),
        n_comparisons=len(distinct),
        baseline=baseline,
    )
    return out


def verdict(
    correlations: pd.DataFrame,
    tests: pd.DataFrame | None,
    *,
    baseline: str | None = "centroid_loo",
) -> pd.DataFrame:
    """Per group: the metric with the highest Pearson r, and whether it beats the baseline.

    The best metric has the highest signed Pearson r among the defined ones (:data:`BASELINES`
    and ``baseline`` never count; a tie goes to the first in the table's order). Its row of
    ``tests`` (:func:`baseline_tests`) says whether it beats the baseline familywise.

    Parameters
    ----------
    correlations:
        :func:`~metaleep.analysis.correlations.correlations` output (its Pearson rows are used;
        ``attrs["by"]`` names the grouping columns).
    tests:
        :func:`baseline_tests` output on the same groups (``None``: no test).
    baseline:
        The baseline metric (its r and CI come from ``correlations``).

    Returns
    -------
    DataFrame
        One row per group: the grouping columns, then :data:`VERDICT_COLUMNS`. ``best`` is ""
        when no metric has an r (``note`` says why); the baseline columns are NaN, and
        ``baseline`` "", without a baseline.

    Examples
    --------
    >>> import pandas as pd
    >>> corr = pd.DataFrame({"backbone": "m", "metric": ["leep", "nce", "centroid_loo"],
    ...                      "method": "pearson", "n_episodes": 50, "r": [0.4, 0.5, 0.6],
    ...                      "ci_low": [0.3, 0.4, 0.5], "ci_high": [0.5, 0.6, 0.7],
    ...                      "note": ""})
    >>> corr.attrs["by"] = ["backbone"]
    >>> verdict(corr, None)[["backbone", "best", "r", "baseline_r", "beats"]].values.tolist()
    [['m', 'nce', 0.5, 0.6, False]]
    """
    by_cols = list(correlations.attrs.get("by", []))
    pearson = correlations[correlations["method"] == "pearson"]
    has_baseline = baseline is not None and bool((pearson["metric"] == baseline).any())
    rows = []
    for key, frame in iter_groups(pearson, by_cols):
        group = dict(zip(by_cols, key, strict=True))
        candidates = frame[~frame["metric"].isin([*BASELINES, baseline])]
        defined = candidates[np.isfinite(candidates["r"].to_numpy(dtype=np.float64))]
        row: dict[str, object] = {**group, **dict.fromkeys(VERDICT_COLUMNS, math.nan)}
        row.update(best="", baseline=baseline if has_baseline else "", beats=False, note="")
        if defined.empty:
            reasons = sorted({str(n).split(";")[0] for n in candidates.get("note", []) if n})
            row["note"] = "no metric has a correlation here" + (
                f" ({', '.join(reasons)})" if reasons else ""
            )
        else:
            best = defined.iloc[int(np.argmax(defined["r"].to_numpy(dtype=np.float64)))]
            row.update(
                best=best["metric"],
                r=float(best["r"]),
                ci_low=float(best["ci_low"]),
                ci_high=float(best["ci_high"]),
                n_episodes=best.get("n_episodes", math.nan),
            )
        base = frame[frame["metric"] == baseline] if has_baseline else frame.iloc[:0]
        if len(base):
            base_r = float(base["r"].iloc[0])
            row.update(
                baseline_r=base_r,
                baseline_ci_low=float(base["ci_low"].iloc[0]),
                baseline_ci_high=float(base["ci_high"].iloc[0]),
            )
            if not math.isfinite(base_r):
                row["note"] = f"{baseline}: {str(base['note'].iloc[0]).split(';')[0]}"
        if tests is not None and row["best"]:
            mask = np.array(tests["metric"] == row["best"], dtype=bool)
            for col, value in group.items():
                mask &= np.array(tests[col] == value, dtype=bool)
            if mask.any():
                rec = tests[mask].iloc[0]
                row.update(
                    difference=float(rec["difference"]),
                    difference_ci_low=float(rec["ci_low"]),
                    difference_ci_high=float(rec["ci_high"]),
                    p_adjusted=float(rec["p_adjusted"]),
                    beats=bool(rec["beats"]),
                )
        rows.append(row)
    out = pd.DataFrame(rows, columns=[*by_cols, *VERDICT_COLUMNS])
    out["beats"] = out["beats"].astype(bool)
    out.attrs["by"] = by_cols
    return out
