"""The reliability attack cases of issue 20, run through the CLI, counted: files of the user's
lost, wrong results returned, code run from a file.

Each case builds what a user (or an attacker who edits a file) has, runs ``python -m metaleep``
commands in subprocesses, and counts what went wrong:

- **lost**: files that were the user's before the commands and are gone or changed after;
- **wrong**: rows of a returned table that are not what a fresh, correct run gives (another
  value in any column but the timings: resumed from another suite, mixed in, changed with the
  chunk size; or missing);
- **code run**: marker files written by code that a file named (an export's factory).

The metaleep under test is the one ``PYTHONPATH`` gives the subprocesses (``--metaleep DIR``,
default: this checkout), so the same script measures an older checkout (the "before" column of
the README's table). It never points ``--out`` at ``/`` or the home directory.

    python tools/reliability_cases.py                      # this checkout
    python tools/reliability_cases.py --metaleep /tmp/old  # another one
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import pickle
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]

MODEL = textwrap.dedent(
    """
    import torch
    from torch import nn

    def classifier():
        torch.manual_seed(3)
        return nn.Sequential(
            nn.Conv2d(1, 4, 3, stride=2), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
            nn.Linear(4, 10),
        )
    """
)

EVIL = textwrap.dedent(
    """
    from pathlib import Path
    Path({marker!r}).write_text("ran")

    def classifier():
        Path({marker!r}).write_text("ran")
        raise SystemExit(0)
    """
)


class Runner:
    """``python -m metaleep`` with the metaleep under test, in a scratch folder."""

    def __init__(self, metaleep: Path, scratch: Path) -> None:
        self.env = {
            **os.environ,
            "PYTHONPATH": str(metaleep),
            "METALEEP_CACHE_DIR": os.environ.get("METALEEP_CACHE_DIR", str(scratch / "cache")),
        }
        self.scratch = scratch

    def __call__(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "metaleep", *args],
            env=self.env,
            cwd=self.scratch,
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            timeout=1800,
        )


def _snapshot(root: Path) -> dict[str, str]:
    found = {}
    for path in sorted(root.rglob("*")):
        if path.is_symlink():
            found[str(path)] = "-> " + os.readlink(path)
        elif path.is_file():
            found[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found


def _lost(before: dict[str, str], root: Path) -> int:
    after = _snapshot(root)
    return sum(after.get(path) != digest for path, digest in before.items())


_KEYS = ("episode", "backbone", "dummy", "adaptation")


def _values(path: Path) -> pd.DataFrame:
    table = pd.read_csv(path)
    return table.drop(columns=[c for c in table.columns if c.startswith("seconds_")])


def _wrong(got: Path, expected: Path) -> int:
    """Rows of the table ``got`` that are not rows of ``expected``: another value, or missing
    (a row of ``expected`` absent from ``got``). 0 when nothing was returned."""
    if not got.is_file():
        return 0  # refused: nothing returned, nothing wrong
    a, b = _values(got), _values(expected)
    keys = [k for k in _KEYS if k in a.columns and k in b.columns]
    merged = b.merge(a, on=keys, how="left", suffixes=("", "_got"), indicator=True)
    missing = merged["_merge"] == "left_only"
    differ = pd.Series(False, index=merged.index)
    for column in b.columns:
        if column in keys or f"{column}_got" not in merged.columns:
            continue
        x, y = merged[column], merged[f"{column}_got"]
        differ |= ~((x == y) | (x.isna() & y.isna()))
    extra = len(a) - int((~missing).sum())
    return int((missing | differ).sum()) + max(extra, 0)


def _study(run: Runner, out: Path, backbone: str, *extra: str) -> subprocess.CompletedProcess[str]:
    return run(
        "run", "--backbones", backbone, "--adaptations", "prototype,retrain_head",
        "--metrics", "leep,nce,h_score,logme,transrate,sfda", "--n-boot", "20",
        "--out", str(out), "--no-progress", *extra,
    )  # fmt: skip


def _score(run: Runner, backbone: str, out: Path) -> subprocess.CompletedProcess[str]:
    return run(
        "score", "--suite", "glyphs-smoke", "--episodes", "2", "--metrics", "nce",
        "--backbones", backbone, "--out", str(out), "--no-progress",
    )  # fmt: skip


def _sample(run: Runner, path: Path, seed: int) -> None:
    done = run(
        "episodes", "sample", "--data", "glyphs", "--ways", "5", "--shots", "1", "--queries", "3",
        "--episodes", "8", "--seed", str(seed), "--name", "my", "--out", str(path),
    )  # fmt: skip
    if done.returncode:
        raise SystemExit(done.stderr)


# ----------------------------------------------------------------------------- the cases

Case = Callable[[Runner, Path, dict[str, str]], dict[str, int]]


def user_folder_overwrite_twice(run: Runner, work: Path, tiny: dict[str, str]) -> dict[str, int]:
    """A project folder (notes, figures, a draft, a link to another disk) as --out: run with
    --overwrite and seed 0, then --overwrite and seed 1."""
    out = work / "project"
    (out / "paper").mkdir(parents=True)
    (out / "notes.txt").write_text("notes")
    (out / "figure1.png").write_bytes(b"\x89PNG mine")
    (out / "scatter_01_leep.png").write_bytes(b"\x89PNG mine too")
    (out / "paper" / "draft.tex").write_text("draft")
    (work / "disk2").mkdir()
    (work / "disk2" / "big.dat").write_text("data")
    (out / "data-link").symlink_to(work / "disk2")
    before = _snapshot(work)
    for seed in ("0", "1"):
        _study(run, out, tiny["supervised"], "--suite", "glyphs-smoke", "--episodes", "4",
               "--overwrite", "--seed", seed)  # fmt: skip
    return {"lost": _lost(before, work)}


def user_results_folder(run: Runner, work: Path, tiny: dict[str, str]) -> dict[str, int]:
    """The issue's folder: results/2025-experiments/run1/table.csv, results/summary.txt and
    figure1.png in --out, which is run with --overwrite."""
    out = work / "project"
    (out / "results" / "2025-experiments" / "run1").mkdir(parents=True)
    (out / "results" / "2025-experiments" / "run1" / "table.csv").write_text("a\n1\n")
    (out / "results" / "summary.txt").write_text("summary")
    (out / "figure1.png").write_bytes(b"\x89PNG mine")
    before = _snapshot(work)
    _study(run, out, tiny["supervised"], "--suite", "glyphs-smoke", "--episodes", "4",
           "--overwrite")  # fmt: skip
    return {"lost": _lost(before, work)}


def results_link_to_another_disk(run: Runner, work: Path, tiny: dict[str, str]) -> dict[str, int]:
    """--out's results/ a link to another disk holding unrelated files; run with --overwrite."""
    out, disk = work / "study", work / "disk2"
    (disk / "archive").mkdir(parents=True)
    for i in range(3):
        (disk / "archive" / f"old-{i}.csv").write_text(str(i))
    out.mkdir()
    (out / "results").symlink_to(disk)
    before = _snapshot(disk)
    _study(run, out, tiny["supervised"], "--suite", "glyphs-smoke", "--episodes", "4",
           "--overwrite")  # fmt: skip
    return {"lost": _lost(before, disk)}


