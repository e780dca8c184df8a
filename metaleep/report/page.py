"""The study report: the answer first, then the evidence, then how it was made.

:func:`write_report` renders a :class:`~metaleep.analysis.study.StudyAnalysis` (it computes
nothing) into ``out_dir``:

- ``report.html``: one self-contained page (figures embedded as 256-colour PNGs);
- ``report.md`` and the PNG figures it links to (``forest.png``, ...), and per backbone a
  scatter grid of every metric against accuracy (``scatter_*.png``, files only).

The page reads top down, each section a function of :data:`SECTIONS`:

1. **verdict** -- one sentence per group: the best metric, its r and CI, and whether it beats
   the free baseline (:func:`verdict_sentences`);
2. **forest** -- every metric's r with its CI per group, the best starred, baselines on grey;
3. **accuracy** of each adaptation, with how far it converged;
4. **details**, folded: how to read the numbers, the correlation tables (Pearson, rank
   correlations), every metric against the baseline, LEEP against the others, results per
   number of ways / shots, source-model selection, scatter plots, timings;
5. **configuration** as a table of settings.

A new analysis is a section function appended to (or inserted in) :data:`SECTIONS` that draws
its field when the analysis has it. :func:`format_correlation_table` builds the compact
``0.59 [0.52, 0.65]`` table; :func:`headline` and :func:`verdict_sentences` are the words the
command line prints too.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import pandas as pd

from metaleep._io import atomic_write_bytes
from metaleep.analysis.correlations import COMPARISON_COLUMNS, CORRELATION_COLUMNS
from metaleep.analysis.selection import SELECTION_COLUMNS
from metaleep.analysis.study import StudyAnalysis
from metaleep.report.document import Document, slug
from metaleep.report.plots import METHOD_NAMES, metric_label

__all__ = [
    "SECTIONS",
    "Section",
    "format_baseline_tests",
    "format_comparison_table",
    "format_correlation_table",
    "format_selection_table",
    "headline",
    "settings_table",
    "verdict_sentences",
    "write_report",
]

Section = Callable[[Document, StudyAnalysis], None]
"""A part of the page: draws what it needs of the analysis into the document (or nothing)."""


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


def _with_ci(value: float, low: float, high: float, digits: int = 2) -> str:
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
    corr:
        Output of :func:`~metaleep.analysis.correlations.correlations`.
    methods:
        Methods to keep, in this order (default: all present, in their order).
    digits:
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
            row: list[object] = [*key, METHOD_NAMES.get(method, method)]
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


def format_baseline_tests(tests: pd.DataFrame, *, digits: int = 2) -> pd.DataFrame:
    """Compact table of :func:`~metaleep.analysis.baseline.baseline_tests` output.

    Examples
    --------
    >>> import pandas as pd
    >>> t = pd.DataFrame({"metric": ["leep"], "baseline": "centroid_loo", "n": 50, "r": [0.6],
    ...                   "r_baseline": [0.4], "difference": [0.2], "ci_low": [0.05],
    ...                   "ci_high": [0.33], "p_value": [0.004], "p_adjusted": [0.03],
    ...                   "beats": [True], "note": [""]})
    >>> format_baseline_tests(t).iloc[0].tolist()
    ['LEEP', '0.60', '0.40', '0.20 [0.05, 0.33]', '0.004', '0.03', 'yes', '']
    """
    from metaleep.analysis.baseline import BASELINE_TEST_COLUMNS

    group_cols = _group_cols(tests, BASELINE_TEST_COLUMNS)
    out = tests[group_cols].copy()
    out["metric"] = [metric_label(m) for m in tests["metric"]]
    out["r"] = [_fmt(float(v), digits) for v in tests["r"]]
    out["r (baseline)"] = [_fmt(float(v), digits) for v in tests["r_baseline"]]
    out["difference [CI]"] = [
        _with_ci(float(d), float(lo), float(hi), digits)
        for d, lo, hi in zip(tests["difference"], tests["ci_low"], tests["ci_high"], strict=True)
    ]
    out["p (one-sided)"] = [_p(float(p)) for p in tests["p_value"]]
    out["p (familywise)"] = [_p(float(p)) for p in tests["p_adjusted"]]
    out["beats it"] = ["yes" if b else "" for b in tests["beats"]]
    out["note"] = tests["note"].fillna("").astype(str).to_numpy()
    return out.reset_index(drop=True)


def _p(value: float) -> str:
    return f"{value:.3g}" if math.isfinite(value) else ""


# --------------------------------------------------------------------------------------------
# The verdict in words
# --------------------------------------------------------------------------------------------


def _num(value: object) -> float:
    """A table cell as a float (NaN for anything else)."""
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return math.nan


def _ci_text(rec: Mapping[str, object], value: str, low: str, high: str) -> str:
    return _with_ci(_num(rec[value]), _num(rec[low]), _num(rec[high]))


def _baseline_name(metric: str) -> str:
    return metric_label(metric).removesuffix(" (baseline)")


def _merged_labels(keys: Sequence[tuple[object, ...]]) -> list[str]:
    """Labels of groups that share one answer, merged where two differ in one column only.

    Examples
    --------
    >>> _merged_labels([("maml", "head", "anil"), ("maml", "prototypes", "anil"),
    ...                 ("sup", "source", "anil")])
    ['maml / head, prototypes / anil', 'sup / source / anil']
    """
    merged = [[[str(v)] for v in key] for key in keys]
    i = 0
    while i < len(merged):
        j = i + 1
        while j < len(merged):
            diff = [c for c in range(len(merged[i])) if merged[i][c] != merged[j][c]]
            if len(diff) == 1:
                c = diff[0]
                merged[i][c] += [v for v in merged[j][c] if v not in merged[i][c]]
                del merged[j]
                j = i + 1  # the merged label may now merge with an earlier skipped one
            else:
                j += 1
        i += 1
    return [" / ".join(", ".join(part) for part in key) or "all episodes" for key in merged]


def _sentence(rec: Mapping[str, object], *, markup: bool) -> str:
    best = str(rec["best"])
    if not best:
        return f"{rec['note'] or 'no metric has a correlation here'}."
    name = f"**{metric_label(best)}**" if markup else metric_label(best)
    text = f"{name} is best, r = {_ci_text(rec, 'r', 'ci_low', 'ci_high')}"
    baseline = str(rec.get("baseline") or "")
    if not baseline:
        return text + "."
    base = _baseline_name(baseline)
    if not math.isfinite(_num(rec["baseline_r"])):
        return f"{text}; {base} has no r here ({str(rec['note']).split(': ', 1)[-1]})."
    if rec["beats"]:
        diff = _ci_text(rec, "difference", "difference_ci_low", "difference_ci_high")
        return f"{text}, and beats {base} (r = {_num(rec['baseline_r']):.2f}) by {diff}."
    base_ci = _ci_text(rec, "baseline_r", "baseline_ci_low", "baseline_ci_high")
    if _num(rec["difference"]) > 0:
        return f"{text}, above {base} (r = {base_ci}) but not significantly."
    return f"{text}, but does not beat {base} (r = {base_ci})."


def verdict_sentences(analysis: StudyAnalysis, *, markup: bool = True) -> list[str]:
    """One sentence per group -- the best metric, its Pearson r and CI, and whether it beats
    the free baseline -- groups with the same answer sharing one.

    ``markup`` puts the best metric in ``**bold**`` (the page); without it the sentences are
    plain text (the terminal).
    """
    frame = analysis.verdict
    by = [c for c in analysis.by if c in frame.columns]
    answers: dict[tuple[object, ...], list[tuple[object, ...]]] = {}
    first: dict[tuple[object, ...], Mapping[str, object]] = {}
    for record in frame.to_dict("records"):
        rec = {str(k): v for k, v in record.items()}
        answer = tuple(
            round(v, 9) if isinstance(v, float) and math.isfinite(v) else str(v)
            for k, v in rec.items()
            if k not in by
        )
        answers.setdefault(answer, []).append(tuple(rec[c] for c in by))
        first.setdefault(answer, rec)
    return [
        f"{label}: {_sentence(first[answer], markup=markup)}"
        for answer, keys in answers.items()
        for label in _merged_labels(keys)
    ]


def _count_words(counts: pd.Series, total: int) -> str:
    """``LogME in 6 of 12 groups, SFDA in 2, GBC and LEEP in 1 each``."""
    by_count: dict[int, list[str]] = {}
    for name, count in counts.items():
        by_count.setdefault(int(count), []).append(metric_label(str(name)))
    parts = []
    for i, (count, names) in enumerate(sorted(by_count.items(), key=lambda kv: -kv[0])):
        who = " and ".join([", ".join(names[:-1]), names[-1]] if len(names) > 1 else names)
        each = " each" if len(names) > 1 else ""
        parts.append(
            f"{who} in {count} of {total} groups{each}" if i == 0 else f"{who} in {count}{each}"
        )
    return ", ".join(parts)


def headline(analysis: StudyAnalysis, *, markup: bool = True) -> str:
    """The study in two sentences: which metric is best how often, and whether the best beats
    the free baseline."""
    frame = analysis.verdict
    total = len(frame)
    named = frame[frame["best"].astype(str) != ""]
    bold = (lambda t: f"**{t}**") if markup else (lambda t: t)
    if named.empty:
        return "No metric has a correlation with accuracy in any group."
    counts = named["best"].value_counts(sort=True)
    words = _count_words(counts, total)
    text = f"Best metric per group: {bold(words) if len(counts) == 1 else words}."
    if analysis.baseline is None or analysis.baseline_tests is None:
        return text + " (No free baseline in this study: add centroid_loo to --metrics.)"
    base = _baseline_name(analysis.baseline)
    beaten = int(named["beats"].sum())
    n_comp = analysis.baseline_tests.attrs.get("n_comparisons", len(analysis.baseline_tests))
    test = (
        f"paired bootstrap over episodes, familywise {100 * analysis.alpha:g} % over "
        f"{n_comp} distinct comparisons of a metric with it"
    )
    if beaten == 0:
        verdict = f"No best metric beats the free baseline {base}"
    elif beaten == len(named):
        verdict = f"The best metric beats the free baseline {base} in every group"
    else:
        verdict = f"The best metric beats the free baseline {base} in {beaten} of {total} groups"
    return f"{text} {bold(verdict)} ({test})."


# --------------------------------------------------------------------------------------------
# Sections
# --------------------------------------------------------------------------------------------


def _scope(analysis: StudyAnalysis) -> str:
    config = analysis.config
    suite = config.get("suite_name") or config.get("suite")
    where = f" of {suite}" if suite else ""
    groups = " / ".join(analysis.by) or "all episodes"
    return (
        f"{analysis.n_episodes} episodes{where}, {len(analysis.verdict)} groups ({groups}). "
        f"Each metric scores an episode's support set before adaptation; Pearson r with the "
        f"query {analysis.target} after adaptation, [{100 * analysis.confidence:g} % bootstrap "
        f"CI over episodes]."
    )


def verdict_section(doc: Document, analysis: StudyAnalysis) -> None:
    """The answer: scope, headline, one sentence per group."""
    doc.paragraph(_scope(analysis), css="caption")
    doc.paragraph(headline(analysis), css="lead")
    doc.bullets(verdict_sentences(analysis), css="verdict")


def forest_section(doc: Document, analysis: StudyAnalysis) -> None:
    """Every metric's r with its CI per group, and what the table shows about constant
    metrics."""
    from metaleep.report.plots import forest_plot

    corr = analysis.correlations
    if not (corr["method"] == "pearson").any():
        return
    shown = [m for m in analysis.metrics if m not in analysis.constant_metrics]
    left = [metric_label(m) for m in analysis.constant_metrics]
    caption = (
        "Pearson r of each metric with accuracy and its bootstrap CI, per group; star: the "
        "group's best metric; grey band: the free baseline, which a metric must beat to earn "
        "its cost."
    )
    if left:
        caption += f" Left out: {', '.join(left)} (constant in every group: no r)."
    if shown:
        doc.figure("forest.png", forest_plot(corr, analysis.verdict, metrics=shown), caption)
    notes = list(analysis.findings)
    if analysis.leep_form == "normalised":
        notes.append(
            "LEEP and N-LEEP are normalised (1 + LEEP / log N) because some groups mix "
            "episodes with different numbers of ways."
        )
    doc.bullets(notes)


def accuracy_section(doc: Document, analysis: StudyAnalysis) -> None:
    """The accuracy of each adaptation, and the adaptations that did not converge."""
    from metaleep.analysis.accuracy import UNCONVERGED_FRACTION

    summary = analysis.accuracy
    if summary is None or summary.empty:
        return
    target = analysis.target
    doc.heading("Accuracy of each adaptation")
    doc.paragraph(
        f"Query {target} per backbone and adaptation (each episode once, whatever the dummy "
        "labels): mean, standard deviation over episodes, share of episodes at 100 %; the "
        "support loss the adaptation ended at (a uniform guess has log N); the share of "
        f"episodes where it stayed above {UNCONVERGED_FRACTION:g} x log N (unconverged); the "
        "spread of the logits it started from (0 for a zero head); its settings."
    )
    shown = summary.copy()
    for col in ("mean", "std", "share_100", "support_loss", "unconverged", "start_logit_std"):
        shown[col] = [_fmt(float(v), 3) for v in summary[col]]
    shown = shown.rename(
        columns={
            "mean": f"mean {target}",
            "share_100": "share at 100 %",
            "support_loss": "support loss",
            "unconverged": "share unconverged",
            "start_logit_std": "start logit spread",
        }
    )
    doc.table(shown)
    doc.bullets(list(analysis.accuracy_notes))


def details_heading(doc: Document, analysis: StudyAnalysis) -> None:
    """The heading of the folded details."""
    doc.heading("Details")
    doc.paragraph("Each part opens on a click; every table is also a CSV beside this report.")


def how_to_read_section(doc: Document, analysis: StudyAnalysis) -> None:
    """What the numbers mean, folded."""
    with doc.folded("How to read these numbers"):
        doc.bullets(_how_to_read(analysis))


def correlation_tables_section(doc: Document, analysis: StudyAnalysis) -> None:
    """The correlation tables: Pearson, the rank correlations, the full table."""
    corr = analysis.correlations
    methods = list(dict.fromkeys(corr["method"]))
    pct = f"{100 * analysis.confidence:g} %"
    with doc.folded("Correlation tables (Pearson r, Spearman ρ, Kendall τ-b, weighted τ)"):
        if "pearson" in methods:
            doc.table(
                format_correlation_table(corr, methods=["pearson"]),
                f"Pearson r [{pct} bootstrap CI] per group and metric (correlations.csv).",
            )
        others = [m for m in methods if m != "pearson"]
        if others:
            doc.table(
                format_correlation_table(corr, methods=others),
                "Rank correlations: " + ", ".join(METHOD_NAMES.get(m, m) for m in others) + ".",
            )
    with doc.folded("Full correlation table (n, p-values, notes)"):
        doc.table(corr)


def baseline_section(doc: Document, analysis: StudyAnalysis) -> None:
    """Every metric against the free baseline, familywise."""
    tests = analysis.baseline_tests
    if tests is None or tests.empty or analysis.baseline is None:
        return
    base = _baseline_name(analysis.baseline)
    n_comp = tests.attrs.get("n_comparisons", len(tests))
    with doc.folded(f"Each metric against the free baseline {base}"):
        doc.paragraph(
            f"Paired bootstrap on the same resampled episodes: difference of signed Pearson r "
            f"(metric minus {base}) with its interval, the one-sided p-value of this comparison "
            "alone, and the familywise p-value: a single-step studentized max-T over all "
            f"{n_comp} distinct comparisons of a metric with {base} in this study (Romano & "
            f"Wolf 2005). 'beats it' means familywise p < {analysis.alpha:g}, so the chance "
            "that this table names any metric that does not truly beat the baseline is at most "
            f"{100 * analysis.alpha:g} % -- the best metric of a group, picked after looking, "
            "included (baseline_tests.csv)."
        )
        doc.table(format_baseline_tests(tests))


def leep_section(doc: Document, analysis: StudyAnalysis) -> None:
    """LEEP against every other metric, paired."""
    comparisons = analysis.comparisons
    if comparisons is None or comparisons.empty:
        return
    n_boot = comparisons.attrs.get("n_boot", analysis.n_boot)
    with doc.folded("LEEP against the other metrics"):
        doc.paragraph(
            "Paired bootstrap on the same episodes: difference of signed Pearson r (LEEP minus "
            "the other metric), its interval, and the one-sided p-value for 'LEEP correlates "
            "better' (one comparison at a time: no multiplicity correction). With "
            f"{n_boot} resamples the smallest attainable p-value is 1/{n_boot + 1} "
            f"≈ {1 / (n_boot + 1):.2g} (comparisons.csv)."
        )
        doc.table(format_comparison_table(comparisons))


_GROUP_WORDS = {
    "ways": "number of ways",
    "shots": "number of shots",
    "within_alphabet": "within-alphabet vs mixed-alphabet episodes",
}


def per_group_section(doc: Document, analysis: StudyAnalysis) -> None:
    """Pearson r with one more grouping column."""
    if not analysis.per_group:
        return
    words = [_GROUP_WORDS.get(col, col) for col in analysis.per_group]
    with doc.folded("Results per " + ", per ".join(words)):
        for col, table in analysis.per_group.items():
            doc.table(
                format_correlation_table(table),
                f"Pearson r [CI] by {_GROUP_WORDS.get(col, col)} (correlations_by_{col}.csv).",
            )


def selection_section(doc: Document, analysis: StudyAnalysis) -> None:
    """Source-model selection, when several backbones ran."""
    from metaleep.report.plots import selection_plot

    selection = analysis.selection
    if selection is None or selection.empty:
        if analysis.selection_note:
            with doc.folded("Source-model selection"):
                doc.paragraph(f"Not computed: {analysis.selection_note}")
        return
    with doc.folded("Source-model selection: does a metric pick the backbone that adapts best?"):
        doc.paragraph(
            "On each episode the backbones are ranked by each metric and by accuracy. Top-1 hit "
            "rate: how often the metric's top backbone is a best one by accuracy (ties in "
            "accuracy all count as best; ties in the metric are split evenly). Weighted τ: "
            "agreement of the two rankings, weighted towards the top. Regret: accuracy lost by "
            "taking the metric's pick instead of the best. Chance: a uniformly random pick. "
            "Static prior (row static_prior): the backbone with the best mean accuracy on the "
            "other episodes (leave-one-out), a pick that reads no metric; a metric that does not "
            "beat it adds nothing to knowing which backbone is best on average (selection.csv)."
        )
        doc.table(format_selection_table(selection))
        doc.figure(
            "selection.png",
            selection_plot(selection),
            "Top-1 hit rate and regret per metric with bootstrap CI; dashed: chance.",
        )


def scatter_section(doc: Document, analysis: StudyAnalysis, *, max_rows: int = 24) -> None:
    """Each group's best metric against accuracy on the page; every metric per backbone in
    files beside it."""
    from metaleep.report.plots import best_metric_scatter, scatter_grid

    data, target = analysis.table, analysis.target
    shown = [
        m for m in analysis.metrics if m in data.columns and m not in analysis.constant_metrics
    ]
    if not shown:
        return
    split = "backbone" if "backbone" in analysis.by else None
    rows = [c for c in analysis.by if c != split]
    frames = [(str(k), f) for k, f in data.groupby(split, sort=True)] if split else [("all", data)]
    files: list[str] = []
    left: list[str] = []
    budget = max_rows
    for i, (name, frame) in enumerate(frames):
        configs = list(frame.groupby(rows, sort=True, dropna=False)) if rows else [((), frame)]
        if budget <= 0:
            left.append(f"{name}: {len(configs)} configurations")
            continue
        keep = configs[:budget]
        if len(keep) < len(configs):
            left.append(f"{name}: {len(configs) - len(keep)} configurations")
        budget -= len(keep)
        corr = analysis.correlations
        fig = scatter_grid(
            pd.concat([f for _, f in keep]) if rows else frame,
            rows=rows,
            metrics=shown,
            target=target,
            correlations=corr[corr[split].astype(str) == name] if split else corr,
            title=f"Metrics vs {metric_label(target)}: "
            + (f"backbone {name}" if split else "all episodes")
            + (f" (rows: {' / '.join(rows)})" if rows else ""),
        )
        file = f"scatter_{i:02d}_{slug(name)}.png"
        doc.attach(file, fig, f"Each metric against {target}, {name}.")
        files.append(file)
    with doc.folded("Scatter plots: each group's best metric against accuracy"):
        best = analysis.verdict
        if (best["best"].astype(str) != "").any():
            doc.figure(
                "best_scatter.png",
                best_metric_scatter(data, best, target=target, correlations=analysis.correlations),
                f"Each group's best metric (x) against query {target} (y), one point per episode, "
                "with the least-squares line.",
            )
        doc.paragraph(
            "Every metric against accuracy, one row per configuration, in files beside this "
            f"report: {', '.join(files)}."
            + (f" Not plotted (max_scatter_groups): {'; '.join(left)}." if left else "")
        )


def timings_section(doc: Document, analysis: StudyAnalysis) -> None:
    """Mean seconds per episode."""
    if analysis.timings is None:
        return
    with doc.folded("Timings"):
        doc.table(analysis.timings, "Mean seconds per episode.")


def _plain(value: object) -> str:
    """A configuration value in words: lists joined, mappings as ``key=value``."""
    if value is None:
        return "—"
    if isinstance(value, Mapping):
        return "; ".join(f"{k}={_plain(v)}" for k, v in value.items()) or "—"
    if isinstance(value, list | tuple):
        return ", ".join(_plain(v) for v in value) or "—"
    return str(value)


def settings_table(config: Mapping[str, object]) -> pd.DataFrame:
    """The configuration as a table a reader scans: one setting per row, values in words
    (lists joined, adaptation settings as ``steps=100, lr=auto, accelerated``), the
    backbones' details left to their own table.

    Examples
    --------
    >>> settings_table({"suite": "glyphs-5w5s", "metrics": ["leep", "nce"], "episodes": None,
    ...                 "extra": {}}).values.tolist()
    [['suite', 'glyphs-5w5s'], ['metrics', 'leep, nce'], ['episodes', 'all']]
    """
    from metaleep.analysis.accuracy import settings_text

    words = {"episodes": "all", "temperature": "default", "data": "the suite's data"}
    rows = []
    for key, value in config.items():
        if key in ("backbone_info", "backbone_fingerprints", *_DATA_KEYS) or value in ({}, []):
            continue
        if key == "adaptation_settings" and isinstance(value, Mapping):
            for backbone, entries in value.items():
                if isinstance(entries, Mapping):
                    text = "; ".join(
                        f"{name} ({settings_text(item)})" if settings_text(item) else str(name)
                        for name, item in entries.items()
                    )
                    rows.append((f"adaptations of {backbone}", text))
            continue
        rows.append((str(key), words.get(key, "—") if value is None else _plain(value)))
    return pd.DataFrame(rows, columns=["setting", "value"])


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
        inner = item.get("inner")
        rows.append(
            {
                "backbone": name,
                "algorithm": item.get("algorithm"),
                "from": item.get("origin"),
                "head": item.get("head"),
                "inner loop": _plain(inner) if inner else "—",
                "setting": setting,
                "input transform": item.get("transform"),
                "fingerprint": item.get("fingerprint"),
            }
        )
    return pd.DataFrame(rows) if rows else None


def configuration_section(doc: Document, analysis: StudyAnalysis) -> None:
    """How the study was made: the backbones and the settings."""
    config = analysis.config
    doc.heading("Configuration")
    backbones = _backbone_frame(config)
    if backbones is not None:
        doc.table(backbones, "Backbones.")
    settings = settings_table(config)
    analysis_rows = pd.DataFrame(
        [
            ("grouping", " / ".join(analysis.by) or "none"),
            ("LEEP", "normalised, 1 + LEEP / log N" if analysis.leep_form == "normalised"
             else "raw"),
            ("bootstrap", f"{analysis.n_boot} resamples of episodes, seed {analysis.seed}, "
             f"{100 * analysis.confidence:g} % percentile intervals"),
            ("baseline tests", f"familywise {100 * analysis.alpha:g} % against "
             f"{analysis.baseline}" if analysis.baseline else "no baseline"),
        ],
        columns=["setting", "value"],
    )  # fmt: skip
    doc.table(pd.concat([settings, analysis_rows], ignore_index=True), "Settings.")


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


def _how_to_read(analysis: StudyAnalysis) -> list[str]:
    pct = f"{100 * analysis.confidence:g} %"
    target = analysis.target
    normalised = analysis.leep_form == "normalised"
    items = [
        "Each row of the study table is one episode adapted by one backbone; the scores are "
        f"computed on the support set before adaptation and correlated with the {target} "
        "on the query set after adaptation. A positive correlation means the score ranks "
        "episodes the way the adaptation does.",
        f"Intervals are {pct} percentile bootstrap intervals over episodes ({analysis.n_boot} "
        f"resamples of the episodes with replacement, seed {analysis.seed}). Pearson r is the "
        "headline number (the LEEP paper's); Spearman ρ and Kendall τ-b are rank correlations, "
        "weighted τ (Vigna) stresses the top of the ranking and has no p-value.",
        "The free baseline centroid LOO is the support set's leave-one-out nearest-centroid "
        "accuracy: it costs nothing beyond the features, so a metric earns its cost only "
        "where it correlates better.",
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
                if analysis.mixed_ways
                else "."
            )
            + " Within one N it is an increasing affine map of LEEP, so correlations computed "
            "within one N are the same as for raw LEEP."
        )
    elif analysis.mixed_ways:
        items.append(
            "Caution: this report uses raw LEEP although some groups mix episodes with "
            "different numbers of ways, so part of its correlation there comes from the number "
            "of ways alone. The normalised form 1 + LEEP / log N (leep='auto' or 'normalised') "
            "removes that; the per-ways results are unaffected."
        )
    else:
        items.append(
            "This report uses raw LEEP: every group holds episodes with one number of ways, "
            "where raw and normalised LEEP (1 + LEEP / log N) give the same correlations."
        )
    one_shot = "shots" in analysis.table.columns and bool((analysis.table["shots"] == 1).any())
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
# The report
# --------------------------------------------------------------------------------------------


def data_section(doc: Document, analysis: StudyAnalysis) -> None:
    """What was done to the data (files converted, skipped, classes left out) and the backbones
    without a label distribution, in words (:func:`data_notes`)."""
    notes = data_notes(analysis.config)
    if notes:
        doc.heading("Data")
        doc.bullets(notes)


SECTIONS: tuple[Section, ...] = (
    verdict_section,
    forest_section,
    accuracy_section,
    data_section,
    details_heading,
    how_to_read_section,
    correlation_tables_section,
    baseline_section,
    leep_section,
    per_group_section,
    selection_section,
    scatter_section,
    timings_section,
    configuration_section,
)
"""The page, top to bottom: the answer, the evidence, the details (folded), the settings."""


def write_report(
    analysis: StudyAnalysis,
    out_dir: str | Path,
    *,
    title: str = "metaleep meta-transfer study",
    sections: Sequence[Section] = SECTIONS,
) -> Path:
    """Write ``report.html`` (self-contained), ``report.md`` and its PNG figures to ``out_dir``.

    Parameters
    ----------
    analysis:
        What to show (:func:`~metaleep.analysis.study.analyse_study`); nothing is computed
        here. Its tables go to CSV files with :meth:`StudyAnalysis.write`.
    out_dir:
        Directory to write into (created).
    title:
        Page title.
    sections:
        The page's parts in order (default :data:`SECTIONS`).

    Returns
    -------
    Path
        The path of ``report.html``.

    Examples
    --------
    >>> import tempfile, numpy as np, pandas as pd
    >>> from metaleep.analysis.study import analyse_study
    >>> rng = np.random.default_rng(0)
    >>> acc = rng.uniform(0.3, 0.9, size=30)
    >>> t = pd.DataFrame({"episode": range(30), "backbone": "conv4", "dummy": "head",
    ...                   "adaptation": "maml", "ways": 5, "shots": 5, "accuracy": acc,
    ...                   "leep": np.log(acc) + 0.1 * rng.normal(size=30)})
    >>> path = write_report(analyse_study(t, n_boot=50), tempfile.mkdtemp())
    >>> path.name, "data:image/png;base64," in path.read_text()
    ('report.html', True)
    """
    if not isinstance(analysis, StudyAnalysis):
        raise TypeError(
            f"`analysis` must be a StudyAnalysis (metaleep.analysis.study.analyse_study); "
            f"got {type(analysis).__name__!r}."
        )
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    doc = Document(title=title)
    for section in sections:
        section(doc, analysis)
    atomic_write_bytes(out / "report.html", doc.render_html().encode("utf-8"))
    atomic_write_bytes(out / "report.md", doc.render_md().encode("utf-8"))
    for name, data_png in doc.figures.items():
        atomic_write_bytes(out / name, data_png)
    return out / "report.html"
