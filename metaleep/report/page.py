"""The study report: one self-contained HTML page, a Markdown twin, PNG figures and CSV tables.

:func:`write_report` takes the study's tidy table and its configuration and writes, in
``out_dir``:

- ``report.html``: self-contained (figures embedded as ``data:image/png;base64`` URIs);
- ``report.md`` and the ``*.png`` figures it links to;
- ``correlations.csv``, ``comparisons.csv``, ``selection.csv`` (the full tables behind the
  report, when computed).

Sections: configuration, how to read the numbers, the accuracy of each adaptation with the
support loss it ended at (:func:`accuracy_table`), the main correlation table (Pearson r with
its bootstrap CI per metric, then Spearman, Kendall and weighted tau), LEEP against every other
metric (paired bootstrap), results per number of ways / shots / within- vs mixed-alphabet
episodes, source-model selection (when several backbones are present), one compact scatter
grid per backbone (constant metrics left out, said once), timings.
:func:`format_correlation_table` builds the compact ``0.59 [0.52, 0.65]`` table the CLI prints.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from metaleep._io import atomic_write_bytes
from metaleep.analysis.correlations import (
    COMPARISON_COLUMNS,
    CORRELATION_COLUMNS,
    LEEP_LIKE,
    METHODS,
    add_normalised_leep,
    compare_metrics,
    use_normalised_leep,
)
from metaleep.analysis.correlations import correlations as compute_correlations
from metaleep.analysis.selection import SELECTION_COLUMNS
from metaleep.analysis.tables import check_table, metric_columns
from metaleep.report.document import Document, slug
from metaleep.report.plots import metric_label

if TYPE_CHECKING:
    pass

__all__ = [
    "UNCONVERGED_FRACTION",
    "accuracy_table",
    "format_comparison_table",
    "format_correlation_table",
    "format_selection_table",
    "write_report",
]

logger = logging.getLogger(__name__)

_METHOD_NAMES = {
    "pearson": "Pearson r",
    "spearman": "Spearman ρ",
    "kendall": "Kendall τ-b",
    "weightedtau": "weighted τ",
}
_GROUP_EXTRAS = (
    ("ways", "number of ways"),
    ("shots", "number of shots"),
    ("within_alphabet", "within-alphabet vs mixed-alphabet episodes"),
)


# --------------------------------------------------------------------------------------------
# Compact tables
# --------------------------------------------------------------------------------------------


def _group_cols(frame: pd.DataFrame, keys: Sequence[str]) -> list[str]:
    by = frame.attrs.get("by")
    if isinstance(by, list) and all(c in frame.columns for c in by):
        return list(by)
    return [c for c in frame.columns if c not in keys]


def _fmt(value: float, digits: int) -> str:
    return "" if not math.isfinite(value) else f"{value:.{digits}f}"


def _with_ci(value: float, low: float, high: float, digits: int) -> str:
    if not math.isfinite(value):
        return "n/a"
    if not (math.isfinite(low) and math.isfinite(high)):
        return _fmt(value, digits)
    return f"{value:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"


def format_correlation_table(
    corr: pd.DataFrame, *, methods: Sequence[str] | None = None, digits: int = 2
) -> pd.DataFrame:
    """Compact human table of :func:`~metaleep.analysis.correlations.correlations` output.

    Parameters
    ----------
    corr : DataFrame
        Output of :func:`~metaleep.analysis.correlations.correlations`.
    methods : sequence of str, optional
        Methods to keep, in this order (default: all present, in their order).
    digits : int
        Decimals.

    Returns
    -------
    DataFrame
        One row per (group, method): the group columns, ``method``, then one column per metric
        (display names) holding ``"r [ci_low, ci_high]"``; an undefined correlation reads
        ``"n/a (<reason>)"``.

    Examples
    --------
    >>> import pandas as pd
    >>> corr = pd.DataFrame({"backbone": "conv4", "metric": ["leep", "nce"],
    ...                      "method": "pearson", "n": 100, "n_episodes": 100,
    ...                      "r": [0.591, float("nan")], "ci_low": [0.52, float("nan")],
    ...                      "ci_high": [0.653, float("nan")], "p_value": [1e-9, float("nan")],
    ...                      "note": ["", "constant metric"]})
    >>> print(format_correlation_table(corr).to_string(index=False))
    backbone    method              LEEP                   NCE
       conv4 Pearson r 0.59 [0.52, 0.65] n/a (constant metric)
    """
    if not isinstance(corr, pd.DataFrame):
        raise TypeError(f"`corr` must be a pandas DataFrame; got {type(corr).__name__!r}.")
    missing = [c for c in ("metric", "method", "r", "ci_low", "ci_high") if c not in corr.columns]
    if missing:
        raise ValueError(
            f"`corr` must have the columns of correlations(); got {missing!r} missing."
        )
    group_cols = _group_cols(corr, CORRELATION_COLUMNS)
    present = list(dict.fromkeys(corr["method"]))
    chosen = present if methods is None else [m for m in methods if m in present]
    metrics = list(dict.fromkeys(corr["metric"]))
    labels = [metric_label(m) for m in metrics]
    if group_cols:
        group_keys = list(dict.fromkeys(corr[group_cols].itertuples(index=False, name=None)))
        codes = list(corr[group_cols].itertuples(index=False, name=None))
    else:
        group_keys, codes = [()], [()] * len(corr)
    cells: dict[tuple[object, ...], str] = {}
    for code, rec_d in zip(codes, corr.to_dict("records"), strict=True):
        text = _with_ci(float(rec_d["r"]), float(rec_d["ci_low"]), float(rec_d["ci_high"]), digits)
        note = str(rec_d.get("note", "") or "")
        if text == "n/a" and note:
            text = f"n/a ({note.split(';')[0]})"
        cells[(*code, rec_d["method"], rec_d["metric"])] = text
    rows: list[list[object]] = []
    for key in group_keys:
        for method in chosen:
            row: list[object] = [*key, _METHOD_NAMES.get(method, method)]
            row += [cells.get((*key, method, metric), "") for metric in metrics]
            rows.append(row)
    return pd.DataFrame(rows, columns=[*group_cols, "method", *labels])


def format_comparison_table(comp: pd.DataFrame, *, digits: int = 2) -> pd.DataFrame:
    """Compact table of :func:`~metaleep.analysis.correlations.compare_metrics` output.

    Columns: the group columns, ``comparison`` ("LEEP vs NCE"), ``r_a``, ``r_b``,
    ``difference [CI]`` and the one-sided ``p`` (3 significant digits).

    Examples
    --------
    >>> import pandas as pd
    >>> comp = pd.DataFrame({"metric_a": ["leep"], "metric_b": ["nce"], "method": "pearson",
    ...                      "n": 50, "r_a": [0.6], "r_b": [0.4], "difference": [0.2],
    ...                      "ci_low": [0.05], "ci_high": [0.33], "p_value": [0.004],
    ...                      "note": [""]})
    >>> format_comparison_table(comp).iloc[0].tolist()
    ['LEEP vs NCE', '0.60', '0.40', '0.20 [0.05, 0.33]', '0.004', '']
    """
    group_cols = _group_cols(comp, COMPARISON_COLUMNS)
    out = comp[group_cols].copy()
    out["comparison"] = [
        f"{metric_label(a)} vs {metric_label(b)}"
        for a, b in zip(comp["metric_a"], comp["metric_b"], strict=True)
    ]
    out["r_a"] = [_fmt(float(v), digits) for v in comp["r_a"]]
    out["r_b"] = [_fmt(float(v), digits) for v in comp["r_b"]]
    out["difference [CI]"] = [
        _with_ci(float(d), float(lo), float(hi), digits)
        for d, lo, hi in zip(comp["difference"], comp["ci_low"], comp["ci_high"], strict=True)
    ]
    out["p (one-sided)"] = [
        f"{float(p):.3g}" if math.isfinite(float(p)) else "" for p in comp["p_value"]
    ]
    out["note"] = comp["note"].fillna("").astype(str).to_numpy()
    return out.reset_index(drop=True)


def format_selection_table(sel: pd.DataFrame, *, digits: int = 2) -> pd.DataFrame:
    """Compact table of :func:`~metaleep.analysis.selection.source_selection` output.

    Examples
    --------
    >>> import pandas as pd
    >>> s = pd.DataFrame({"metric": ["leep"], "n_episodes": [40], "n_models": [3],
    ...                   "hit_rate": [0.8], "hit_ci_low": [0.65], "hit_ci_high": [0.9],
    ...                   "chance_hit_rate": [0.34], "tau": [0.5], "tau_ci_low": [0.4],
    ...                   "tau_ci_high": [0.6], "regret": [0.01], "regret_ci_low": [0.0],
    ...                   "regret_ci_high": [0.02], "chance_regret": [0.05], "note": [""]})
    >>> row = format_selection_table(s).iloc[0]
    >>> row["metric"], row["top-1 hit rate [CI]"], row["chance hit rate"]
    ('LEEP', '0.80 [0.65, 0.90]', '0.34')
    """
    group_cols = _group_cols(sel, SELECTION_COLUMNS)
    out = sel[group_cols].copy()
    out["metric"] = [metric_label(m) for m in sel["metric"]]
    out["episodes"] = sel["n_episodes"].to_numpy()
    out["models"] = sel["n_models"].to_numpy()

    def col(name: str, prefix: str) -> list[str]:
        return [
            _with_ci(float(v), float(lo), float(hi), digits)
            for v, lo, hi in zip(
                sel[name], sel[f"{prefix}_ci_low"], sel[f"{prefix}_ci_high"], strict=True
            )
        ]

    out["top-1 hit rate [CI]"] = col("hit_rate", "hit")
    out["chance hit rate"] = [_fmt(float(v), digits) for v in sel["chance_hit_rate"]]
    out["weighted τ [CI]"] = col("tau", "tau")
    out["regret [CI]"] = col("regret", "regret")
    out["chance regret"] = [_fmt(float(v), digits) for v in sel["chance_regret"]]
    out["note"] = sel["note"].fillna("").astype(str).to_numpy()
    return out.reset_index(drop=True)


# --------------------------------------------------------------------------------------------
# Rendering helpers
# --------------------------------------------------------------------------------------------


def _config_frame(config: Mapping[str, object]) -> pd.DataFrame:
    def render(value: object) -> str:
        if isinstance(value, str | int | float | bool) or value is None:
            return str(value)
        try:
            return json.dumps(value, default=str, sort_keys=True)
        except (TypeError, ValueError):
            return repr(value)

    return pd.DataFrame(
        {"setting": [str(k) for k in config], "value": [render(v) for v in config.values()]}
    )


def _backbone_frame(config: Mapping[str, object]) -> pd.DataFrame | None:
    """One row per backbone that ran: how it was trained, where from, and the transfer setting
    (in-domain, or cross-domain from its source data to the study's target data)."""
    info = config.get("backbone_info")
    if not isinstance(info, Mapping) or not info:
        return None
    rows = []
    for name, item in info.items():
        if not isinstance(item, Mapping):
            continue
        source, target = item.get("source_data"), item.get("target_data")
        if item.get("cross_domain"):
            setting = f"cross-domain ({source} -> {target})"
        elif source is None:
            setting = "source data unknown"
        else:
            setting = "in-domain"
        rows.append(
            {
                "backbone": name,
                "algorithm": item.get("algorithm"),
                "from": item.get("origin"),
                "head": item.get("head"),
                "inner loop": json.dumps(item.get("inner") or {}, sort_keys=True),
                "setting": setting,
                "input transform": item.get("transform"),
            }
        )
    return pd.DataFrame(rows) if rows else None


_DATA_KEYS = ("data_loading", "sampling", "no_dummy")
"""Keys of a study's record that :func:`data_notes` says in words."""


def data_notes(config: Mapping[str, object]) -> list[str]:
    """What was done to the data, in sentences, from a study's record: how its files were
    loaded (``data_loading``), how its suite was sampled (``sampling``), and which backbones
    have no label distribution (``no_dummy``). Empty when there is nothing to say.

    Examples
    --------
    >>> data_notes({"sampling": {"ways": 5, "shots": 5, "queries": 7, "episodes": 40,
    ...                          "seed": 0, "queries_rule": "given"}})
    ['Episodes: 40 of 5-way 5-shot with 7 queries per class (given), seed 0.']
    """

    def listed(counts: object, sep: str) -> str:
        items = counts.items() if isinstance(counts, Mapping) else ()
        return ", ".join(f"{k}{sep}{v}" for k, v in items)

    def first(part: object) -> str:
        items = part.get("first", []) if isinstance(part, Mapping) else []
        count = part.get("count", 0) if isinstance(part, Mapping) else 0
        more = count - len(items)
        return "; ".join(str(i) for i in items) + (f"; and {more} more" if more > 0 else "")

    notes: list[str] = []
    load = config.get("data_loading")
    if isinstance(load, Mapping):
        size = "x".join(str(v) for v in load.get("size", []))
        notes.append(
            f"Loaded {load.get('images')} images of {load.get('classes')} classes from "
            f"{load.get('source')} at {size}, {load.get('channels')} channels."
        )
        notes.append(f"Size: {load.get('size_rule')}; {load.get('resized')} images resized.")
        changes = listed(load.get("converted"), ": ")
        notes.append(
            f"Channels: {load.get('channel_rule')}; converted {changes or 'none'} (grey copied "
            "to RGB, colour to grey by ITU-R 601 luma, transparency composited over white)."
        )
        if load.get("exif_oriented"):
            notes.append(f"EXIF orientation applied to {load.get('exif_oriented')} photos.")
        for key, words in (
            ("skipped", "Unusable files skipped"),
            ("ignored", "Ignored files and folders that are no images of a class"),
            ("hidden", "Ignored hidden files and folders"),
        ):
            part = load.get(key)
            if isinstance(part, Mapping) and part.get("count"):
                notes.append(f"{words}: {part['count']}: {first(part)}.")
        nested = load.get("nested")
        if isinstance(nested, Mapping) and nested.get("images"):
            notes.append(
                f"{nested['images']} images in nested folders counted in their top-level "
                f"class ({listed(nested.get('classes'), ' ')})."
            )
    sampling = config.get("sampling")
    if isinstance(sampling, Mapping):
        notes.append(
            f"Episodes: {sampling.get('episodes')} of {sampling.get('ways')}-way "
            f"{sampling.get('shots')}-shot with {sampling.get('queries')} queries per class "
            f"({sampling.get('queries_rule')}), seed {sampling.get('seed')}."
        )
        dropped = sampling.get("dropped_classes")
        if isinstance(dropped, Mapping) and dropped.get("count"):
            notes.append(
                f"Classes with fewer than {sampling.get('min_images')} images left out: "
                f"{dropped['count']}: {', '.join(str(d) for d in dropped.get('first', []))}"
                f"{' ...' if dropped['count'] > len(dropped.get('first', [])) else ''}."
            )
    no_dummy = config.get("no_dummy")
    if isinstance(no_dummy, Mapping):
        for name, reason in no_dummy.items():
            notes.append(
                f"Backbone {name}: rows of dummy 'none', every feature metric and no LEEP or "
                f"NCE ({reason})."
            )
    return notes


# --------------------------------------------------------------------------------------------
# Findings worth saying in words
# --------------------------------------------------------------------------------------------


def _one_shot_findings(table: pd.DataFrame, metrics: Sequence[str], by: Sequence[str]) -> list[str]:
    """Sentences about NCE / H-score on 1-shot episodes, from what the table shows."""
    if "shots" not in table.columns or not (table["shots"] == 1).any():
        return []
    one = table[table["shots"] == 1]
    keys = [c for c in (*by, "ways") if c in one.columns]
    found: list[str] = []
    for metric in ("h_score", "nce"):
        if metric not in metrics:
            continue
        grouped = one.groupby(keys, dropna=False)[metric] if keys else None
        distinct = grouped.nunique() if grouped is not None else pd.Series([one[metric].nunique()])
        n_groups = len(distinct)
        n_constant = int((distinct <= 1).sum())
        if n_constant:
            found.append(
                f"{metric_label(metric)} is constant on the 1-shot episodes of {n_constant} of "
                f"{n_groups} groups: its correlation there is undefined (reported as n/a)."
            )
        else:
            found.append(
                f"{metric_label(metric)} takes at most {int(distinct.max())} distinct values per "
                "group on the 1-shot episodes."
            )
    return found


def _how_to_read(
    *,
    normalised: bool,
    mixed_ways: bool,
    one_shot: bool,
    n_boot: int,
    confidence: float,
    seed: int,
    target: str,
) -> list[str]:
    pct = f"{100 * confidence:g} %"
    items = [
        f"Each row of the study table is one episode adapted by one backbone; the scores are "
        f"computed on the support set before adaptation and correlated with the {target} "
        "on the query set after adaptation. A positive correlation means the score ranks "
        "episodes the way the adaptation does.",
        f"Intervals are {pct} percentile bootstrap intervals over episodes ({n_boot} resamples "
        f"of the episodes with replacement, seed {seed}). Pearson r is the headline number (the "
        "LEEP paper's); Spearman ρ and Kendall τ-b are rank correlations, weighted τ (Vigna) "
        "stresses the top of the ranking and has no p-value.",
        "LEEP ≤ 0 (higher is better). Its floor is −H(Y), the label entropy, reached by a "
        "source whose output ignores the input; for a balanced N-way episode that is −log N, so "
        "raw LEEP is not comparable across episodes with different numbers of ways.",
    ]
    if normalised:
        items.append(
            "This report uses normalised LEEP (and N-LEEP), 1 + LEEP / log N: 0 at the "
            "uninformative floor of a balanced N-way episode, 1 for a perfect source"
            + (
                ", because some groups mix episodes with different numbers of ways."
                if mixed_ways
                else "."
            )
            + " Within one N it is an increasing affine map of LEEP, so correlations computed "
            "within one N are the same as for raw LEEP."
        )
    elif mixed_ways:
        items.append(
            "Caution: this report uses raw LEEP although some groups mix episodes with "
            "different numbers of ways, so part of its correlation there comes from the number "
            "of ways alone. The normalised form 1 + LEEP / log N (leep='auto' or 'normalised') "
            "removes that; the per-ways results below are unaffected."
        )
    else:
        items.append(
            "This report uses raw LEEP: every group holds episodes with one number of ways, "
            "where raw and normalised LEEP (1 + LEEP / log N) give the same correlations."
        )
    items.append(
        "The paired comparison tests whether LEEP's signed correlation exceeds another "
        "metric's on the same episodes: difference of r, its bootstrap interval (same resampled "
        "episodes for both metrics) and the one-sided bootstrap p-value for 'LEEP is better'."
    )
    if one_shot:
        items.append(
            "1-shot caveat: with one support sample per class the class mean of the features is "
            "the sample itself, so H-score = tr(cov(f)⁺ cov(f)) = rank of the feature covariance "
            "— a constant — and NCE = −H(Y|Z) only counts how many classes share a hard dummy "
            "label. Their correlations on 1-shot episodes are undefined or coarse."
        )
    items.append(
        "n/a marks a correlation that is undefined (a constant metric or target, or fewer than "
        "3 episodes); the note column of the full tables says which."
    )
    return items


# --------------------------------------------------------------------------------------------
# Accuracy of each adaptation, and whether it converged
# --------------------------------------------------------------------------------------------

UNCONVERGED_FRACTION = 0.5
"""An adaptation counts as unconverged on an episode when its support loss is above this
fraction of ``log N`` (the loss of a uniform guess): it removed less than half of it."""


def _settings_text(settings: object) -> str:
    """``steps=1, lr=0.4, second order (as trained)`` from one adaptation's settings."""
    if not isinstance(settings, Mapping):
        return ""
    words = []
    order = ("steps", "lr", "first_order", "accelerated", "weight_decay")
    keys = sorted(settings, key=lambda k: (order.index(k) if k in order else len(order), k))
    for key in keys:
        value = settings[key]
        if key == "from_training" or (key == "batch_norm" and value == "transductive"):
            continue
        if key == "first_order":
            words.append("first order" if value else "second order")
        elif key == "accelerated":
            words.append("accelerated" if value else "plain GD")
        elif key == "weight_decay" and not value:
            continue
        else:
            words.append(f"{key}={value}")
    text = ", ".join(words)
    if settings.get("from_training"):
        text += " (as meta-trained)"
    return text


def accuracy_table(
    table: pd.DataFrame,
    *,
    target: str = "accuracy",
    settings: Mapping[str, Mapping[str, object]] | None = None,
) -> pd.DataFrame:
    """Accuracy per backbone and adaptation, with how far each adaptation converged.

    The dummy-label mode does not change an adaptation, so each (episode, backbone,
    adaptation) counts once.

    Parameters
    ----------
    table : DataFrame
        The study table: ``episode``, ``backbone``, ``adaptation`` and ``target`` columns;
        ``support_loss``, ``start_logit_std`` and ``ways`` are used when present.
    target : str
        Accuracy column.
    settings : mapping, optional
        ``study.json``'s ``adaptation_settings`` (``{backbone: {adaptation: {...}}}``), shown
        as a column.

    Returns
    -------
    DataFrame
        One row per (backbone, adaptation): ``episodes``, ``mean``, ``std`` (over episodes),
        ``share_100`` (share of episodes at accuracy 1), ``support_loss`` (mean),
        ``unconverged`` (share of episodes whose support loss is above
        :data:`UNCONVERGED_FRACTION` x log N; NaN for adaptations that do not iterate from a
        starting head, such as prototypes, whose ``start_logit_std`` is NaN),
        ``start_logit_std`` (mean spread of the logits the adaptation started from) and
        ``settings``.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> t = pd.DataFrame({"episode": [0, 1, 0, 1], "backbone": "m", "dummy": "head",
    ...                   "adaptation": ["anil", "anil", "maml", "maml"], "ways": 5,
    ...                   "accuracy": [1.0, 0.8, 0.6, 0.6], "support_loss": [0.1, 0.3, 1.5, 1.2],
    ...                   "start_logit_std": 0.5})
    >>> accuracy_table(t)[["adaptation", "mean", "share_100", "unconverged"]].values.tolist()
    [['anil', 0.9, 0.5, 0.0], ['maml', 0.6, 0.0, 1.0]]
    """
    check_table(table)
    needed = ["episode", "backbone", "adaptation", target]
    missing = [c for c in needed if c not in table.columns]
    if missing:
        raise ValueError(f"`table` must have the columns {needed!r}; got {missing!r} missing.")
    keys = [c for c in ("suite", "episode", "backbone", "adaptation") if c in table.columns]
    once = table.drop_duplicates(keys)
    rows = []
    for (backbone, adaptation), frame in once.groupby(["backbone", "adaptation"], sort=True):
        accuracy = frame[target].to_numpy(dtype=np.float64)
        row: dict[str, object] = {
            "backbone": backbone,
            "adaptation": adaptation,
            "episodes": len(frame),
            "mean": float(accuracy.mean()),
            "std": float(accuracy.std(ddof=1)) if len(accuracy) > 1 else math.nan,
            "share_100": float(np.mean(accuracy >= 1.0)),
            "support_loss": math.nan,
            "unconverged": math.nan,
            "start_logit_std": math.nan,
        }
        if "support_loss" in frame.columns and frame["support_loss"].notna().any():
            loss = frame["support_loss"].to_numpy(dtype=np.float64)
            ways = frame["ways"].to_numpy(dtype=np.float64) if "ways" in frame else None
            row["support_loss"] = float(np.nanmean(loss))
            iterative = "start_logit_std" in frame and frame["start_logit_std"].notna().any()
            if ways is not None and iterative:
                row["unconverged"] = float(np.mean(loss > UNCONVERGED_FRACTION * np.log(ways)))
        if "start_logit_std" in frame.columns and frame["start_logit_std"].notna().any():
            row["start_logit_std"] = float(np.nanmean(frame["start_logit_std"]))
        entry = (settings or {}).get(str(backbone), {})
        row["settings"] = _settings_text(entry.get(str(adaptation)) if entry else None)
        rows.append(row)
    return pd.DataFrame(rows)


def _flat_spread(ways: int, probability: float = 0.9) -> float:
    """Logit spread of an N-way head that gives one class ``probability`` and the others equal
    logits: the logit gap a = log(p (N - 1) / (1 - p)), spread a sqrt(N - 1) / N."""
    gap = math.log(probability * (ways - 1) / (1 - probability))
    return gap * math.sqrt(ways - 1) / ways


def _accuracy_section(
    doc: Document, data: pd.DataFrame, config: Mapping[str, object], target: str
) -> None:
    """The accuracy table, the adaptations that did not converge, and flat heads."""
    if not all(c in data.columns for c in ("episode", "backbone", "adaptation")):
        return
    settings = config.get("adaptation_settings")
    summary = accuracy_table(
        data, target=target, settings=settings if isinstance(settings, Mapping) else None
    )
    doc.heading("Accuracy of each adaptation")
    doc.paragraph(
        f"Query {target} per backbone and adaptation (each episode once, whatever the dummy "
        "labels): mean, standard deviation over episodes, share of episodes at 100 %; the "
        "support loss the adaptation ended at (a uniform guess has log N); the share of "
        f"episodes where it stayed above {UNCONVERGED_FRACTION:g} x log N (unconverged); the "
        "spread of the logits it started from (standard deviation over the N classes, averaged "
        "over the support images; 0 for a zero head); and its settings."
    )
    shown = summary.copy()
    for col in ("mean", "std", "share_100", "support_loss", "unconverged", "start_logit_std"):
        shown[col] = [_fmt(float(v), 3) for v in summary[col]]
    shown = shown.rename(
        columns={
            "mean": f"mean {target}",
            "std": "std",
            "share_100": "share at 100 %",
            "support_loss": "support loss",
            "unconverged": "share unconverged",
            "start_logit_std": "start logit spread",
        }
    )
    doc.table(shown)
    findings = []
    stuck = summary[summary["unconverged"] > 0.1]
    for rec in stuck.to_dict("records"):
        findings.append(
            f"{rec['backbone']} / {rec['adaptation']} did not converge on "
            f"{100 * float(rec['unconverged']):.0f} % of the episodes (mean support loss "
            f"{float(rec['support_loss']):.2f}): its accuracy, and every correlation with it, "
            "describes an adaptation stopped early."
        )
    ways = int(data["ways"].max()) if "ways" in data.columns else 0
    heads = summary[summary["adaptation"].isin(["anil", "maml"])]
    for backbone, frame in heads.groupby("backbone", sort=True):
        spread = float(frame.sort_values("adaptation")["start_logit_std"].iloc[0])
        if not math.isfinite(spread) or ways < 2:
            continue
        reference = _flat_spread(ways)
        flat = " — nearly flat" if spread < reference / 2 else ""
        findings.append(
            f"{backbone}'s meta-learned head starts from logits of spread {spread:.2f} on the "
            f"support images{flat} (a {ways}-way head that gives the true class 0.9 has "
            f"{reference:.2f}); its 'head' dummy labels are then close to uniform, which "
            "bears on their LEEP."
        )
    if findings:
        doc.bullets(findings)


# --------------------------------------------------------------------------------------------
# Scatter plots: one compact grid per backbone
# --------------------------------------------------------------------------------------------


def _constant_metrics(data: pd.DataFrame, metrics: Sequence[str], by: Sequence[str]) -> list[str]:
    """Metrics that are constant within every group of ``by``."""
    from metaleep.analysis.tables import is_constant

    groups = list(data.groupby(list(by), dropna=False)) if by else [((), data)]
    return [
        m
        for m in metrics
        if m in data.columns
        and all(is_constant(frame[m].dropna().to_numpy(dtype=np.float64)) for _, frame in groups)
    ]


def _scatter_section(
    doc: Document,
    data: pd.DataFrame,
    correlations: pd.DataFrame,
    *,
    by: Sequence[str],
    metrics: Sequence[str],
    target: str,
    max_rows: int,
) -> None:
    """One compact scatter grid per backbone (rows: its configurations; columns: metrics)."""
    from metaleep.report import plots

    doc.heading("Scatter plots")
    constant = _constant_metrics(data, metrics, by)
    shown_metrics = [m for m in metrics if m in data.columns and m not in constant]
    if constant:
        doc.paragraph(
            "Left out of the plots: "
            + ", ".join(metric_label(m) for m in constant)
            + " (constant in every configuration: no correlation to draw)."
        )
    if not shown_metrics:
        return
    split = "backbone" if "backbone" in by else None
    rows = [c for c in by if c != split]
    figures: list[tuple[str, pd.DataFrame]] = (
        [(str(key), frame) for key, frame in data.groupby(split, sort=True)]
        if split
        else [("all", data)]
    )
    budget = max_rows
    left: list[str] = []
    for i, (name, frame) in enumerate(figures):
        configs = list(frame.groupby(rows, sort=True, dropna=False)) if rows else [((), frame)]
        if budget <= 0:
            left += [f"{name}: {len(configs)} configurations"]
            continue
        keep = configs[:budget]
        if len(keep) < len(configs):
            left.append(f"{name}: {len(configs) - len(keep)} configurations")
        part = pd.concat([f for _, f in keep]) if rows else frame
        budget -= len(keep)
        label = f"backbone {name}" if split else "all episodes"
        fig = plots.scatter_grid(
            part,
            rows=rows,
            metrics=shown_metrics,
            target=target,
            correlations=(
                correlations[correlations[split].astype(str) == name] if split else correlations
            ),
            title=f"Metrics vs {metric_label(target)}: {label}"
            + (f" (rows: {' / '.join(rows)})" if rows else ""),
        )
        doc.figure(
            f"scatter_{i:02d}_{slug(name)}.png",
            fig,
            f"Each metric against {target}, one row per configuration of {label}.",
        )
    if left:
        doc.paragraph("Not plotted (max_scatter_groups): " + "; ".join(left) + ".")


# --------------------------------------------------------------------------------------------
# The report
# --------------------------------------------------------------------------------------------


def write_report(
    table: pd.DataFrame,
    out_dir: str | Path,
    *,
    config: Mapping[str, object],
    metrics: Sequence[str] | None = None,
    correlations: pd.DataFrame | None = None,
    selection: pd.DataFrame | None = None,
    comparisons: pd.DataFrame | None = None,
    title: str = "metaleep meta-transfer study",
    target: str = "accuracy",
    by: Sequence[str] = ("backbone", "dummy", "adaptation"),
    leep: str = "auto",
    n_boot: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
    higher_is_better: Mapping[str, bool] | None = None,
    max_scatter_groups: int = 24,
) -> Path:
    """Write ``report.html`` (self-contained), ``report.md``, PNG figures and CSVs to ``out_dir``.

    Parameters
    ----------
    table : DataFrame
        The study table (see :mod:`metaleep.analysis.correlations`).
    out_dir : str or Path
        Directory to write into (created).
    config : mapping
        The study's configuration, shown as a table at the top.
    metrics : sequence of str, optional
        Metric columns; default those of :data:`~metaleep.metrics.registry.DEFAULT_METRICS`
        present.
    correlations : DataFrame, optional
        Precomputed :func:`~metaleep.analysis.correlations.correlations` output grouped by ``by``;
        computed here when omitted.
    selection : DataFrame, optional
        Precomputed :func:`~metaleep.analysis.selection.source_selection` output; computed here
        when omitted and the table has at least two backbones.
    comparisons : DataFrame, optional
        Precomputed :func:`~metaleep.analysis.correlations.compare_metrics` output; computed here
        (LEEP vs every other metric, Pearson) when omitted.
    title : str
        Page title.
    target : str
        Accuracy column.
    by : sequence of str
        Grouping of the main tables; columns absent from ``table`` are ignored.
    leep : {"raw", "normalised", "auto"}
        LEEP form (see :func:`~metaleep.analysis.correlations.use_normalised_leep`); the report says
        which one it used.
    n_boot, confidence, seed, higher_is_better
        As in :func:`~metaleep.analysis.correlations.correlations`.
    max_scatter_groups : int
        At most this many configurations (rows of the per-backbone scatter grids) are plotted;
        the report lists those left out.

    Returns
    -------
    Path
        The path of ``report.html``.

    Examples
    --------
    >>> import tempfile, numpy as np, pandas as pd
    >>> rng = np.random.default_rng(0)
    >>> acc = rng.uniform(0.3, 0.9, size=30)
    >>> t = pd.DataFrame({"episode": range(30), "backbone": "conv4", "dummy": "head",
    ...                   "adaptation": "maml", "ways": 5, "shots": 5, "accuracy": acc,
    ...                   "leep": np.log(acc) + 0.1 * rng.normal(size=30)})
    >>> path = write_report(t, tempfile.mkdtemp(), config={"seed": 0}, n_boot=50)
    >>> path.name, "data:image/png;base64," in path.read_text()
    ('report.html', True)
    """
    check_table(table)
    if not isinstance(config, Mapping):
        raise TypeError(f"`config` must be a mapping; got {type(config).__name__!r}.")
    if not isinstance(max_scatter_groups, int) or max_scatter_groups < 0:
        raise ValueError(f"`max_scatter_groups` must be an int >= 0; got {max_scatter_groups!r}.")
    if target not in table.columns:
        raise ValueError(f"`target` must be a column of `table`; got {target!r}.")
    from metaleep.analysis.selection import source_selection
    from metaleep.report import plots

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    base_metrics = metric_columns(table, metrics)
    by_cols = [c for c in by if c in table.columns]
    mixed_ways = use_normalised_leep(table, "auto", by=by_cols)
    normalised = use_normalised_leep(table, leep, by=by_cols) and any(
        m in LEEP_LIKE for m in base_metrics
    )
    used = [f"{m}_norm" if normalised and m in LEEP_LIKE else m for m in base_metrics]
    if correlations is not None:
        # The given table decides which LEEP form the report shows.
        given = list(dict.fromkeys(correlations["metric"]))
        normalised = any(
            m.removesuffix("_norm") in LEEP_LIKE and m.endswith("_norm") for m in given
        )
        used = given
    data = add_normalised_leep(table) if normalised else table

    def corr_of(frame: pd.DataFrame, group: Sequence[str], methods: Sequence[str]) -> pd.DataFrame:
        return compute_correlations(
            frame,
            metrics=used,
            target=target,
            by=group,
            methods=methods,
            n_boot=n_boot,
            confidence=confidence,
            seed=seed,
            higher_is_better=higher_is_better,
        )

    if correlations is None:
        correlations = corr_of(data, by_cols, METHODS)
    corr_by = _group_cols(correlations, CORRELATION_COLUMNS)
    corr_metrics = list(dict.fromkeys(correlations["metric"]))
    leep_col = next((m for m in corr_metrics if m in ("leep", "leep_norm")), None)

    doc = Document(title=title)
    backbones = _backbone_frame(config)
    if backbones is not None:
        doc.heading("Backbones")
        doc.table(backbones)
    notes = data_notes(config)
    if notes:
        doc.heading("Data")
        doc.bullets(notes)
    doc.heading("Configuration")
    shown = {k: v for k, v in config.items() if k != "backbone_info" and k not in _DATA_KEYS}
    doc.table(_config_frame(shown))
    n_episodes = (
        data.groupby([c for c in ("suite", "episode") if c in data.columns]).ngroups
        if "episode" in data.columns
        else len(data)
    )
    summary = [f"{len(data)} rows, {n_episodes} episodes."]
    for col in ("backbone", "dummy", "adaptation", "ways", "shots"):
        if col in data.columns:
            values = ", ".join(str(v) for v in sorted(data[col].dropna().unique().tolist()))
            summary.append(f"{col}: {values}")
    summary.append(
        "Metrics: "
        + ", ".join(metric_label(m) for m in corr_metrics)
        + (" (LEEP normalised: 1 + LEEP / log N)." if normalised else " (raw LEEP).")
    )
    doc.bullets(summary)

    one_shot = "shots" in data.columns and bool((data["shots"] == 1).any())
    doc.heading("How to read this")
    doc.bullets(
        _how_to_read(
            normalised=normalised,
            mixed_ways=mixed_ways,
            one_shot=one_shot,
            n_boot=n_boot,
            confidence=confidence,
            seed=seed,
            target=target,
        )
    )
    findings = _one_shot_findings(data, used, by_cols)
    if findings:
        doc.paragraph("Detected in this table:")
        doc.bullets(findings)

    _accuracy_section(doc, data, config, target)

    doc.heading("Correlation with accuracy")
    methods = list(dict.fromkeys(correlations["method"]))
    if "pearson" in methods:
        doc.table(
            format_correlation_table(correlations, methods=["pearson"]),
            f"Pearson r [{100 * confidence:g} % bootstrap CI] per group and metric.",
        )
    others = [m for m in methods if m != "pearson"]
    if others:
        doc.table(
            format_correlation_table(correlations, methods=others),
            "Rank correlations: " + ", ".join(_METHOD_NAMES.get(m, m) for m in others) + ".",
        )
    if "pearson" in methods:
        doc.figure(
            "correlation_bars.png",
            plots.correlation_bars(correlations, method="pearson"),
            "Pearson r of each metric with accuracy, per group, with bootstrap CI.",
        )
    doc.details("Full correlation table (n, p-values, notes)", correlations)

    if comparisons is None and leep_col is not None and len(corr_metrics) > 1:
        rest = [m for m in corr_metrics if m != leep_col]
        comparisons = compare_metrics(
            data,
            leep_col,
            rest,
            method="pearson",
            target=target,
            by=corr_by,
            n_boot=n_boot,
            confidence=confidence,
            seed=seed,
            higher_is_better=higher_is_better,
        )
    if comparisons is not None and len(comparisons):
        doc.heading("LEEP against the other metrics")
        doc.paragraph(
            "Paired bootstrap on the same episodes: difference of signed Pearson r (LEEP minus "
            "the other metric), its interval, and the one-sided p-value for 'LEEP correlates "
            "better'. A difference whose interval excludes 0 is a real gap on these episodes."
        )
        doc.table(format_comparison_table(comparisons))
        n_comp = comparisons.attrs.get("n_boot", n_boot)
        doc.paragraph(
            f"With {n_comp} resamples the smallest attainable p-value is 1/{n_comp + 1} "
            f"≈ {1 / (n_comp + 1):.2g}."
        )

    extras = [
        (col, words)
        for col, words in _GROUP_EXTRAS
        if col in data.columns and col not in corr_by and data[col].nunique() > 1
    ]
    per_group: dict[str, pd.DataFrame] = {}
    if extras:
        doc.heading("Results per group")
        for col, words in extras:
            sub = corr_of(data, [*by_cols, col], ("pearson",))
            per_group[col] = sub
            doc.table(format_correlation_table(sub), f"Pearson r [CI] by {words}.")

    if selection is None and "backbone" in data.columns and data["backbone"].nunique() > 1:
        by_sel = [c for c in by_cols if c != "backbone"]
        # only configurations that several backbones share can rank backbones
        shared = (
            data[data.groupby(by_sel, dropna=False)["backbone"].transform("nunique") > 1]
            if by_sel
            else data
        )
        if "episode" in data.columns and not shared.empty:
            try:
                selection = source_selection(
                    shared,
                    metrics=used,
                    model_col="backbone",
                    target=target,
                    by=by_sel,
                    n_boot=n_boot,
                    confidence=confidence,
                    seed=seed,
                    higher_is_better=higher_is_better,
                    static_prior=True,
                )
            except ValueError as err:
                logger.warning("source selection skipped: %s", err)
                doc.heading("Source-model selection")
                doc.paragraph(f"Not computed: {err}")
    if selection is not None and len(selection):
        doc.heading("Source-model selection")
        doc.paragraph(
            "On each episode the backbones are ranked by each metric and by accuracy. Top-1 hit "
            "rate: how often the metric's top backbone is a best one by accuracy (ties in "
            "accuracy all count as best; ties in the metric are split evenly). Weighted τ: "
            "agreement of the two rankings, weighted towards the top. Regret: accuracy lost by "
            "taking the metric's pick instead of the best. Chance: a uniformly random pick. "
            "Static prior (row static_prior, when present): the backbone with the best mean "
            "accuracy on the other episodes (leave-one-out), a pick that reads no metric; a "
            "metric that does not beat it adds nothing to knowing which backbone is best on "
            "average. The correlation tables' centroid_loo row is the other free baseline: the "
            "support set's nearest-centroid leave-one-out accuracy."
        )
        doc.table(format_selection_table(selection))
        doc.figure(
            "selection.png",
            plots.selection_plot(selection),
            "Top-1 hit rate and regret per metric with bootstrap CI; dashed: chance.",
        )

    _scatter_section(
        doc,
        data,
        correlations,
        by=corr_by,
        metrics=corr_metrics,
        target=target,
        max_rows=max_scatter_groups,
    )

    timing = [c for c in data.columns if str(c).startswith("seconds_")]
    if timing:
        doc.heading("Timings")
        means = (
            data.groupby(by_cols, dropna=False)[timing].mean().reset_index()
            if by_cols
            else data[timing].mean().to_frame().T
        )
        doc.table(means, "Mean seconds per episode.")

    atomic_write_bytes(out / "report.html", doc.render_html().encode("utf-8"))
    atomic_write_bytes(out / "report.md", doc.render_md().encode("utf-8"))
    for name, data_png in doc.figures.items():
        atomic_write_bytes(out / name, data_png)
    csvs = {
        "correlations.csv": correlations,
        "comparisons.csv": comparisons,
        "selection.csv": selection,
        **{f"correlations_by_{k}.csv": v for k, v in per_group.items()},
    }
    for name, frame_out in csvs.items():
        if frame_out is not None:
            atomic_write_bytes(out / name, frame_out.to_csv(index=False).encode("utf-8"))
    return out / "report.html"