def regenerated_suite(run: Runner, work: Path, tiny: dict[str, str]) -> dict[str, int]:
    """my.csv sampled with seed 0, studied; re-sampled with seed 1 at the same path; the same
    command again. Wrong: values returned that are not the seed-1 study's."""
    suite = work / "my.csv"
    _sample(run, suite, 0)
    _study(run, work / "study", tiny["supervised"], "--suite", str(suite), "--chunk-size", "2")
    _sample(run, suite, 1)
    (work / "study" / "results.csv").unlink()
    again = _study(run, work / "study", tiny["supervised"], "--suite", str(suite),
                   "--chunk-size", "2")  # fmt: skip
    _study(run, work / "fresh", tiny["supervised"], "--suite", str(suite), "--chunk-size", "2")
    got = work / "study" / "results.csv"
    return {"wrong": _wrong(got, work / "fresh" / "results.csv") if not again.returncode else 0}


def half_run_then_resampled(run: Runner, work: Path, tiny: dict[str, str]) -> dict[str, int]:
    """A study stopped after 2 of 4 chunks; my.csv re-sampled (seed 1); the command again."""
    suite = work / "my.csv"
    _sample(run, suite, 0)
    _study(run, work / "study", tiny["supervised"], "--suite", str(suite), "--chunk-size", "2")
    for name in ("chunk-00002.csv", "chunk-00003.csv"):
        (work / "study" / "results" / name).unlink()
    (work / "study" / "results.csv").unlink()
    _sample(run, suite, 1)
    again = _study(run, work / "study", tiny["supervised"], "--suite", str(suite),
                   "--chunk-size", "2")  # fmt: skip
    _study(run, work / "fresh", tiny["supervised"], "--suite", str(suite), "--chunk-size", "2")
    got = work / "study" / "results.csv"
    return {"wrong": _wrong(got, work / "fresh" / "results.csv") if not again.returncode else 0}


