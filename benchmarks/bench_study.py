"""A whole study, naive vs metaleep: episodes per second, peak memory, and equal numbers.

Both sides run the same study on the same episodes in the same invocation, each in its own
subprocess (so that the peak resident memory of each is its own, and neither warms the other's
caches), with the same torch thread count:

- naive: ``benchmarks/_naive.py``, one episode at a time: backbone forward of the support and
  query sets, per-episode NumPy metrics (TLlib style; N-LEEP with scikit-learn), learn2learn
  ``MAML`` clone/adapt with the backbone's training inner loop (``maml``), an ``nn.Linear``
  trained by 100 accelerated gradient steps with autograd, from zero (``retrain_head``) or
  from the meta-learned head (``anil``), nearest class mean (``prototype``);
- metaleep: :func:`metaleep.study.runner.run_study` (``analyse=False``): backbone outputs once
  per distinct image, batched metrics and head-only adaptation per chunk, MAML's lean inner
  loop, results stored chunk by chunk.

Study: the standard suite ``glyphs-5w1s`` (5-way 1-shot, 15 queries per class; beyond its 600
episodes more are drawn with :class:`~metaleep.episodes.EpisodeSampler` on the same classes and
seed, whose first 600 are the suite's), the default ``maml`` backbone when it is cached
(``metaleep backbones train``), otherwise an untrained ``conv4-small`` with a 5-way head (speed
and equality do not need a trained model), dummy labels ``head`` and ``prototypes``, all five
metrics, and either the head-only adaptations (``anil``, ``retrain_head``, ``prototype``) or
those plus whole-network ``maml``. Both sides adapt by the study's rules: ``maml`` with the
inner loop the backbone was trained with (the default MAML backbone: 1 step, lr 0.4),
``anil`` and ``retrain_head`` 100 accelerated steps of size ``1 / L``. The five metrics are
LEEP, NCE, H-score, LogME and N-LEEP, those the naive side implements; the study's later
defaults (shrinkage H-score, GBC, TransRate, SFDA, centroid leave-one-out) are compared with
their public references in ``bench_new_metrics.py``.

Fairness: both sides hold BLAS to one thread while scoring (the runner with threadpoolctl around
each chunk's scoring, the naive study around its whole loop; OpenBLAS with 2 threads was up to
170x slower on these tiny matrices) and both import scikit-learn and SciPy before timing, so
that the limit covers their OpenBLAS from the first episode. Times are of the study call alone
(data, suite and model loaded, and the naive side's learn2learn imported, before the clock
starts; metaleep no longer imports learn2learn at all); each is the best of ``--repeats``
interleaved runs. Peak memory is each subprocess's ``ru_maxrss``.

Equality: rows are matched on (episode, dummy, adaptation); metrics must agree to
``1e-6 * max(1, |value|)``, accuracies exactly; the exit status is 1 otherwise.

Also measured: how time grows with the number of episodes (``--scale``), and the peak
resident memory of the default ``metaleep run`` (the CLI when both default backbones are
cached, else the same default study with untrained stand-in backbones of the same shapes).

    python benchmarks/bench_study.py --quick
    python benchmarks/bench_study.py --threads 1,2 --repeats 2
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
SUITE = "glyphs-5w1s"
SUITE_EPISODES = 600
DUMMIES = ("head", "prototypes")
METRICS = ("leep", "nce", "h_score", "logme", "nleep")
PLANS: dict[str, tuple[str, ...]] = {
    "heads": ("anil", "retrain_head", "prototype"),
    "maml": ("maml", "anil", "retrain_head", "prototype"),
}
PLAN_TITLES = {
    "heads": "scores + head-only adaptation (anil, retrain_head, prototype)",
    "maml": "scores + MAML whole network + head-only adaptation",
}
KEYS = ["episode", "dummy", "adaptation"]


# ----------------------------------------------------------------------------- the child side


def _have_defaults(names: tuple[str, ...], dataset: Any, split: Any) -> bool:
    """Whether the default backbones ``names`` load without training (shipped or cached)."""
    from metaleep.backbones.checkpoint import BACKBONE_FILE, split_fingerprint
    from metaleep.backbones.default import default_directory, shipped_manifest

    entries = shipped_manifest()["backbones"]
    for name in names:
        entry = entries.get(f"{name}-seed0", {})
        shipped = entry.get("dataset") == dataset.fingerprint and entry.get(
            "split"
        ) == split_fingerprint(split)
        cached = (default_directory(name, dataset, split, create=False) / BACKBONE_FILE).is_file()
        if not (shipped or cached):
            return False
    return True


def _load(episodes: int, device: str) -> tuple[Any, Any, dict[str, Any]]:
    """The glyph data set, a suite of ``episodes`` episodes, and the backbone's description."""
    import numpy as np

    from metaleep.backbones.default import DEFAULT_SPLIT, default_backbone
    from metaleep.backbones.models import build_backbone
    from metaleep.data.spec import load_dataset
    from metaleep.data.splits import get_split
    from metaleep.episodes import EpisodeSampler, EpisodeSpec
    from metaleep.episodes.manifest import suite_from_episodes
    from metaleep.episodes.suites import class_pool, load_suite

    dataset = load_dataset("glyphs")
    split = get_split(dataset, DEFAULT_SPLIT)
    if episodes <= SUITE_EPISODES:
        suite = load_suite(SUITE, dataset)
    else:
        spec = EpisodeSpec(ways=5, shots=1, queries=15)
        pool = class_pool(dataset, DEFAULT_SPLIT, "test", split)
        sampled = EpisodeSampler(dataset, spec, classes=pool, seed=0).sample_many(episodes)
        suite = suite_from_episodes(
            sampled,
            [spec] * episodes,
            name=f"{SUITE}-x{episodes}",
            dataset=dataset,
            split=DEFAULT_SPLIT,
            part="test",
            pool=pool,
            seed=0,
        )
    if _have_defaults(("maml",), dataset, split):
        trained = default_backbone("maml", progress=False, dataset=dataset, split=split)
        model, source = trained.model, np.asarray(trained.source_classes, dtype=np.int64)
        algorithm, inner = trained.algorithm, dict(trained.config.inner_loop)
        name = "default maml (shipped)"
    else:
        model = build_backbone("conv4-small", out_features=5)
        source = np.asarray(split.train, dtype=np.int64)
        # the default maml backbone's algorithm and inner loop (second order, 1 step, lr 0.4)
        algorithm, inner = "maml", {"steps": 1, "lr": 0.4, "first_order": False}
        name = "conv4-small, untrained (default maml backbone not available)"
    from metaleep.backbones.protocol import weights_fingerprint

    backbone = {
        "model": model.to(device).eval(),
        "source": source,
        "algorithm": algorithm,
        "inner": inner,
        "name": name,
    }
    backbone["fingerprint"] = f"{dataset.fingerprint}/{weights_fingerprint(model)}"
    return dataset, suite, backbone


