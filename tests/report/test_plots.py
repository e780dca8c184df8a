"""Tests of metaleep.report.plots: the figures' content, not their pixels."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from metaleep.analysis.correlations import correlations
from metaleep.report.plots import correlation_bars, scatter_metrics, selection_plot


def table(n: int = 40, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    acc = rng.uniform(0.3, 0.9, size=n)
    return pd.DataFrame(
        {
            "episode": range(n),
            "ways": np.where(np.arange(n) % 2, 5, 20),
            "accuracy": acc,
            "leep": 2.0 * acc - 3.0 + 0.05 * rng.normal(size=n),
            "nce": rng.normal(size=n),
            "h_score": np.full(n, 4.0),
        }
    )


def test_scatter_panels_titles_and_fitted_line() -> None:
    t = table()
    fig = scatter_metrics(t, metrics=["leep", "nce", "h_score"], title="group")
    axes = [ax for ax in fig.axes if ax.get_visible()]
    assert len(axes) == 3
    r = stats.pearsonr(t.leep, t.accuracy).statistic
    assert axes[0].get_title() == f"LEEP\nr = {r:.2f}"
    assert axes[2].get_title() == "H-score\nr undefined (constant)"
    # least-squares line on the LEEP panel
    (line,) = axes[0].get_lines()
    xs, ys = line.get_data()
    slope, intercept = np.polyfit(t.leep, t.accuracy, 1)
    np.testing.assert_allclose(ys, slope * np.asarray(xs) + intercept)
    assert not axes[2].get_lines()  # no line through a constant metric
    fig.savefig(io.BytesIO(), format="png")


def test_scatter_uses_given_correlations_and_hue() -> None:
    t = table()
    corr = correlations(t, metrics=["leep", "h_score"], by=(), methods=["pearson"], n_boot=50)
    fig = scatter_metrics(t, metrics=["leep", "h_score"], hue="ways", correlations=corr)
    row = corr.iloc[0]
    assert (
        fig.axes[0].get_title().endswith(f"r = {row.r:.2f} [{row.ci_low:.2f}, {row.ci_high:.2f}]")
    )
    assert fig.axes[1].get_title().endswith("r undefined (constant metric)")
    labels = [text.get_text() for text in fig.axes[0].get_legend().get_texts()]
    assert labels == ["ways = 5", "ways = 20"]
    with pytest.raises(ValueError, match=r"^`correlations` must hold one Pearson row per metric"):
        scatter_metrics(t, metrics=["leep"], correlations=pd.concat([corr, corr]))


def test_correlation_bars_one_bar_per_group_and_metric() -> None:
    t = pd.concat([table(seed=1).assign(backbone="a"), table(seed=2).assign(backbone="b")])
    corr = correlations(
        t, metrics=["leep", "nce", "h_score"], by=("backbone",), methods=["pearson"], n_boot=50
    )
    fig = correlation_bars(corr)
    ax = fig.axes[0]
    assert len(ax.patches) == 6
    assert [tick.get_text() for tick in ax.get_yticklabels()] == ["a", "b"]
    widths = sorted(round(p.get_width(), 6) for p in ax.patches)
    expected = sorted(round(v, 6) for v in np.nan_to_num(corr.r.to_numpy()))
    assert widths == expected
    assert any(text.get_text().strip() == "undefined" for text in ax.texts)
    with pytest.raises(ValueError, match=r"^`method` must be one of \['pearson'\]; got 'kendall'"):
        correlation_bars(corr, method="kendall")


def test_selection_plot_has_chance_marks() -> None:
    sel = pd.DataFrame(
        {
            "dummy": ["head", "head"],
            "metric": ["leep", "nce"],
            "hit_rate": [0.8, 0.3],
            "hit_ci_low": [0.7, 0.2],
            "hit_ci_high": [0.9, 0.4],
            "chance_hit_rate": [0.25, 0.25],
            "regret": [0.01, 0.1],
            "regret_ci_low": [0.0, 0.05],
            "regret_ci_high": [0.02, 0.15],
            "chance_regret": [0.08, 0.08],
        }
    )
    fig = selection_plot(sel, title="selection")
    hit_ax, regret_ax = fig.axes
    assert sorted(p.get_width() for p in hit_ax.patches) == [0.3, 0.8]
    assert sorted(p.get_width() for p in regret_ax.patches) == [0.01, 0.1]
    chance = [c for c in hit_ax.collections if c.get_linestyle()[0][1] is not None]
    assert chance and np.allclose(chance[0].get_segments()[0][:, 0], 0.25)
    fig.savefig(io.BytesIO(), format="png")