def chunk_rows_removed(run: Runner, work: Path, tiny: dict[str, str]) -> dict[str, int]:
    """A finished study; 5 rows removed from a chunk and its checksum recomputed; rerun."""
    out = work / "study"
    _study(run, out, tiny["supervised"], "--suite", "glyphs-smoke", "--episodes", "8")
    reference = work / "reference.csv"
    reference.write_bytes((out / "results.csv").read_bytes())
    chunk = out / "results" / "chunk-00000.csv"
    content = chunk.read_text().rpartition("# sha256=")[0]
    lines = content.splitlines(keepends=True)
    forged = "".join(lines[:-5])
    chunk.write_text(f"{forged}# sha256={hashlib.sha256(forged.encode()).hexdigest()}\n")
    (out / "results.csv").unlink()
    again = _study(run, out, tiny["supervised"], "--suite", "glyphs-smoke", "--episodes", "8")
    return {"wrong": _wrong(out / "results.csv", reference) if not again.returncode else 0}


def chunk_sizes_on_mixed_ways(run: Runner, work: Path, tiny: dict[str, str]) -> dict[str, int]:
    """40 glyphs-mixed episodes with chunks of 7 and of 200: values that differ."""
    for size in ("7", "200"):
        _study(run, work / size, f"{tiny['maml']},{tiny['supervised']}", "--suite",
               "glyphs-mixed", "--episodes", "40", "--chunk-size", size)  # fmt: skip
    return {"wrong": _wrong(work / "7" / "results.csv", work / "200" / "results.csv")}


def _export(run: Runner, work: Path) -> Path:
    models = work / "mymodels.py"
    models.write_text(MODEL)
    path = work / "mine.pt"
    done = run("export", f"{models}:classifier", "--out", str(path))
    if done.returncode:
        raise SystemExit(done.stderr)
    return path


def _rewrite_factory(export: Path, factory: str, out: Path) -> None:
    code = textwrap.dedent(
        f"""
        from metaleep.backbones.checkpoint import read_checkpoint, write_checkpoint
        header, payload = read_checkpoint({str(export)!r})
        payload["factory"] = {factory!r}
        write_checkpoint({str(out)!r}, payload, kind="wrapped")
        """
    )
    subprocess.run([sys.executable, "-c", code], check=True, env={**os.environ})


