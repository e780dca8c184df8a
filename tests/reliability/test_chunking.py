"""Exactly independent of chunking (issue 20, item 7): an episode's numbers are the same bits
whichever other episodes share its batched call, wherever it is in the batch.

Three levels: the batched products and factorisations the metrics and adaptations use
(:mod:`metaleep._exact`); every registry metric and every feature-based adaptation, on batches
split in different ways; and a whole study on a suite of mixed ways, whose ``results.csv`` and
``correlations.csv`` are byte-identical for chunk sizes 1, 7 and 200 (before the fix,
``glyphs-mixed`` gave other LEEP, H-score, LogME, TransRate, SFDA values and head-adaptation
losses for chunk sizes 7 and 200).
"""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
import torch

from metaleep._exact import matmul, per_matrix
from metaleep.adapt.registry import ADAPTATIONS, get_adaptation
from metaleep.metrics.registry import METRICS

# ----------------------------------------------------------------------------- the primitives


def _alone(function, *batches):
    """``function`` on each matrix as a batch of one (its own fresh storage)."""
    return [function(*(b[i : i + 1].clone() for b in batches)) for i in range(len(batches[0]))]


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_matmul_gives_each_matrix_its_bits_alone(dtype):
    generator = torch.Generator().manual_seed(0)
    shapes = itertools.product([1, 2, 5, 25], [1, 3, 17, 33, 65], [1, 2, 5, 20])
    for m, k, n in shapes:
        a = torch.randn(7, m, k, generator=generator, dtype=dtype)
        b = torch.randn(7, n, k, generator=generator, dtype=dtype).transpose(1, 2)
        full = matmul(a, b)
        torch.testing.assert_close(full, torch.bmm(a, b))  # the product (to rounding)
        for i, one in enumerate(_alone(matmul, a, b)):
            assert torch.equal(full[i], one[0]), (m, k, n, i)
        assert torch.equal(matmul(a[2:5], b[2:5]), full[2:5])


def test_matmul_keeps_leading_dimensions_and_checks_shapes():
    a, b = torch.ones(2, 3, 4, 5), torch.ones(2, 3, 5, 6)
    assert matmul(a, b).shape == (2, 3, 4, 6)
    assert bool((matmul(a, b) == 5).all())
    with pytest.raises(ValueError, match=r"^`b` must be of shape \(\.\.\., 5, n\) with a's"):
        matmul(a, torch.ones(2, 3, 4, 6))


def test_per_matrix_gives_each_matrix_its_bits_alone():
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(9, 7, 17, generator=generator, dtype=torch.float64)
    spd = x @ x.transpose(1, 2) + torch.eye(7, dtype=torch.float64)
    cases = {
        "svd": (lambda m: torch.linalg.svd(m, full_matrices=False), (x,)),
        "eigvalsh": (torch.linalg.eigvalsh, (spd,)),
        "cholesky": (torch.linalg.cholesky_ex, (spd,)),
        "solve": (torch.linalg.solve, (spd, x)),
    }
    for name, (function, batches) in cases.items():
        full = per_matrix(function, *batches)
        parts = full if isinstance(full, tuple) else (full,)
        alone_results = _alone(lambda *m, f=function: per_matrix(f, *m), *batches)
        for i, one in enumerate(alone_results):
            alone = one if isinstance(one, tuple) else (one,)
            assert all(torch.equal(p[i], q[0]) for p, q in zip(parts, alone, strict=True)), name
    empty = per_matrix(torch.linalg.eigvalsh, spd[:0])
    assert isinstance(empty, torch.Tensor) and empty.shape == (0, 7)


# ----------------------------------------------------------------------------- every metric

SHAPES = [  # (ways, shots, feature dim d, source labels Z): the study's episode shapes
    (5, 1, 32, 5),
    (5, 5, 32, 5),
    (2, 2, 32, 64),
    (10, 5, 64, 762),
    (20, 1, 32, 762),
    (20, 5, 32, 762),
]


def _batch(ways, shots, dim, width, episodes=16, seed=0):
    rng = np.random.default_rng(seed)
    n = ways * shots
    scale = rng.uniform(0.5, 3.0, size=(episodes, 1, 1))
    features = rng.normal(size=(episodes, n, dim)) * scale
    logits = rng.normal(size=(episodes, n, width)) * 3.0
    labels = np.tile(np.repeat(np.arange(ways), shots), (episodes, 1))
    return features, logits, labels


def _seed(episode):
    """The study's seed of an episode (N-LEEP's mixture): a function of (seed, episode)."""
    return int(np.random.SeedSequence(0, spawn_key=(episode,)).generate_state(1)[0])


def _score(spec, x, labels, first, kernel):
    seeds = [_seed(first + i) for i in range(len(x))]
    options = {"seed": seeds, "from_logits": True, "kernel": kernel}
    return np.asarray(spec.score_batch(x, labels, **spec.select_options(options)))


