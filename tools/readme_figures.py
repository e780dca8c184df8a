#!/usr/bin/env python
"""Regenerate the README's measured tables from run outputs.

The README holds blocks between marker comments::

    <!-- figures:default-run -->  ...  <!-- /figures:default-run -->
    <!-- figures:grid -->         ...  <!-- /figures:grid -->

``default-run`` is written from the study folder of ``make run`` (``runs/default``:
``correlations.csv``), ``grid`` from the folder of ``metaleep grid`` (``runs/grid``:
``wins.csv``, ``settings.csv``, ``grid.json``). Each block says which command produced it and
at which commit the script ran. A block whose run folder is missing is left as it is (with a
warning). ``--check`` writes nothing and exits 1 when the README differs from what the runs
give (for CI).

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

import numpy as np
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
    source = (
        f"*{backbone} / {dummy} / {adaptation}, {episodes} episodes; from `{run_dir}` "
        f"(`make run`), written by `python tools/readme_figures.py` at commit {at_commit}.*"
    )
    return "\n".join([*table, "", source])


def grid_block(grid_dir: Path, *, at_commit: str = "unknown") -> str:
    """The grid's wins table, the LEEP > NCE > H-score count and the wall time."""
    wins = _read_csv(grid_dir / "wins.csv")
    settings = _read_csv(grid_dir / "settings.csv")
    info_path = grid_dir / "grid.json"
    info = json.loads(info_path.read_text()) if info_path.is_file() else {}
    n = int(wins["n_settings"].max()) if len(wins) else 0
    lines = [
        "| metric | best in (point estimate) | significantly best | wins over resamples [95 %] "
        "| tops the grid |",
        "|---|---|---|---|---|",
    ]
    for rec in wins.itertuples(index=False):
        lines.append(
            f"| {_label(str(rec.metric))} | {rec.wins} of {n} | {rec.significant_wins} of {n} | "
            f"{rec.boot_mean:.1f} [{rec.boot_low:.0f}, {rec.boot_high:.0f}] | "
            f"{100 * rec.top_share:.0f} % |"
        )
    text = ["\n".join(lines), ""]
    if {"target", "winner"} <= set(settings.columns):
        metrics = wins["metric"].tolist()
        rows = [
            "| target | settings | " + " | ".join(_label(m) for m in metrics) + " |",
            "|---|---|" + "---|" * len(metrics),
        ]
        for target, part in settings.groupby("target", sort=False):
            won = part["winner"].fillna("").astype(str)
            counts = " | ".join(str(int((won == m).sum())) for m in metrics)
            rows.append(f"| {target} | {len(part)} | {counts} |")
        text += ["Wins per target (point estimate):", "", "\n".join(rows), ""]
    trio = [m for m in ("leep", "nce", "h_score") if f"r_{m}" in settings.columns]
    if len(trio) == 3:
        raw = settings[[f"r_{m}" for m in trio]].astype(float).to_numpy()
        defined = np.isfinite(raw).all(axis=1)
        r = np.where(np.isfinite(raw), raw, -2.0)  # no r ranks lowest
        ordered = (r[:, 0] > r[:, 1]) & (r[:, 1] > r[:, 2])
        mean = {m: settings[f"r_{m}"].astype(float).mean(skipna=True) for m in trio}
        shown = ", ".join(
            f"{_label(m)} {mean[m]:.2f}" if math.isfinite(mean[m]) else f"{_label(m)} n/a"
            for m in trio
        )
        text.append(
            f"The paper's ordering LEEP > NCE > H-score holds in {int(ordered.sum())} of "
            f"{len(settings)} settings counting a metric without r (constant) as lowest, and in "
            f"{int((ordered & defined).sum())} of the {int(defined.sum())} settings where all "
            f"three have an r; mean r over settings: {shown}."
        )
    config = info.get("config", {})
    targets = [t.get("name", t.get("suite")) for t in config.get("targets", [])]
    seconds = info.get("seconds")
    what = f"{len(settings)} settings"
    if targets:
        what += f" over {len(targets)} targets ({', '.join(targets)})"
    if seconds is not None:
        what += f"; wall time {float(seconds) / 60:.1f} min"
    command = str(info.get("command", "metaleep grid"))
    text.append("")
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
