"""Study throughput: the in-process executor vs Ray with 1 and 2 workers on this machine.

A fabricated study (toy data set, 5-way 1-shot episodes with 15 queries per class, two
``conv4-small`` backbones: a first-order-MAML one and a supervised one, every metric and the
adaptations ``maml``, ``anil``, ``retrain_head``, ``prototype``) is run to the end with each
executor, in a fresh output directory each time. Rows:

- ``in-process xT``: the default executor, torch and BLAS with T threads (``--threads``;
  default 1: tiny per-episode ops are many times slower with 2 threads on a small VM);
- ``ray N workers``: :class:`~metaleep.study.ray_executor.RayExecutor` with N one-CPU workers
  (one thread each) on one private local Ray instance (started once, not timed in the rows;
  its start and shutdown are printed apart).

Columns: ``wall_s`` (the whole ``run_study`` call: the backbone outputs computed once in the
driver, the workers' start, every chunk, storing), ``episodes/s`` over that wall time, and
``steady ep/s``: episodes per second between the first and the last finished chunk (what a long
study sees once workers are up). ``same table``: the table equals the in-process one-thread
table (``seconds_*`` timing columns aside).

    python benchmarks/bench_ray.py --quick
    python benchmarks/bench_ray.py --episodes 400 --chunk-size 20
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd


class _Clock:
    """An executor wrapper that records when each chunk arrives."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.arrivals: list[float] = []

    def map_chunks(self, context: Any, chunks: Sequence[int]) -> Iterator[tuple[int, Any]]:
        for item in self.inner.map_chunks(context, chunks):
            self.arrivals.append(time.perf_counter())
            yield item


def _study(episodes: int, chunk_size: int) -> tuple[Any, Any, Any, Any]:
    import torch

    from metaleep.backbones.models import build_backbone
    from metaleep.backbones.testing import toy_dataset
    from metaleep.episodes import EpisodeSampler, EpisodeSpec
    from metaleep.episodes.manifest import suite_from_episodes
    from metaleep.study.config import StudyConfig
    from metaleep.study.runner import StudyBackbone

    spec = EpisodeSpec(ways=5, shots=1, queries=15)
    dataset = toy_dataset(classes=40, per_class=20, seed=1)
    pool = np.arange(20, 40)
    drawn = EpisodeSampler(dataset, spec, classes=pool, seed=0).sample_many(episodes)
    suite = suite_from_episodes(
        drawn,
        [spec] * episodes,
        name="bench",
        dataset=dataset,
        split="toy",
        part="test",
        pool=pool,
        seed=0,
    )
    torch.manual_seed(0)
    source = np.arange(20)
    backbones = [
        StudyBackbone(
            "maml",
            build_backbone("conv4-small", out_features=5).eval(),
            "fomaml",
            source,
            fingerprint="bench-maml",
            inner={"steps": 1, "lr": 0.4, "first_order": True},  # as the default's, 1 step
            source_data=dataset,
        ),
        StudyBackbone(
            "supervised",
            build_backbone("conv4-small", out_features=20).eval(),
            "supervised",
            source,
            fingerprint="bench-supervised",
            source_data=dataset,
        ),
    ]
    config = StudyConfig(
        suite="bench",
        backbones=("maml", "supervised"),
        adaptations=("maml", "anil", "retrain_head", "prototype"),
        chunk_size=chunk_size,
    )
    return config, dataset, suite, backbones


def _timed_run(
    study: tuple[Any, Any, Any, Any], executor: Any, threads: int
) -> tuple[float, float, pd.DataFrame]:
    """(wall seconds, steady episodes/s, table) of one run in a fresh directory."""
    import torch
    from threadpoolctl import threadpool_limits

    from metaleep.study.runner import run_study

    config, dataset, suite, backbones = study
    clock = _Clock(executor)
    torch.set_num_threads(threads)
    with tempfile.TemporaryDirectory() as out, threadpool_limits(threads):
        start = time.perf_counter()
        result = run_study(
            config,
            out_dir=out,
            dataset=dataset,
            suite=suite,
            backbones=backbones,
            analyse=False,
            progress=False,
            executor=clock,
        )
        wall = time.perf_counter() - start
    arrivals = clock.arrivals
    steady = float("nan")
    if len(arrivals) > 1 and arrivals[-1] > arrivals[0]:
        steady = (len(arrivals) - 1) * config.chunk_size / (arrivals[-1] - arrivals[0])
    return wall, steady, result.table


