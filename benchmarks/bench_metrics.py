"""Batched metrics vs a per-episode numpy loop and vs the physical limit (one read of the input).

For each shape, in the same process and on one thread (``torch.set_num_threads(1)``, numpy's
BLAS limited to 1 thread with threadpoolctl):

- baseline: a TLlib-style per-episode numpy function (``tllib/ranking``: class-by-class joint,
  ``source_pred @ P(y|z)``, a list comprehension for the label's entry; ``np.cov`` + ``pinv``
  for the H-score), called in a Python loop over the episodes;
- metaleep: the batched function on a float64 torch tensor, with ``validate=True`` (default)
  and ``validate=False``; LEEP also with ``from_logits=True`` (input: logits);
- read pass: ``x.sum()``, one read of the input tensor, the floor for anything that reads it.

Times are the best of several repeats, interleaved. Peak extra memory, measured after all
timings, is the rise of the peak resident set size (``VmHWM`` of ``/proc/self/status``, reset
through ``/proc/self/clear_refs``) during one call, divided by the input's size; glibc's
``mallopt`` makes every allocation above 64 KiB its own mapping and ``malloc_trim`` hands free
heap pages back first, so that no temporary can hide in memory already resident.
On CUDA (``--device cuda``) times are synchronised and memory is ``torch.cuda``'s peak.
Values are checked against the baseline before timing (LEEP/NCE to 1e-12 absolute, H-score
to 1e-9 relative).

Usage::

    python benchmarks/bench_metrics.py [--quick] [--device cpu|cuda] [--repeats R]
                                       [--metrics leep,nce,h_score] [--strategies]
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
import torch

from metaleep.metrics import (
    h_score_batch,
    leep_score_batch,
    nce_score_batch,
)

# ----------------------------------------------------------------------------- baselines


def tllib_leep(source_pred: np.ndarray, target_label: np.ndarray) -> float:
    """LEEP as in TLlib's ``log_expected_empirical_prediction`` (numpy, one episode)."""
    n, n_src = source_pred.shape
    n_tgt = int(np.max(target_label) + 1)
    normalized_prob = source_pred / float(n)
    joint = np.zeros((n_tgt, n_src), dtype=float)
    for i in range(n_tgt):
        joint[i] = np.sum(normalized_prob[target_label == i], axis=0)
    p_target_given_source = (joint / joint.sum(axis=0, keepdims=True)).T
    empirical_prediction = source_pred @ p_target_given_source
    empirical_prob = np.array(
        [predict[label] for predict, label in zip(empirical_prediction, target_label, strict=True)]
    )
    return float(np.mean(np.log(empirical_prob)))


