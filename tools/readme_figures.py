#!/usr/bin/env python
"""Regenerate the README's measured tables from run outputs.

The README holds blocks between marker comments::

    <!-- figures:default-run -->  ...  <!-- /figures:default-run -->
    <!-- figures:grid -->         ...  <!-- /figures:grid -->

``default-run`` is written from the study folder of ``make run`` (``runs/default``:
``correlations.csv``, ``study.json``), ``grid`` from the folder of ``metaleep grid``
(``runs/grid``: ``wins_by_regime.csv``, ``counts.csv``, ``added.csv``, ``selection.csv``,
``analysis.json``, ``grid.json``): the headline by regime (1-shot and >=2-shot apart) in words,
over distinct comparisons, with the training seeds, Spearman and Kendall beside Pearson, what a
metric adds and source selection against the static prior. Each block says which command
produced it, the fingerprints of the backbones it used and at which commit the script ran. A
block whose run folder is missing is left as it is (with a warning). ``--check`` writes nothing
and exits 1 when the README differs from what the runs give (for CI).

Usage::

    make run && metaleep grid && python tools/readme_figures.py
    python tools/readme_figures.py --default-run runs/default --grid runs/grid --check
"""

from __future__ import annotations

import argparse
import json
import math
import re
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

DEFAULT_CONFIGURATION = ("supervised", "source", "retrain_head")
"""(backbone, dummy, adaptation) of the default run that the README's table shows."""


class FiguresError(ValueError):
    """A run folder or the README is not as the script expects."""


def _label(metric: str) -> str:
    from metaleep.report.plots import metric_label  # the names the report and plots use

    return metric_label(metric)


def _ci(r: float, low: float, high: float) -> str:
    if not math.isfinite(r):
        return "n/a"
    if not (math.isfinite(low) and math.isfinite(high)):
        return f"{r:.2f}"
    return f"{r:.2f} [{low:.2f}, {high:.2f}]"