@pytest.mark.parametrize("name", list(METRICS))
def test_every_metric_is_the_same_bits_in_any_batch(name):
    """Each registry metric with the study's options (the kernel off and on for LEEP/NCE):
    16 episodes scored at once, as 7 + 9, as 3 + 13 and one by one give equal arrays."""
    spec = METRICS[name]
    kernels = (False, True) if "kernel" in spec.options else (False,)
    for (ways, shots, dim, width), kernel in itertools.product(SHAPES, kernels):
        features, logits, labels = _batch(ways, shots, dim, width)
        x = logits if spec.input_kind == "probs" else features
        whole = _score(spec, x, labels, 0, kernel)
        for cuts in ([7], [3], list(range(1, len(x)))):
            bounds = [0, *cuts, len(x)]
            parts = [
                _score(spec, x[lo:hi], labels[lo:hi], lo, kernel)
                for lo, hi in itertools.pairwise(bounds)
            ]
            split = np.concatenate(parts)
            assert np.array_equal(whole, split, equal_nan=True), (ways, shots, dim, width, cuts)


def _adapt(spec, episodes, lo, hi):
    """``(accuracy, loss, support_loss, start_logit_std)`` of episodes ``lo:hi``."""
    support, ys, query, yq, ways, head = episodes
    out = spec.run_batch(support[lo:hi], ys[lo:hi], query[lo:hi], yq[lo:hi], ways=ways, head=head)
    fields = (out.accuracy, out.loss, out.support_loss, out.start_logit_std)
    return [np.asarray(f, dtype=np.float64) for f in fields]


@pytest.mark.parametrize("name", [n for n in ADAPTATIONS if not ADAPTATIONS[n].needs_model])
def test_every_feature_adaptation_is_the_same_bits_in_any_batch(name):
    spec = get_adaptation(name)
    for ways, shots, dim, _ in SHAPES[:4]:
        rng = np.random.default_rng(3)
        count, queries = 9, 3
        head = None
        if spec.needs_head:
            head = (torch.as_tensor(rng.normal(size=(ways, dim))), torch.zeros(ways).double())
        episodes = (
            torch.as_tensor(rng.normal(size=(count, ways * shots, dim))),
            torch.arange(ways).repeat_interleave(shots).repeat(count, 1),
            torch.as_tensor(rng.normal(size=(count, ways * queries, dim))),
            torch.arange(ways).repeat_interleave(queries).repeat(count, 1),
            ways,
            head,
        )
        whole = _adapt(spec, episodes, 0, count)
        for i in range(count):
            alone = _adapt(spec, episodes, i, i + 1)
            for field, one in zip(whole, alone, strict=True):
                assert np.array_equal(field[i : i + 1], one, equal_nan=True), (name, ways, i)


# ----------------------------------------------------------------------------- a whole study


@pytest.fixture(scope="module")
def mixed_study():
    """A toy suite of mixed ways and shots (the study groups a chunk's episodes by shape, so
    each chunk size makes other groups), two toy backbones and every default metric."""
    from metaleep.backbones.models import build_backbone
    from metaleep.backbones.testing import toy_dataset, toy_split
    from metaleep.episodes.suites import SpecMix, SuiteRecipe, build_suite
    from metaleep.study.runner import StudyBackbone

    dataset = toy_dataset(classes=20, per_class=8, seed=1)
    mix = SpecMix(ways=(2, 3, 5), shots=(1, 2), queries=(3,), alphabets=("any",))
    recipe = SuiteRecipe("toy-mixed", 30, mix, seed=4, split="toy", part="test", dataset="toy")
    suite = build_suite(recipe, dataset, toy_split(dataset))  # classes 15-19: held out
    assert len({ep.ways for ep in suite.episodes}) == 3
    torch.manual_seed(0)
    maml = build_backbone("conv2-8", out_features=5).double().eval()
    supervised = build_backbone("conv2-8", out_features=10).double().eval()
    backbones = [
        StudyBackbone("maml", maml, "fomaml", np.arange(10), "m", source_data=dataset),
        StudyBackbone("supervised", supervised, "supervised", np.arange(10), "s"),
    ]
    return dataset, suite, backbones


def _study_files(mixed_study, out, chunk_size):
    from metaleep.study.config import StudyConfig
    from metaleep.study.runner import run_study

    dataset, suite, backbones = mixed_study
    config = StudyConfig(
        suite="toy-mixed",
        adaptations=("anil", "retrain_head", "prototype"),
        chunk_size=chunk_size,
        temperature=2.0,
    )
    run_study(
        config,
        out_dir=out,
        dataset=dataset,
        suite=suite,
        backbones=backbones,
        progress=False,
        n_boot=50,
    )
    table = pd.read_csv(out / "results.csv", dtype=str, keep_default_na=False)
    timing = [c for c in table.columns if c.startswith("seconds_")]
    return table.drop(columns=timing), (out / "correlations.csv").read_bytes()


@pytest.mark.slow
def test_a_mixed_ways_study_is_byte_identical_for_any_chunk_size(mixed_study, tmp_path):
    """Every column but the timings, as text, for chunk sizes 200, 7 and 1; and the
    correlations computed from them."""
    reference, correlations = _study_files(mixed_study, tmp_path / "c200", 200)
    assert len(reference) > 0
    for size in (7, 1):
        table, corr = _study_files(mixed_study, tmp_path / f"c{size}", size)
        pd.testing.assert_frame_equal(table, reference)
        assert corr == correlations