def _run_child(job: dict[str, Any]) -> dict[str, Any]:
    """One side of one measurement; returns timings and writes the table to ``job["table"]``."""
    import torch

    torch.set_num_threads(int(job["threads"]))
    if str(job["device"]).startswith("cuda"):
        # TF32 off on both sides, as metaleep's study does for itself: cuDNN's default TF32
        # convolutions give results that depend on the batch an image is in.
        torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    # Loaded before any BLAS limit is entered, so that the limit covers their OpenBLAS.
    import scipy.linalg  # noqa: F401
    import sklearn.cluster
    import sklearn.mixture  # noqa: F401
    from threadpoolctl import threadpool_limits

    started = time.perf_counter()
    dataset, suite, backbone = _load(int(job["episodes"]), job["device"])
    episodes = list(suite.episodes[: int(job["episodes"])])
    setup = time.perf_counter() - started
    adaptations = PLANS[job["plan"]]
    metrics = tuple(job.get("metrics") or METRICS)
    if job["side"] == "naive":
        sys.path.insert(0, str(HERE))
        import _naive

        if "maml" in adaptations or "anil" in adaptations:
            import learn2learn  # noqa: F401  (about 2 s, not counted: only the work is timed)

        naive_backbone = _naive.NaiveBackbone(
            "maml",
            backbone["model"],
            backbone["algorithm"],
            backbone["source"],
            lr=float(backbone["inner"]["lr"]),
            steps=int(backbone["inner"]["steps"]),
        )
        start = time.perf_counter()
        with threadpool_limits(1, user_api="blas"):
            table = _naive.run_naive_study(
                dataset,
                episodes,
                naive_backbone,
                dummies=DUMMIES,
                adaptations=adaptations,
                metrics=metrics,
                device=job["device"],
            )
        seconds = time.perf_counter() - start
        reuse = None
    else:
        from metaleep.study.config import StudyConfig
        from metaleep.study.runner import StudyBackbone, prepare_chunks, run_study

        config = StudyConfig(
            suite=suite.name,
            backbones=("maml",),
            dummies=DUMMIES,
            adaptations=adaptations,
            metrics=metrics,
            episodes=len(episodes),
            device=job["device"],
        )
        study_backbone = StudyBackbone(
            "maml",
            backbone["model"],
            backbone["algorithm"],
            backbone["source"],
            fingerprint="bench",
            inner=backbone["inner"],
            source_data=dataset,
        )
        with tempfile.TemporaryDirectory() as out:
            start = time.perf_counter()
            result = run_study(
                config,
                out_dir=out,
                dataset=dataset,
                suite=suite,
                backbones=[study_backbone],
                analyse=False,
                progress=False,
            )
            seconds = time.perf_counter() - start
        table = result.table
        reuse = None
        if job.get("reuse"):
            outputs = prepare_chunks(
                config, dataset, suite.name, episodes, [study_backbone], job["device"]
            ).outputs["maml"]
            reuse = {
                "distinct": len(outputs.images),
                "references": outputs.references,
                "reuse": outputs.reuse,
            }
    columns = [*KEYS, *metrics, "accuracy", "loss"]
    table[columns].to_pickle(job["table"])
    return {
        "seconds": seconds,
        "setup_seconds": setup,
        "episodes": len(episodes),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "backbone": backbone["name"],
        "inputs": backbone["fingerprint"],
        "reuse": reuse,
        "load_average": os.getloadavg()[0],
    }