def export_factory_rewritten(run: Runner, work: Path, tiny: dict[str, str]) -> dict[str, int]:
    """An export whose factory was rewritten (checksum recomputed) to a .py file elsewhere,
    to code:interact and to sys:exit; each scored with --backbones EXPORT."""
    export = _export(run, work)
    marker = work / "ran"
    evil = work / "elsewhere" / "evil.py"
    evil.parent.mkdir()
    evil.write_text(EVIL.format(marker=str(marker)))
    ran = 0
    for factory in (f"{evil}:classifier", "code:interact", "sys:exit"):
        forged = work / "forged.pt"
        _rewrite_factory(export, factory, forged)
        marker.unlink(missing_ok=True)
        done = _score(run, str(forged), work / "scores")
        interactive = factory == "code:interact" and 'Type "help"' in done.stderr  # a console
        quiet_exit = factory == "sys:exit" and done.returncode == 0 and not done.stdout
        ran += int(marker.exists() or interactive or quiet_exit)
    return {"code run": ran}


class _Gadget:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, (f"touch {self.marker}",))


def weights_pickle_gadget(run: Runner, work: Path, tiny: dict[str, str]) -> dict[str, int]:
    """--backbones FILE.py:CALLABLE@weights.pt where weights.pt is a pickle gadget."""
    models = work / "mymodels.py"
    models.write_text(MODEL)
    marker = work / "ran"
    weights = work / "weights.pt"
    weights.write_bytes(pickle.dumps({"0.weight": _Gadget(marker)}, protocol=2))
    _score(run, f"{models}:classifier@{weights}", work / "scores")
    return {"code run": int(marker.exists())}


CASES: dict[str, Case] = {
    "--overwrite twice (seeds 0, 1) in a folder of the user's files": user_folder_overwrite_twice,
    "--overwrite with the user's results/ tree in --out": user_results_folder,
    "--overwrite with results/ a link to another disk": results_link_to_another_disk,
    "suite re-sampled (seed 1) at the same path, same command": regenerated_suite,
    "half-run study, suite re-sampled, same command": half_run_then_resampled,
    "chunk with 5 rows removed, checksum recomputed": chunk_rows_removed,
    "glyphs-mixed, --chunk-size 7 vs 200": chunk_sizes_on_mixed_ways,
    "export with a rewritten factory (file, code:interact, sys:exit)": export_factory_rewritten,
    "@weights holding a pickle gadget": weights_pickle_gadget,
}


def tiny_backbones(folder: Path) -> dict[str, str]:
    """Two tiny backbones trained for a few steps (the tests' ``tiny_backbones``)."""
    from metaleep.backbones.config import TrainConfig
    from metaleep.backbones.training import train
    from metaleep.data.glyphs import load_glyphs
    from metaleep.data.splits import get_split

    dataset = load_glyphs()
    split = get_split(dataset, "omniglot")
    common = dict(arch="conv2-8", iterations=4, eval_every=4, eval_episodes=4, seed=0, threads=1)
    configs = {
        "maml": TrainConfig(algorithm="fomaml", meta_batch=2, **common),  # type: ignore[arg-type]
        "supervised": TrainConfig(algorithm="supervised", batch_size=64, **common),  # type: ignore[arg-type]
    }
    paths = {}
    for name, config in configs.items():
        train(config, dataset, split, checkpoint_dir=folder / name, name=name)
        paths[name] = f"{name}={folder / name}"
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--metaleep", type=Path, default=ROOT, help="checkout under test")
    parser.add_argument("--json", type=Path, help="also write the counts to this file")
    args = parser.parse_args()
    results = {}
    with tempfile.TemporaryDirectory(prefix="metaleep-cases-") as scratch:
        base = Path(scratch)
        tiny = tiny_backbones(base / "backbones")
        run = Runner(args.metaleep.resolve(), base)
        for name, case in CASES.items():
            work = base / f"case-{len(results)}"
            work.mkdir()
            started = time.perf_counter()
            counts = case(run, work, tiny)
            results[name] = counts
            print(f"{name}: {counts} ({time.perf_counter() - started:.0f} s)", flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