def _same(table: pd.DataFrame, reference: pd.DataFrame) -> bool:
    columns = [c for c in reference.columns if not c.startswith("seconds_")]
    try:
        pd.testing.assert_frame_equal(table[columns], reference[columns])
    except AssertionError:
        return False
    return True


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a small study (smoke run)")
    parser.add_argument("--episodes", type=int, default=None, help="episodes (default 160)")
    parser.add_argument("--chunk-size", type=int, default=None, help="episodes per chunk")
    parser.add_argument("--workers", default="1,2", help="comma-separated Ray worker counts")
    parser.add_argument(
        "--threads", default="1", help="comma-separated torch threads of the in-process rows"
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the rows as JSON here")
    args = parser.parse_args(argv)

    episodes = args.episodes or (24 if args.quick else 160)
    chunk_size = args.chunk_size or (4 if args.quick else 10)
    workers = [int(w) for w in args.workers.split(",")]
    study = _study(episodes, chunk_size)

    from metaleep.study.runner import InProcessExecutor

    _timed_run(_study(2 * chunk_size, chunk_size), InProcessExecutor(), 1)  # imports, warm-up
    rows: list[dict[str, Any]] = []
    reference: pd.DataFrame | None = None
    for threads in sorted({1, *(int(t) for t in args.threads.split(","))}):
        wall, steady, table = _timed_run(study, InProcessExecutor(), threads)
        reference = table if reference is None else reference
        rows.append(_row(f"in-process x{threads}", episodes, wall, steady, _same(table, reference)))

    try:
        import ray

        from metaleep.study.ray_executor import RayExecutor
    except ImportError as error:
        print(f"Ray rows skipped: {error}")
    else:
        assert reference is not None
        cpus = max(workers)
        start = time.perf_counter()
        with RayExecutor(num_workers=cpus) as instance:
            started = time.perf_counter() - start
            for n in workers:
                executor = RayExecutor(num_workers=n, chunk_timeout=600)
                wall, steady, table = _timed_run(study, executor, 1)
                rows.append(
                    _row(f"ray {n} workers", episodes, wall, steady, _same(table, reference))
                )
            start = time.perf_counter()
            instance.close()
        print(
            f"Ray {ray.__version__}: local instance ({cpus} CPUs, 127.0.0.1) started in "
            f"{started:.1f} s, shut down in {time.perf_counter() - start:.1f} s (not in the rows)"
        )
    _print(rows, episodes, chunk_size)
    if args.json is not None:
        args.json.write_text(json.dumps({"episodes": episodes, "rows": rows}, indent=2))
    one_thread = [
        r for r in rows if r["executor"].startswith("ray") or r["executor"].endswith("x1")
    ]
    if not all(row["same_table"] for row in one_thread):
        print("FAILED: a one-thread executor produced another table than in-process x1.")
        return 1
    return 0


def _row(name: str, episodes: int, wall: float, steady: float, same: bool) -> dict[str, Any]:
    return {
        "executor": name,
        "wall_s": round(wall, 2),
        "episodes_per_s": round(episodes / wall, 2),
        "steady_episodes_per_s": round(steady, 2),
        "same_table": same,
    }


def _print(rows: list[dict[str, Any]], episodes: int, chunk_size: int) -> None:
    print(
        f"\nstudy: {episodes} episodes (5-way 1-shot, 15 queries) in chunks of {chunk_size}, "
        f"2 conv4-small backbones, 4 adaptations; {os.cpu_count()} CPUs, load average "
        f"{os.getloadavg()[0]:.1f} (other processes compete for the CPUs when it exceeds the "
        "workers)"
    )
    header = f"{'executor':<18}{'wall_s':>8}{'episodes/s':>12}{'steady ep/s':>13}  same table"
    print(header)
    print("-" * len(header))
    for r in rows:
        print(
            f"{r['executor']:<18}{r['wall_s']:>8.1f}{r['episodes_per_s']:>12.1f}"
            f"{r['steady_episodes_per_s']:>13.1f}  {'yes' if r['same_table'] else 'NO'}"
        )


if __name__ == "__main__":
    sys.exit(main())