def _run_default_study_child(job: dict[str, Any]) -> dict[str, Any]:
    """The default study (``StudyConfig()``) with untrained stand-ins for the two backbones."""
    import numpy as np
    import torch

    torch.set_num_threads(int(job["threads"]))
    from metaleep.backbones.default import DEFAULT_SPLIT
    from metaleep.backbones.models import build_backbone
    from metaleep.data.spec import load_dataset
    from metaleep.data.splits import get_split
    from metaleep.study.config import StudyConfig
    from metaleep.study.runner import StudyBackbone, run_study

    dataset = load_dataset("glyphs")
    source = np.asarray(get_split(dataset, DEFAULT_SPLIT).train, dtype=np.int64)
    backbones = [
        StudyBackbone(
            "maml",
            build_backbone("conv4-small", out_features=5).eval(),
            "maml",
            source,
            fingerprint="stand-in",
            inner={"steps": 1, "lr": 0.4, "first_order": False},
            source_data=dataset,
        ),
        StudyBackbone(
            "supervised",
            build_backbone("conv4-small", out_features=len(source)).eval(),
            "supervised",
            source,
            fingerprint="stand-in",
            source_data=dataset,
        ),
    ]
    config = StudyConfig(episodes=job["episodes"])
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        result = run_study(
            config, out_dir=out, dataset=dataset, backbones=backbones, progress=False
        )
        seconds = time.perf_counter() - start
    return {
        "seconds": seconds,
        "episodes": int(result.table["episode"].nunique()),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


# ----------------------------------------------------------------------------- the parent side


def _run_in_child(job: dict[str, Any], work: Path, name: str) -> dict[str, Any]:
    """Run ``job`` in a fresh interpreter (this script with ``--child``); its JSON answer."""
    spec, answer = work / f"{name}.job.json", work / f"{name}.out.json"
    spec.write_text(json.dumps(job))
    proc = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--child", str(spec), str(answer)],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"benchmark child {name} failed:\n{proc.stderr[-4000:]}")
    return dict(json.loads(answer.read_text()))


def _spawn(job: dict[str, Any], work: Path) -> dict[str, Any]:
    """One side of one measurement in a fresh interpreter; its answer and table path."""
    name = f"{job['side']}-{job['plan']}-{job['episodes']}-{job['threads']}-{time.time_ns()}"
    job = {**job, "table": str(work / f"{name}.pkl")}
    return {**_run_in_child(job, work, name), "table": job["table"]}


def _compare(naive_table: str, fast_table: str) -> dict[str, Any]:
    """Largest differences between the two tables (rows matched on episode, dummy, method)."""
    import numpy as np
    import pandas as pd

    a = pd.read_pickle(naive_table).set_index(KEYS).sort_index()
    b = pd.read_pickle(fast_table).set_index(KEYS).sort_index()
    if not a.index.equals(b.index):
        return {"equal": False, "reason": f"rows differ: {len(a)} naive vs {len(b)} metaleep"}
    out: dict[str, Any] = {"rows": len(a)}
    worst_scaled = 0.0
    for metric in METRICS:
        diff = (a[metric] - b[metric]).abs()
        out[f"max_abs_{metric}"] = float(diff.max())
        worst_scaled = max(worst_scaled, float((diff / np.maximum(1.0, a[metric].abs())).max()))
    out["max_abs_loss"] = float((a["loss"] - b["loss"]).abs().max())
    out["accuracy_mismatches"] = int((a["accuracy"] != b["accuracy"]).sum())
    out["worst_scaled_metric_diff"] = worst_scaled
    out["equal"] = worst_scaled <= 1e-6 and out["accuracy_mismatches"] == 0
    return out


def _pair(
    plan: str,
    episodes: int,
    threads: int,
    device: str,
    repeats: int,
    work: Path,
    naive: bool = True,
    metrics: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Both sides (interleaved, best of ``repeats``) and their comparison; ``metrics`` (default
    :data:`METRICS`) other than the five the naive side has: metaleep alone."""
    naive = naive and metrics is None
    best: dict[str, dict[str, Any]] = {}
    sides = ("naive", "metaleep") if naive else ("metaleep",)
    for repeat in range(repeats):
        for side in sides:
            job = {
                "side": side,
                "plan": plan,
                "episodes": episodes,
                "threads": threads,
                "device": device,
                "reuse": side == "metaleep" and repeat == 0,
                "metrics": list(metrics) if metrics is not None else None,
            }
            result = _spawn(job, work)
            if side in best:
                result["reuse"] = result["reuse"] or best[side]["reuse"]
                result["peak_rss_mb"] = max(result["peak_rss_mb"], best[side]["peak_rss_mb"])
            if side not in best or result["seconds"] < best[side]["seconds"]:
                best[side] = result
    row: dict[str, Any] = {
        "plan": plan,
        "episodes": episodes,
        "threads": threads,
        **{
            f"{side}_{key}": best[side][key]
            for side in sides
            for key in ("seconds", "setup_seconds", "peak_rss_mb")
        },
    }
    row["metaleep_eps"] = episodes / best["metaleep"]["seconds"]
    row["load_average"] = best["metaleep"].get("load_average")
    row["metrics"] = list(metrics or METRICS)
    row["backbone"] = best["metaleep"]["backbone"]
    row["reuse"] = best["metaleep"].get("reuse")
    if naive:
        row["naive_eps"] = episodes / best["naive"]["seconds"]
        row["ratio"] = best["naive"]["seconds"] / best["metaleep"]["seconds"]
        if best["naive"]["inputs"] != best["metaleep"]["inputs"]:
            # e.g. another process rebuilt the glyph cache or cached a trained backbone
            row["check"] = {
                "equal": False,
                "reason": "the two sides loaded different data or "
                f"weights: {best['naive']['inputs']} vs {best['metaleep']['inputs']}",
            }
        else:
            row["check"] = _compare(best["naive"]["table"], best["metaleep"]["table"])
    return row


def _default_run_memory(threads: int, episodes: int | None, work: Path) -> dict[str, Any]:
    """Peak RSS of the default ``metaleep run`` (CLI if its backbones are cached, else stand-in)."""
    from metaleep.backbones.default import DEFAULT_SPLIT
    from metaleep.data.spec import load_dataset
    from metaleep.data.splits import get_split

    dataset = load_dataset("glyphs")
    split = get_split(dataset, DEFAULT_SPLIT)
    cached = _have_defaults(("maml", "supervised"), dataset, split)
    if cached:
        out = work / "default-run"
        command = [
            sys.executable,
            "-m",
            "metaleep",
            "run",
            "--out",
            str(out),
            "--no-progress",
            "--threads",
            str(threads),
        ]
        if episodes:
            command += ["--episodes", str(episodes)]
        start = time.perf_counter()
        with open(work / "default-run.log", "w") as log:
            proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
            _, status, usage = os.wait4(proc.pid, 0)
        if os.waitstatus_to_exitcode(status) != 0:
            raise RuntimeError(f"`metaleep run` failed; see {work / 'default-run.log'}")
        return {
            "what": "metaleep run (default backbones, cached)"
            + (f" --episodes {episodes}" if episodes else " (all 600 episodes)"),
            "peak_rss_mb": usage.ru_maxrss / 1024,
            "seconds": time.perf_counter() - start,
        }
    job = {"side": "default", "plan": "default", "episodes": episodes, "threads": threads}
    result = _run_in_child(job, work, "default")
    shown = f"{episodes} episodes" if episodes else "all 600 episodes"
    result["what"] = (
        f"default study, run_study(StudyConfig()) with analysis and report, {shown}; "
        "untrained stand-in backbones (default backbones not cached)"
    )
    return result


def _machine(device: str) -> str:
    import torch

    processor = platform.processor() or platform.machine()
    text = (
        f"{processor}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"torch {torch.__version__}, device {device}"
    )
    if device.startswith("cuda") and torch.cuda.is_available():
        text += f" ({torch.cuda.get_device_name()})"
    return text


def _print_report(
    rows: list[dict[str, Any]],
    scale: list[dict[str, Any]],
    memory: dict[str, Any] | None,
    device: str,
    repeats: int,
    full: Sequence[dict[str, Any]] = (),
) -> None:
    print(f"\nmachine: {_machine(device)}")
    if rows:
        print(
            f"backbone: {rows[0]['backbone']}; suite {SUITE} (5-way 1-shot, 15 queries/class);"
            f" dummies {', '.join(DUMMIES)}; metrics {', '.join(METRICS)}"
        )
        reuse = next((r["reuse"] for r in rows if r.get("reuse")), None)
        if reuse:
            print(
                f"compute once: {reuse['references']} image references, {reuse['distinct']} "
                f"distinct images ({reuse['reuse']:.2f}x reuse) for {rows[0]['episodes']} "
                "episodes"
            )
        print(
            f"times: study call only, best of {repeats} interleaved run(s); "
            "peak RSS: each side's own subprocess\n"
        )
        print(
            "| study | episodes | threads | naive (episodes/s) | metaleep (episodes/s) | "
            "ratio | naive peak RSS | metaleep peak RSS | same numbers |"
        )
        print("|---|---:|---:|---:|---:|---:|---:|---:|---|")
        for r in rows:
            check = r["check"]
            same = "yes" if check.get("equal") else "NO"
            print(
                f"| {PLAN_TITLES[r['plan']]} | {r['episodes']} | {r['threads']} | "
                f"{r['naive_eps']:.1f} | {r['metaleep_eps']:.1f} | **{r['ratio']:.1f}x** | "
                f"{r['naive_peak_rss_mb']:.0f} MB | {r['metaleep_peak_rss_mb']:.0f} MB | "
                f"{same} |"
            )
        print("\nequality (naive vs metaleep, largest differences over all rows):")
        for r in rows:
            c = r["check"]
            if "reason" in c:
                print(f"  {r['plan']} threads={r['threads']}: {c['reason']}")
                continue
            diffs = ", ".join(f"{m} {c['max_abs_' + m]:.1e}" for m in METRICS)
            print(
                f"  {r['plan']} threads={r['threads']}: {c['rows']} rows; max |diff| {diffs}; "
                f"loss {c['max_abs_loss']:.1e}; accuracy mismatches {c['accuracy_mismatches']}"
            )
    if scale:
        print("\nhow time grows with the number of episodes (study call, seconds):\n")
        print(
            "| study | episodes | threads | naive (s) | metaleep (s) | metaleep (episodes/s) | "
            "ratio | metaleep peak RSS |"
        )
        print("|---|---:|---:|---:|---:|---:|---:|---:|")
        for r in scale:
            naive_s = f"{r['naive_seconds']:.1f}" if "naive_seconds" in r else "not run"
            ratio = f"{r['ratio']:.1f}x" if "ratio" in r else "-"
            print(
                f"| {r['plan']} | {r['episodes']} | {r['threads']} | {naive_s} | "
                f"{r['metaleep_seconds']:.2f} | {r['metaleep_eps']:.0f} | {ratio} | "
                f"{r['metaleep_peak_rss_mb']:.0f} MB |"
            )
    if full:
        five = {(r["plan"], r["threads"]): r for r in rows}
        print(
            f"\nmetaleep with the study's {len(full[0]['metrics'])} default metrics "
            f"({', '.join(full[0]['metrics'])}); no naive side:\n"
        )
        print("| study | episodes | threads | metaleep (episodes/s) | with the five metrics |")
        print("|---|---:|---:|---:|---:|")
        for r in full:
            same = five.get((r["plan"], r["threads"]))
            shown = f"{same['metaleep_eps']:.1f}" if same else "-"
            print(
                f"| {PLAN_TITLES[r['plan']]} | {r['episodes']} | {r['threads']} | "
                f"{r['metaleep_eps']:.1f} | {shown} |"
            )
    if memory:
        print(
            f"\npeak resident memory of the default run: {memory['peak_rss_mb']:.0f} MB "
            f"({memory['what']}; {memory['seconds']:.1f} s)"
        )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small smoke run (about a minute)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument(
        "--threads",
        default=None,
        help="comma-separated torch thread counts (default 1,2; --quick: 1)",
    )
    parser.add_argument(
        "--episodes",
        type=int,
        default=None,
        help=f"episodes of the main comparison (default {SUITE_EPISODES})",
    )
    parser.add_argument("--repeats", type=int, default=None, help="runs per side (best kept)")
    parser.add_argument(
        "--plans",
        default=",".join(PLANS),
        help=f"comma-separated studies to run, from {', '.join(PLANS)} (default: all)",
    )
    parser.add_argument(
        "--scale",
        default=None,
        help="episode counts of the growth table, e.g. 100,1000,10000 "
        "(default: those; --quick: none; 'none' to skip)",
    )
    parser.add_argument(
        "--naive-max",
        type=int,
        default=1000,
        help="largest episode count the naive study runs in the growth table",
    )
    parser.add_argument(
        "--memory-episodes",
        type=int,
        default=None,
        help="episodes of the default-run memory check (default: all)",
    )
    parser.add_argument("--skip-memory", action="store_true", help="skip the default-run check")
    parser.add_argument(
        "--default-metrics",
        action="store_true",
        help="also time metaleep alone with the study's default metrics (DEFAULT_METRICS)",
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.child:
        job = json.loads(Path(args.child[0]).read_text())
        run = _run_default_study_child if job["side"] == "default" else _run_child
        Path(args.child[1]).write_text(json.dumps(run(job)))
        return 0

    if args.device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            print("CUDA is not available: skipping the --device cuda benchmark.")
            return 0
    plans = [p.strip() for p in args.plans.split(",") if p.strip()]
    if not plans or any(p not in PLANS for p in plans):
        parser.error(f"--plans: expected names from {', '.join(PLANS)}; got {args.plans!r}")
    threads = [int(t) for t in (args.threads or ("1" if args.quick else "1,2")).split(",")]
    episodes = args.episodes or (30 if args.quick else SUITE_EPISODES)
    repeats = args.repeats or (1 if args.quick else 2)
    scale_text = args.scale or ("none" if args.quick else "100,1000,10000")
    sizes = [] if scale_text == "none" else [int(s) for s in scale_text.split(",")]
    rows: list[dict[str, Any]] = []
    scale: list[dict[str, Any]] = []
    full: list[dict[str, Any]] = []
    memory = None
    with tempfile.TemporaryDirectory(prefix="bench-study-") as tmp:
        work = Path(tmp)
        for t in threads:
            for plan in plans:
                print(f"running {plan}, {episodes} episodes, {t} thread(s) ...", flush=True)
                rows.append(_pair(plan, episodes, t, args.device, repeats, work))
        if args.default_metrics:
            from metaleep.study.config import DEFAULT_METRICS

            for t in threads:
                for plan in plans:
                    print(f"metaleep, default metrics: {plan}, {t} thread(s) ...", flush=True)
                    full.append(
                        _pair(
                            plan, episodes, t, args.device, repeats, work, metrics=DEFAULT_METRICS
                        )
                    )
        for size in sizes:
            for plan in plans:
                if plan == "maml" and size > 1000:
                    continue
                print(f"growth: {plan}, {size} episodes ...", flush=True)
                scale.append(
                    _pair(
                        plan, size, threads[0], args.device, 1, work, naive=size <= args.naive_max
                    )
                )
        if not args.skip_memory:
            print("peak memory of the default run ...", flush=True)
            memory_episodes = args.memory_episodes or (30 if args.quick else None)
            memory = _default_run_memory(threads[0], memory_episodes, work)
    _print_report(rows, scale, memory, args.device, repeats, full)
    if args.json is not None:
        args.json.write_text(
            json.dumps(
                {
                    "machine": _machine(args.device),
                    "rows": rows,
                    "scale": scale,
                    "default_metrics": full,
                    "memory": memory,
                },
                indent=2,
            )
        )
    failed = [r for r in rows + scale if "check" in r and not r["check"].get("equal")]
    if failed:
        print("FAILED: the naive and metaleep studies disagree (see the equality lines).")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
