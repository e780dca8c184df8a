"""Per-episode loop vs batched adaptation: milliseconds per episode, and equal predictions.

Fabricated 5-way 1-shot episodes with 15 queries per class (75 queries), float32:

- head-only methods over cached 64-d features, with the study's settings (the registry's
  ``HeadConfig``: 100 accelerated steps of size ``1 / L``): ``retrain_head`` (from zero),
  ``anil`` (from a shared head) and ``prototype``; loop = the per-episode function over
  episodes, batched = the ``*_batch`` function on all of them;
- whole-network MAML on learn2learn's ``OmniglotCNN`` (28x28x1, transductive BatchNorm) with
  the default MAML backbone's inner loop, which the study repeats (1 step, lr 0.4;
  ``--maml-steps`` for more); loop = the engine's per-episode loop (learn2learn's
  ``clone``/``adapt`` bit for bit), batched = ``torch.func.vmap``.

Each timing is the best of ``--repeats`` runs after one warm-up run, at each thread count of
``--threads`` (``torch.set_num_threads``; tiny ops are much slower with 2 threads on a small
shared VM, so the count matters). ``--device cuda`` runs on the GPU (skipped, exit 0, when
CUDA is not available).

    python benchmarks/bench_adaptation.py --quick
    python benchmarks/bench_adaptation.py --threads 1,2 --device cpu
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

WAYS, SHOTS, QUERIES, DIM = 5, 1, 15, 64


def _episodes(
    episodes: int, shape: tuple[int, ...], device: torch.device, seed: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    support_y = torch.arange(WAYS).repeat_interleave(SHOTS).repeat(episodes, 1)
    query_y = torch.arange(WAYS).repeat_interleave(QUERIES).repeat(episodes, 1)
    offsets = torch.randn(episodes, WAYS, *shape, generator=generator)
    pick = torch.arange(episodes)[:, None]
    support = offsets[pick, support_y] + torch.rand(
        episodes, WAYS * SHOTS, *shape, generator=generator
    )
    query = offsets[pick, query_y] + torch.rand(
        episodes, WAYS * QUERIES, *shape, generator=generator
    )
    return support.to(device), support_y.to(device), query.to(device), query_y.to(device)


def _time(fn: Callable[[], Any], repeats: int, device: torch.device) -> tuple[float, Any]:
    """Best wall time of ``repeats`` calls after a warm-up; (seconds, last output)."""
    output = fn()
    best = float("inf")
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        output = fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return best, output


def _compare(
    name: str, threads: int, episodes: int, loop: tuple[float, Any], batch: tuple[float, Any]
) -> dict[str, Any]:
    from metaleep.adapt.registry import BatchAdaptationResult

    loop_time, loop_out = loop
    batch_time, batch_out = batch
    if not isinstance(loop_out, BatchAdaptationResult):
        loop_out = BatchAdaptationResult.from_results(loop_out)
    mismatches = int((loop_out.predictions != batch_out.predictions).sum())
    return {
        "method": name,
        "threads": threads,
        "episodes": episodes,
        "loop_ms": 1e3 * loop_time / episodes,
        "batch_ms": 1e3 * batch_time / episodes,
        "speedup": loop_time / batch_time,
        "prediction_mismatches": mismatches,
        "max_abs_logit_diff": float((loop_out.logits - batch_out.logits).abs().max()),
    }


def _head_rows(
    threads: int, episodes: int, repeats: int, device: torch.device
) -> list[dict[str, Any]]:
    from metaleep.adapt import registry as A

    def study_settings(name: str) -> dict[str, Any]:
        return {"config": A.get_adaptation(name).config}  # what the study adapts with

    sf, sy, qf, qy = _episodes(episodes, (DIM,), device, seed=0)
    generator = torch.Generator().manual_seed(1)
    head = (
        (0.1 * torch.randn(WAYS, DIM, generator=generator)).to(device),
        torch.zeros(WAYS).to(device),
    )
    cases: dict[str, tuple[Callable[..., Any], Callable[..., Any], dict[str, Any]]] = {
        "retrain_head": (A.retrain_head, A.retrain_head_batch, study_settings("retrain_head")),
        "anil": (
            A.retrain_head,
            A.retrain_head_batch,
            {**study_settings("anil"), "init": head},
        ),
        "prototype": (A.nearest_prototype, A.nearest_prototype_batch, {}),
    }
    rows = []
    for name, (single, batched, options) in cases.items():
        loop = _time(
            lambda single=single, options=options: [
                single(sf[e], sy[e], qf[e], qy[e], ways=WAYS, **options) for e in range(episodes)
            ],
            repeats,
            device,
        )
        batch = _time(
            lambda batched=batched, options=options: batched(sf, sy, qf, qy, ways=WAYS, **options),
            repeats,
            device,
        )
        rows.append(_compare(name, threads, episodes, loop, batch))
    return rows


def _maml_rows(
    threads: int,
    episodes: int,
    repeats: int,
    device: torch.device,
    chunk: int | None,
    steps: int,
) -> list[dict[str, Any]]:
    import learn2learn as l2l

    from metaleep.adapt.registry import maml_adapt_batch

    torch.manual_seed(0)
    model = l2l.vision.models.OmniglotCNN(output_size=WAYS).to(device)
    sx, sy, qx, qy = _episodes(episodes, (1, 28, 28), device, seed=2)
    options: dict[str, Any] = {"steps": steps, "lr": 0.4}
    loop = _time(
        lambda: maml_adapt_batch(model, sx, sy, qx, qy, vectorize=False, **options), repeats, device
    )
    batch = _time(
        lambda: maml_adapt_batch(
            model, sx, sy, qx, qy, vectorize=True, chunk_size=chunk, **options
        ),
        repeats,
        device,
    )
    return [_compare("maml (OmniglotCNN)", threads, episodes, loop, batch)]


def _print(rows: Sequence[dict[str, Any]], device: torch.device) -> None:
    print(f"device: {device}  ({WAYS}-way {SHOTS}-shot, {QUERIES} queries/class, float32)")
    header = (
        f"{'method':<20}{'threads':>8}{'E':>6}{'loop ms/ep':>12}{'batch ms/ep':>13}"
        f"{'speedup':>9}{'pred. diff':>11}{'max|dlogit|':>13}"
    )
    print(header)
    for row in rows:
        print(
            f"{row['method']:<20}{row['threads']:>8}{row['episodes']:>6}{row['loop_ms']:>12.3f}"
            f"{row['batch_ms']:>13.3f}{row['speedup']:>8.2f}x{row['prediction_mismatches']:>11}"
            f"{row['max_abs_logit_diff']:>13.2e}"
        )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="few episodes and repeats (smoke run)")
    parser.add_argument("--threads", default="1,2", help="comma-separated torch thread counts")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--head-episodes", type=int, default=None, help="episodes for head methods")
    parser.add_argument("--maml-episodes", type=int, default=None, help="episodes for MAML")
    parser.add_argument("--repeats", type=int, default=None, help="timed runs (best is kept)")
    parser.add_argument(
        "--maml-steps",
        type=int,
        default=1,
        help="MAML inner steps (default 1: the default MAML backbone's inner loop)",
    )
    parser.add_argument(
        "--maml-chunk", type=int, default=None, help="episodes per vmap call (default: all)"
    )
    parser.add_argument(
        "--tf32",
        action="store_true",
        help="allow TF32 in CUDA convolutions/matmuls (torch's cuDNN default); off by default "
        "so that loop and batched float32 logits are comparable",
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the rows as JSON here")
    args = parser.parse_args(argv)

    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("CUDA is not available: skipping the --device cuda benchmark.")
        return 0
    if device.type == "cuda":
        torch.backends.cudnn.allow_tf32 = args.tf32
        torch.backends.cuda.matmul.allow_tf32 = args.tf32
    head_episodes = args.head_episodes or (50 if args.quick else 500)
    maml_episodes = args.maml_episodes or (4 if args.quick else 32)
    repeats = args.repeats or (1 if args.quick else 3)
    rows: list[dict[str, Any]] = []
    for threads in (int(t) for t in args.threads.split(",")):
        torch.set_num_threads(threads)
        rows += _head_rows(threads, head_episodes, repeats, device)
        rows += _maml_rows(
            threads, maml_episodes, repeats, device, args.maml_chunk, args.maml_steps
        )
    _print(rows, device)
    print(f"MAML: {args.maml_steps} inner step(s) of lr 0.4; heads: the study's HeadConfig")
    if device.type == "cuda":
        print(f"TF32 {'allowed' if args.tf32 else 'disabled'} in CUDA convolutions and matmuls")
    if args.json is not None:
        args.json.write_text(json.dumps({"device": str(device), "rows": rows}, indent=2))
    head_mismatch = any(
        r["prediction_mismatches"] for r in rows if not r["method"].startswith("maml")
    )
    if head_mismatch:
        print("FAILED: batched head-only predictions differ from the per-episode loop.")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