def commit(repo: Path) -> str:
    """Short hash of ``repo``'s HEAD (``+dirty`` with uncommitted changes); ``unknown``
    outside a git checkout."""
    try:
        head = subprocess.run(
            ["git", "-C", str(repo), "rev-parse", "--short=10", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("+dirty" if dirty else "")


def _read_csv(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise FiguresError(f"`{path.name}` must exist in {str(path.parent)!r}; got no such file.")
    return pd.read_csv(path, keep_default_na=True)


def _fingerprints(prints: dict[str, str]) -> str:
    return ", ".join(f"{name} `{value}`" for name, value in sorted(prints.items()))


def default_run_block(
    run_dir: Path,
    *,
    configuration: Sequence[str] = DEFAULT_CONFIGURATION,
    at_commit: str = "unknown",
) -> str:
    """The default run's table: Pearson r [95 % CI] of each metric for ``configuration``."""
    corr = _read_csv(run_dir / "correlations.csv")
    backbone, dummy, adaptation = configuration
    rows = corr[
        (corr["backbone"] == backbone)
        & (corr["dummy"] == dummy)
        & (corr["adaptation"] == adaptation)
        & (corr["method"] == "pearson")
    ]
    if rows.empty:
        raise FiguresError(
            f"`correlations.csv` must have Pearson rows of {backbone}/{dummy}/{adaptation}; "
            f"got none in {str(run_dir)!r}."
        )
    metrics = rows["metric"].tolist()
    cells = []
    for rec in rows.itertuples(index=False):
        text = _ci(float(rec.r), float(rec.ci_low), float(rec.ci_high))
        note = str(rec.note) if isinstance(rec.note, str) else ""
        if text == "n/a" and "constant" in note:
            text = "n/a (constant)"
        cells.append(text)
    episodes = int(rows["n_episodes"].max())
    table = ["| metric | Pearson r [95 % CI] |", "|---|---|"] + [
        f"| {_label(m.removesuffix('_norm'))} | {cell} |"
        for m, cell in zip(metrics, cells, strict=True)
    ]
    study = run_dir / "study.json"
    prints = {}
    if study.is_file():
        stored = json.loads(study.read_text())
        prints = stored.get("config", stored).get("backbone_fingerprints", {})
    stamp = f"backbones {_fingerprints(prints)}; " if prints else ""
    source = (
        f"*{backbone} / {dummy} / {adaptation}, {episodes} episodes; {stamp}from `{run_dir}` "
        f"(`make run`), written by `python tools/readme_figures.py` at commit {at_commit}.*"
    )
    return "\n".join([*table, "", source])


def _regime_words(regime: str) -> str:
    return {"1-shot": "At 1 shot", ">=2-shot": "At 2 or more shots"}.get(regime, regime)


def _selection_sentence(selection: pd.DataFrame, leader: str) -> str:
    """LEEP's (and the leader's) source selection beside the static prior's, native dummies,
    and the metrics whose pick hardly varies (a static prior in disguise)."""
    native = selection[selection["dummy"] == "native"]
    if native.empty:
        return ""
    means = native.groupby("metric")[["hit_rate", "tau", "top_choice_share"]].mean()
    constant = native.groupby("metric")["constant_choice"].mean()
    parts = []
    for metric in dict.fromkeys([leader, "leep", "static_prior"]):
        if metric in means.index:
            hit, tau = means.loc[metric, "hit_rate"], means.loc[metric, "tau"]
            parts.append(f"{_label(metric)} hit rate {hit:.2f} (weighted tau {tau:.2f})")
    text = (
        "Source selection, each source with its own dummy labels (mean over targets, "
        "regimes, seeds and transfers): " + "; ".join(parts) + "."
    )
    fixed = [
        f"{_label(str(m))} picks its usual source on {100 * share:.1f} % of episodes (the "
        f"same on every episode in {100 * constant[m]:.0f} % of the groups)"
        for m, share in means["top_choice_share"].sort_values(ascending=False).items()
        if share >= 0.95 and m != "static_prior"
    ]
    if fixed:
        text += " A static prior in disguise: " + "; ".join(fixed) + "."
    return text


def _added_sentence(added: pd.DataFrame, regime: str, metrics: Sequence[str]) -> str:
    part = added[added["regime"] == regime]
    if part.empty:
        return ""
    mean = part.groupby("metric")[["added_over_controls", "added_over_baselines"]].mean()
    shown = [m for m in metrics if m in mean.index and mean.loc[m].notna().all()]
    words = ", ".join(
        f"{_label(m)} {mean.loc[m, 'added_over_controls']:+.3f} / "
        f"{mean.loc[m, 'added_over_baselines']:+.3f}"
        for m in shown
    )
    return (
        "R² of accuracy added over the design (cell, source x transfer, source x seed) / over "
        f"the design and the free baselines, mean over targets: {words}."
    )


def grid_block(grid_dir: Path, *, at_commit: str = "unknown") -> str:
    """The grid's headline by regime, in words and tables, and how it was made."""
    from metaleep.analysis.grid import regime_findings, wins_words

    by_regime = _read_csv(grid_dir / "wins_by_regime.csv")
    counts = _read_csv(grid_dir / "counts.csv")
    meta_path = grid_dir / "analysis.json"
    meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
    info_path = grid_dir / "grid.json"
    info = json.loads(info_path.read_text()) if info_path.is_file() else {}
    alpha = float(meta.get("alpha", 0.05))
    findings = regime_findings(by_regime, counts, alpha=alpha, label=_label)
    added = pd.read_csv(grid_dir / "added.csv") if (grid_dir / "added.csv").is_file() else None
    text: list[str] = []
    for regime, lines in findings.items():
        part = by_regime[by_regime["regime"] == regime].reset_index(drop=True)
        words = wins_words(part)
        words["metric"] = [_label(m) for m in words["metric"]]
        header = "| " + " | ".join(words.columns) + " |"
        rows = [
            "| " + " | ".join(str(v) for v in rec) + " |" for rec in words.itertuples(index=False)
        ]
        text += [f"**{_regime_words(regime)}.** " + " ".join(lines), ""]
        text += [header, "|" + "---|" * len(words.columns), *rows, ""]
        if added is not None:
            defined = part[part["undefined"] < part["n_settings"]]["metric"].tolist()
            sentence = _added_sentence(added, regime, defined)
            if sentence:
                text += [sentence, ""]
    selection_path = grid_dir / "selection.csv"
    if selection_path.is_file():
        leader = str(by_regime.sort_values("wins", ascending=False)["metric"].iloc[0])
        sentence = _selection_sentence(pd.read_csv(selection_path), leader)
        if sentence:
            text += [sentence, ""]
    config = info.get("config", {})
    targets = [t.get("name", t.get("suite")) for t in config.get("targets", [])]
    seconds = info.get("seconds")
    total = counts[counts["regime"] == "all"]
    n = int(total["n_settings"].iloc[0]) if len(total) else int(counts["n_settings"].sum())
    what = f"{n} settings"
    if targets:
        what += f" over {len(targets)} targets ({', '.join(targets)})"
    seeds = meta.get("seeds") or config.get("seeds")
    if seeds:
        what += f", training seeds {', '.join(str(s) for s in seeds)}"
    if meta.get("n_boot"):
        what += f", B = {int(meta['n_boot']):,} bootstrap replicates"
    if seconds:
        what += f"; wall time {float(seconds) / 60:.1f} min"
    prints = info.get("backbone_fingerprints", {})
    if prints:
        what += "; backbones " + "; ".join(
            f"{seed}: {_fingerprints(p)}" for seed, p in sorted(prints.items())
        )
    command = str(info.get("command", "metaleep grid"))
    text.append(
        f"*{what}; from `{grid_dir}` (`{command}`), written by "
        f"`python tools/readme_figures.py` at commit {at_commit}.*"
    )
    return "\n".join(text)


def replace_block(text: str, name: str, block: str) -> str:
    """``text`` with the content between ``<!-- figures:NAME -->`` and its closing marker
    replaced by ``block``."""
    start, end = f"<!-- figures:{name} -->", f"<!-- /figures:{name} -->"
    pattern = re.compile(re.escape(start) + r"\n.*?" + re.escape(end), re.S)
    if len(pattern.findall(text)) != 1:
        raise FiguresError(
            f"`README` must hold one {start} ... {end} block; got {len(pattern.findall(text))}."
        )
    return pattern.sub(lambda _: f"{start}\n{block}\n{end}", text)


def _without_commit(text: str) -> str:
    return re.sub(r"at commit \S+?\.\*", "at commit .*", text)


def main(argv: Sequence[str] | None = None) -> int:
    """Command line (see the module docstring); returns the exit status."""
    repo = Path(__file__).resolve().parents[1]
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readme", type=Path, default=repo / "README.md")
    parser.add_argument("--default-run", type=Path, default=Path("runs/default"))
    parser.add_argument("--grid", type=Path, default=Path("runs/grid"))
    parser.add_argument("--commit", default=None, help="Commit to name (default: git HEAD).")
    parser.add_argument(
        "--check", action="store_true", help="Exit 1 when the README is not up to date."
    )
    args = parser.parse_args(argv)
    at = args.commit or commit(repo)
    readme = args.readme.read_text(encoding="utf-8")
    updated = readme
    try:
        for name, folder, build in (
            ("default-run", args.default_run, default_run_block),
            ("grid", args.grid, grid_block),
        ):
            if not folder.is_dir():
                print(
                    f"readme_figures: {folder} not found; {name} block left as it is",
                    file=sys.stderr,
                )
                continue
            updated = replace_block(updated, name, build(folder, at_commit=at))
    except FiguresError as error:
        print(f"readme_figures: {error}", file=sys.stderr)
        return 2
    if args.check:
        # the commit a block names changes with every commit: compare the rest
        if _without_commit(updated) != _without_commit(readme):
            print(f"readme_figures: {args.readme} is not up to date with the runs", file=sys.stderr)
            return 1
        return 0
    if updated != readme:
        args.readme.write_text(updated, encoding="utf-8")
        print(f"readme_figures: updated {args.readme}")
    else:
        print(f"readme_figures: {args.readme} already up to date")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
