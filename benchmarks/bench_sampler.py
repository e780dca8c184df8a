"""Episodes per second: metaleep's :class:`EpisodeSampler` vs learn2learn's ``Taskset`` pipeline.

Both sides draw 5-way episodes with 5 support + 15 query images per class from the same data
(100 classes x 20 images of 1x28x28), in the same process:

- learn2learn: ``Taskset(MetaDataset(TensorDataset), [NWays(5), KShots(20), LoadData,
  RemapLabels])`` (NWays first, as Python >= 3.11 requires), seeded through Python's global
  ``random`` — the only randomness it uses.
- metaleep: ``EpisodeSampler(...).sample(i)`` (indices only), and the same followed by
  ``ImageDataset.batch`` of support and query (indices + image tensors, what ``LoadData`` does).

When the glyph data set is available it also times 5-way 1-shot episodes from the test classes
of its ``"omniglot"`` split. Usage::

    python benchmarks/bench_sampler.py [--quick] [--episodes N]
"""

from __future__ import annotations

import argparse
import random
import time
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import torch

from metaleep.data.base import ImageDataset
from metaleep.episodes import EpisodeSampler, EpisodeSpec

WAYS, SHOTS, QUERIES = 5, 5, 15
N_CLASSES, PER_CLASS = 100, 20


def _rate(draw: Callable[[int], Any], n: int, repeats: int) -> float:
    """Best-of-``repeats`` episodes per second of ``draw(i)`` for i in 0..n-1."""
    draw(0)  # warm up
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for i in range(n):
            draw(i)
        best = min(best, time.perf_counter() - start)
    return n / best


def _data() -> tuple[torch.Tensor, np.ndarray]:
    gen = np.random.default_rng(0)
    labels = np.repeat(np.arange(N_CLASSES), PER_CLASS)
    images = torch.from_numpy(gen.integers(0, 256, (labels.size, 1, 28, 28), dtype=np.uint8))
    return images, labels


def bench_learn2learn(images: torch.Tensor, labels: np.ndarray, n: int, repeats: int) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import learn2learn as l2l

    dataset = torch.utils.data.TensorDataset(images.float().div(255.0), torch.from_numpy(labels))
    meta = l2l.data.MetaDataset(dataset)
    taskset = l2l.data.Taskset(
        meta,
        task_transforms=[
            l2l.data.transforms.NWays(meta, n=WAYS),
            l2l.data.transforms.KShots(meta, k=SHOTS + QUERIES),
            l2l.data.transforms.LoadData(meta),
            l2l.data.transforms.RemapLabels(meta),
        ],
        num_tasks=-1,
    )
    random.seed(0)  # learn2learn draws from Python's global random only
    x, y = taskset.sample()
    if x.shape != (WAYS * (SHOTS + QUERIES), 1, 28, 28) or sorted(set(y.tolist())) != [
        0,
        1,
        2,
        3,
        4,
    ]:
        raise RuntimeError(f"unexpected learn2learn episode: {tuple(x.shape)}, {y.tolist()}")
    return _rate(lambda i: taskset.sample(), n, repeats)


def bench_metaleep(
    dataset: ImageDataset, spec: EpisodeSpec, n: int, repeats: int, *, classes: Any = None
) -> tuple[float, float]:
    sampler = EpisodeSampler(dataset, spec, classes=classes, seed=0)

    def with_images(i: int) -> tuple[torch.Tensor, torch.Tensor]:
        ep = sampler.sample(i)
        return dataset.batch(ep.support), dataset.batch(ep.query)

    return _rate(sampler.sample, n, repeats), _rate(with_images, n, repeats)


def bench_glyphs(n: int, repeats: int) -> tuple[float, float] | None:
    try:
        from metaleep.data.glyphs import load_glyphs
        from metaleep.data.splits import get_split
    except ImportError:
        return None
    dataset = load_glyphs()
    split = get_split(dataset, name="omniglot")
    return bench_metaleep(dataset, EpisodeSpec(5, 1, 15), n, repeats, classes=split.test)


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="Fewer episodes (a few seconds).")
    parser.add_argument("--episodes", type=int, default=None, help="Episodes per timing.")
    parser.add_argument("--no-glyphs", action="store_true", help="Skip the glyph data set.")
    args = parser.parse_args(argv)
    n = args.episodes or (300 if args.quick else 3000)
    repeats = 2 if args.quick else 3
    torch.set_num_threads(1)

    images, labels = _data()
    dataset = ImageDataset(
        images, labels, pd.DataFrame({"name": [str(c) for c in range(N_CLASSES)]}), "bench", "0"
    )
    spec = EpisodeSpec(WAYS, SHOTS, QUERIES)
    results = {"learn2learn": bench_learn2learn(images, labels, n, repeats)}
    results["metaleep_indices"], results["metaleep_with_images"] = bench_metaleep(
        dataset, spec, n, repeats
    )
    lines = [
        f"5-way {SHOTS}+{QUERIES} per class, {N_CLASSES} classes x {PER_CLASS}, {n} episodes, "
        f"best of {repeats}, 1 torch thread",
        f"  {'learn2learn Taskset (NWays, KShots, LoadData, RemapLabels)':60s}"
        f"{results['learn2learn']:8.0f} episodes/s",
    ]
    for key, label in (("metaleep_indices", "indices"), ("metaleep_with_images", "+ images")):
        ratio = results[key] / results["learn2learn"]
        lines.append(
            f"  {f'metaleep EpisodeSampler ({label})':60s}{results[key]:8.0f} episodes/s "
            f"({ratio:.1f}x learn2learn)"
        )
    if not args.no_glyphs:
        glyphs = bench_glyphs(n, repeats)
        if glyphs is None:
            lines.append("  glyph data set: not available (metaleep.data.glyphs missing)")
        else:
            results["glyphs_indices"], results["glyphs_with_images"] = glyphs
            lines.append(
                f"  {'metaleep, glyphs omniglot/test 5w1s15q (indices / + images)':60s}"
                f"{glyphs[0]:8.0f} / {glyphs[1]:.0f} episodes/s"
            )
    print("\n".join(lines))
    return results


if __name__ == "__main__":
    main()