def tllib_nce(source_pred: np.ndarray, target_label: np.ndarray) -> float:
    """NCE as in TLlib's ``negative_conditional_entropy`` on the argmax (one episode)."""
    source_label = np.argmax(source_pred, axis=1)
    n_tgt = int(np.max(target_label) + 1)
    n_src = int(np.max(source_label) + 1)
    n = len(source_label)
    joint = np.zeros((n_tgt, n_src), dtype=float)
    for s, t in zip(source_label, target_label, strict=True):
        joint[int(t), int(s)] += 1.0 / n
    p_z = joint.sum(axis=0, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        p_target_given_source = (joint / p_z).T
    used = p_z.reshape(-1) != 0
    p_target_given_source = p_target_given_source[used] + 1e-20
    entropy = np.sum(-p_target_given_source * np.log(p_target_given_source), axis=1, keepdims=True)
    return float(-np.sum(entropy * p_z.reshape((-1, 1))[used]))


def tllib_h_score(features: np.ndarray, labels: np.ndarray) -> float:
    """H-score as in TLlib's ``h_score`` (one episode)."""
    cov_f = np.cov(features, rowvar=False)
    g = np.zeros_like(features)
    for i in range(int(labels.max() + 1)):
        g[labels == i] = np.mean(features[labels == i, :], axis=0)
    cov_g = np.cov(g, rowvar=False)
    return float(np.trace(np.dot(np.linalg.pinv(cov_f, rcond=1e-15), cov_g)))


# ----------------------------------------------------------------------------- measurement


@dataclass(frozen=True)
class Case:
    metric: str
    episodes: int
    n: int
    width: int  # Z for probs, d for features
    classes: int

    @property
    def shape(self) -> str:
        return f"{self.metric} E={self.episodes} n={self.n} K={self.width} C={self.classes}"


def _cases(quick: bool) -> list[Case]:
    if quick:
        return [
            Case("leep", 1000, 25, 5, 5),
            Case("leep", 1000, 25, 64, 5),
            Case("leep", 1, 5000, 1000, 1000),
            Case("nce", 1000, 25, 64, 5),
            Case("h_score", 1000, 50, 16, 5),
        ]
    return [
        Case("leep", 10000, 25, 5, 5),
        Case("leep", 10000, 25, 64, 5),
        Case("leep", 1, 50000, 1000, 1000),
        Case("nce", 10000, 25, 5, 5),
        Case("nce", 10000, 25, 64, 5),
        Case("nce", 1, 50000, 1000, 1000),
        Case("h_score", 10000, 50, 16, 5),
        Case("h_score", 1, 20000, 256, 100),
    ]


def _data(case: Case, seed: int = 0) -> tuple[torch.Tensor, np.ndarray, torch.Tensor]:
    """``(x, labels, logits)``: probs (softmax of ``logits``) or features, balanced labels."""
    gen = torch.Generator().manual_seed(seed)
    e, n, k = case.episodes, case.n, case.width
    order = torch.argsort(torch.rand(e, n, generator=gen), dim=1)
    labels = (order % case.classes).numpy()
    if case.metric == "h_score":
        centres = torch.randn(e, case.classes, k, generator=gen, dtype=torch.float64)
        feats = torch.randn(e, n, k, generator=gen, dtype=torch.float64)
        feats += 1.5 * torch.gather(centres, 1, torch.from_numpy(labels)[..., None].expand(e, n, k))
        return feats, labels, feats
    logits = 2.0 * torch.randn(e, n, k, generator=gen, dtype=torch.float64)
    return torch.softmax(logits, dim=-1), labels, logits


def _time(fn: Callable[[], Any], sync: Callable[[], None]) -> float:
    start = time.perf_counter()
    fn()
    sync()
    return time.perf_counter() - start


def _status_kib(key: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise KeyError(key)


def _memory_tools() -> bool:
    """Make large allocations individual mappings and check that the peak RSS can be reset."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        m_mmap_threshold, m_trim_threshold = -3, -1
        libc.mallopt(m_mmap_threshold, 64 * 1024)
        libc.mallopt(m_trim_threshold, 64 * 1024)
        libc.malloc_trim(0)  # give back the heap's free pages: reusing them must show in RSS
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        _status_kib("VmHWM")
    except (OSError, KeyError):
        return False
    return True


def _peak_extra_bytes(fn: Callable[[], Any], device: str) -> float:
    """Peak memory above the current level during ``fn()`` (bytes; NaN if not measurable)."""
    gc.collect()
    if device == "cuda":
        torch.cuda.synchronize()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        fn()
        torch.cuda.synchronize()
        return float(torch.cuda.max_memory_allocated() - base)
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    base = _status_kib("VmRSS")
    fn()
    return float((_status_kib("VmHWM") - base) * 1024)


# ----------------------------------------------------------------------------- main


_BASELINES: dict[str, Callable[[np.ndarray, np.ndarray], float]] = {
    "leep": tllib_leep,
    "nce": tllib_nce,
    "h_score": tllib_h_score,
}
_BATCHED: dict[str, Callable[..., np.ndarray]] = {
    "leep": leep_score_batch,
    "nce": nce_score_batch,
    "h_score": h_score_batch,
}


def _variants(case: Case, device: str) -> tuple[torch.Tensor, dict[str, Callable[[], Any]]]:
    """The case's input tensor on ``device`` and its metaleep calls by variant name."""
    x_cpu, labels, logits_cpu = _data(case)
    x = x_cpu.to(device)
    logits = logits_cpu.to(device)
    labels_t = torch.from_numpy(labels).to(device)
    batched = _BATCHED[case.metric]
    variants: dict[str, Callable[[], Any]] = {
        "validate=True": lambda: batched(x, labels_t),
        "validate=False": lambda: batched(x, labels_t, validate=False),
    }
    if case.metric in ("leep", "nce"):
        variants["from_logits=True"] = lambda: batched(logits, labels_t, from_logits=True)
    return x, variants


def run_case(case: Case, *, device: str, repeats: int) -> list[dict[str, Any]]:
    """Check values against the baseline, then time; one row per metaleep variant."""
    x_cpu, labels, _ = _data(case)
    x_np = x_cpu.numpy()
    x, variants = _variants(case, device)
    sync: Callable[[], None] = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    baseline = _BASELINES[case.metric]

    def run_baseline() -> np.ndarray:
        return np.array([baseline(x_np[e], labels[e]) for e in range(case.episodes)])

    expected = run_baseline()
    for name, fn in variants.items():
        got = fn()
        err = np.abs(got - expected)
        if case.metric == "h_score":
            err = err / np.maximum(np.abs(expected), 1e-300)
        tol = 1e-9 if case.metric == "h_score" else 1e-12
        if not np.all(err <= tol):
            raise AssertionError(f"{case.shape} {name}: max error {err.max():.3g} > {tol:g}")

    base_s = min(_time(run_baseline, sync) for _ in range(max(1, repeats // 3)))
    times = {name: float("inf") for name in variants}
    read_s = float("inf")
    for _ in range(repeats):
        read_s = min(read_s, _time(lambda: x.sum(), sync))
        for name, fn in variants.items():
            times[name] = min(times[name], _time(fn, sync))
    return [
        {
            "shape": case.shape,
            "variant": name,
            "baseline_s": base_s,
            "metaleep_s": times[name],
            "read_s": read_s,
            "vs_baseline": base_s / times[name],
            "vs_read": times[name] / read_s,
            "peak_extra": float("nan"),
        }
        for name in variants
    ]


def memory_ratios(case: Case, *, device: str) -> dict[str, float]:
    """Peak extra memory of one call of each variant, as a multiple of the input's size."""
    x, variants = _variants(case, device)
    for fn in variants.values():
        fn()  # warm up (lazy imports, first-call allocations)
    input_bytes = x.numel() * x.element_size()
    return {name: _peak_extra_bytes(fn, device) / input_bytes for name, fn in variants.items()}


def strategy_rows(case: Case, *, device: str, repeats: int) -> list[str]:
    """Times of the LEEP core's strategies on one case (``Episodes`` built once).

    kernel: the fused CPU kernel (numba; CPU only); dense: batched matmul against all C
    classes and a gather; sparse: one sampled dot product per row
    (``torch.sparse.sampled_addmm``); gather: the fallback, chunks of gathered rows.
    """
    from metaleep.metrics._validation import episodes
    from metaleep.metrics.leep import Strategy, leep_core

    x_cpu, labels, _ = _data(case)
    x = x_cpu.to(device)
    labels_t = torch.from_numpy(labels).to(device)
    sync: Callable[[], None] = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    ep = episodes(x, labels_t, name="probs", kind="probs", metric="leep", single=False)
    runs: dict[str, Callable[[], Any]] = {"read pass": lambda: x.sum()}
    strategies: tuple[Strategy, ...] = ("sparse", "gather")
    if case.classes <= 64:  # dense multiplies by all C classes
        strategies = ("dense", *strategies)
    if device == "cpu":
        strategies = ("kernel", *strategies)
    for strategy in strategies:
        runs[strategy] = partial(leep_core, ep, from_logits=False, strategy=strategy)
    best = {name: float("inf") for name in runs}
    for _ in range(repeats):
        for name, fn in runs.items():
            best[name] = min(best[name], _time(fn, sync))
    read = best["read pass"]
    return [
        f"{case.shape:<38} {name:<24} {t:>9.5f} s {t / read:>7.2f}x read"
        for name, t in best.items()
    ]


def _print_table(rows: Sequence[dict[str, Any]]) -> None:
    header = (
        f"{'shape':<38} {'variant':<17} {'baseline s':>10} {'metaleep s':>10} "
        f"{'read s':>9} {'x faster':>8} {'x read':>7} {'peak mem':>8}"
    )
    print(header)
    print("-" * len(header))
    for r in rows:
        print(
            f"{r['shape']:<38} {r['variant']:<17} {r['baseline_s']:>10.4f} "
            f"{r['metaleep_s']:>10.5f} {r['read_s']:>9.5f} {r['vs_baseline']:>8.1f} "
            f"{r['vs_read']:>7.2f} {r['peak_extra']:>7.2f}x"
        )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and print the table; return 0."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller shapes, fewer repeats")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--repeats", type=int, default=None, help="timing repeats (best of)")
    parser.add_argument("--no-memory", action="store_true", help="skip the memory measurement")
    parser.add_argument(
        "--metrics",
        default="leep,nce,h_score",
        help="comma-separated metrics to run (default: all of leep,nce,h_score)",
    )
    parser.add_argument(
        "--strategies", action="store_true", help="also time the LEEP core's strategies"
    )
    args = parser.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device available")
    repeats = args.repeats or (5 if args.quick else 9)

    torch.set_num_threads(1)
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(1)
        numpy_threads = "1 (threadpoolctl)"
    except ImportError:  # pragma: no cover - sklearn depends on threadpoolctl
        numpy_threads = "not limited (threadpoolctl missing)"
    print(f"torch {torch.__version__}, numpy {np.__version__}; device: {args.device}")
    print(
        f"threads: torch {torch.get_num_threads()} (torch.set_num_threads(1)), numpy BLAS "
        f"{numpy_threads}; float64; best of {repeats} repeats"
    )
    print(
        "x faster = baseline s / metaleep s; x read = metaleep s / read-pass s; peak mem = "
        "peak extra memory during one call / input size"
    )
    print()
    wanted = {m.strip() for m in args.metrics.split(",") if m.strip()}
    if not wanted <= set(_BATCHED):
        parser.error(f"--metrics: unknown {sorted(wanted - set(_BATCHED))}")
    cases = [case for case in _cases(args.quick) if case.metric in wanted]
    rows: list[dict[str, Any]] = []
    for case in cases:
        rows.extend(run_case(case, device=args.device, repeats=repeats))
    strategy_lines: list[str] = []
    if args.strategies:
        for case in cases:
            if case.metric == "leep":
                strategy_lines.extend(strategy_rows(case, device=args.device, repeats=repeats))
    # Memory last: on CPU it changes glibc's allocation policy for the rest of the process
    # (every block above 64 KiB its own mapping), which would slow the timed calls down.
    memory = not args.no_memory and (args.device == "cuda" or _memory_tools())
    if memory:
        for case in cases:
            ratios = memory_ratios(case, device=args.device)
            for row in rows:
                if row["shape"] == case.shape:
                    row["peak_extra"] = ratios[row["variant"]]
    else:
        print("peak memory: not measured")
    _print_table(rows)
    if strategy_lines:
        print()
        print(
            "LEEP core strategies (validated input; the batched function picks the kernel on "
            "the CPU, else dense when C <= min(16, Z), else sparse):"
        )
        for line in strategy_lines:
            print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
