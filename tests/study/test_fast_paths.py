"""The study's fast paths against the straightforward ones they replace.

- MAML's inner loop (``maml_adapt``, ``maml_adapt_batch``: metaleep's one engine,
  ``metaleep.adapt.inner_loop``) against learn2learn's ``MAML.clone()`` / ``adapt`` loop,
  episode by episode: equal bit for bit.
- The runner (outputs once per distinct image, batched metrics with batched N-LEEP mixtures,
  batched head-only adaptation, MAML on one copy per chunk) against a plain per-episode study
  written here from the papers' equations: NumPy LEEP / NCE / H-score / LogME, scikit-learn's
  PCA and ``GaussianMixture`` for N-LEEP, an ``nn.Linear`` trained by ``torch.optim.SGD``,
  learn2learn for ANIL and MAML, the nearest class mean.
- The reuse count of the backbone outputs.
"""

from __future__ import annotations

import copy
import logging

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from metaleep.adapt.registry import maml_adapt, maml_adapt_batch
from metaleep.backbones.models import build_backbone
from metaleep.backbones.testing import toy_dataset
from metaleep.episodes import EpisodeSampler, EpisodeSpec
from metaleep.episodes.manifest import suite_from_episodes
from metaleep.study.config import StudyConfig
from metaleep.study.outputs import compute_outputs
from metaleep.study.runner import StudyBackbone, run_study

l2l = pytest.importorskip("learn2learn")

METRICS = ("leep", "nce", "h_score", "logme", "nleep")


# --------------------------------------------------------------------------------------------
# MAML: the engine's loop vs learn2learn
# --------------------------------------------------------------------------------------------


def learn2learn_maml(
    model: nn.Module,
    sx: torch.Tensor,
    sy: torch.Tensor,
    qx: torch.Tensor,
    *,
    steps: int,
    lr: float,
    train_mode: bool,
    first_order: bool = True,
) -> torch.Tensor:
    """learn2learn's loop on a deep copy (its clones share BatchNorm buffers)."""
    maml = l2l.algorithms.MAML(
        copy.deepcopy(model).train(train_mode),
        lr=lr,
        first_order=first_order,
        allow_unused=True,
    )
    learner = maml.clone()
    for _ in range(steps):
        learner.adapt(nn.functional.cross_entropy(learner(sx), sy))
    with torch.no_grad():
        return learner(qx)


def _image_episodes(
    episodes: int, ways: int, dtype: torch.dtype, seed: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    sy = torch.arange(ways).repeat(episodes, 1)
    qy = torch.arange(ways).repeat_interleave(3).repeat(episodes, 1)
    centres = torch.rand(episodes, ways, 1, 28, 28, generator=gen)
    pick = torch.arange(episodes)[:, None]
    sx = centres[pick, sy] + 0.3 * torch.rand(episodes, ways, 1, 28, 28, generator=gen)
    qx = centres[pick, qy] + 0.3 * torch.rand(episodes, 3 * ways, 1, 28, 28, generator=gen)
    return sx.to(dtype), sy, qx.to(dtype), qy


class _WithUnused(nn.Module):
    """conv2-8 plus a parameter the forward pass never uses."""

    def __init__(self) -> None:
        super().__init__()
        net = build_backbone("conv2-8", out_features=4, seed=3)
        self.features, self.classifier = net.features, net.classifier
        self.unused = nn.Parameter(torch.ones(3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("batch_norm", ["transductive", "running"])
def test_lean_maml_equals_learn2learn_bit_for_bit(dtype: torch.dtype, batch_norm: str) -> None:
    model = build_backbone("conv2-8", out_features=4, seed=1).to(dtype).eval()
    with torch.no_grad():  # non-trivial running statistics for the "running" mode
        model.train()(torch.rand(16, 1, 28, 28, dtype=dtype))
        model.eval()
    sx, sy, qx, qy = _image_episodes(3, 4, dtype, seed=1)
    batch = maml_adapt_batch(
        model, sx, sy, qx, qy, steps=3, lr=0.4, batch_norm=batch_norm, vectorize=False
    )
    for e in range(3):
        expected = learn2learn_maml(
            model, sx[e], sy[e], qx[e], steps=3, lr=0.4, train_mode=batch_norm == "transductive"
        )
        single = maml_adapt(
            model, sx[e], sy[e], qx[e], qy[e], steps=3, lr=0.4, batch_norm=batch_norm
        )
        assert torch.equal(single.logits, expected)
        assert torch.equal(batch.logits[e], expected)
        assert batch.accuracy[e] == float((expected.argmax(1) == qy[e]).double().mean())


def test_lean_maml_with_unused_parameter_and_second_order_reference() -> None:
    model = _WithUnused().double()
    sx, sy, qx, qy = _image_episodes(2, 4, torch.float64, seed=2)
    result = maml_adapt_batch(model, sx, sy, qx, qy, steps=2, lr=0.5, vectorize=False)
    for e in range(2):
        first = learn2learn_maml(model, sx[e], sy[e], qx[e], steps=2, lr=0.5, train_mode=True)
        second = learn2learn_maml(
            model, sx[e], sy[e], qx[e], steps=2, lr=0.5, train_mode=True, first_order=False
        )
        assert torch.equal(result.logits[e], first)
        torch.testing.assert_close(result.logits[e], second, rtol=0, atol=1e-12)
    assert torch.equal(model.unused, torch.ones(3, dtype=torch.float64))


# --------------------------------------------------------------------------------------------
# The runner vs a plain per-episode study
# --------------------------------------------------------------------------------------------


def softmax(logits: np.ndarray) -> np.ndarray:
    z = np.exp(logits - logits.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


def leep_ref(probs: np.ndarray, y: np.ndarray) -> float:
    """Nguyen et al. 2020, eq. 1-2: empirical joint, conditional, log expected prediction."""
    n = len(y)
    joint = np.stack([probs[y == c].sum(axis=0) / n for c in range(y.max() + 1)])  # (C, Z)
    conditional = np.divide(joint, joint.sum(0), out=np.zeros_like(joint), where=joint.sum(0) > 0)
    return float(np.mean(np.log((probs @ conditional.T)[np.arange(n), y])))


def nce_ref(probs: np.ndarray, y: np.ndarray) -> float:
    """Tran et al. 2019: -H(Y | Z) over hard source labels."""
    z = probs.argmax(axis=1)
    total = 0.0
    for source in np.unique(z):
        members = y[z == source]
        for target in np.unique(members):
            p_joint = np.mean((z == source) & (y == target))
            total += p_joint * np.log(np.mean(members == target))
    return total


def h_score_ref(f: np.ndarray, y: np.ndarray) -> float:
    """Bao et al. 2019: tr(pinv(cov f) cov g), g the class means."""
    g = np.stack([f[y == c].mean(axis=0) for c in y])
    return float(
        np.trace(np.linalg.pinv(np.cov(f, rowvar=False), rcond=1e-15) @ np.cov(g, rowvar=False))
    )


def logme_ref(f: np.ndarray, y: np.ndarray) -> float:
    """You et al. 2021, MacKay fixed point per class (metaleep's conventions, see logme.py)."""
    n, dim = f.shape
    sigma, v = np.linalg.eigh(f.T @ f)
    sigma = np.clip(sigma, 0, None)
    out = []
    for c in np.unique(y):
        t_y = (y == c).astype(float)
        alpha = beta = 1.0
        for _ in range(11):
            t = alpha / beta
            m = v @ (beta * (v.T @ (f.T @ t_y)) / (alpha + beta * sigma))
            gamma = np.sum(beta * sigma / (alpha + beta * sigma))
            m2, res2 = m @ m, np.sum((f @ m - t_y) ** 2)
            alpha, beta = gamma / (m2 + 1e-5), (n - gamma) / (res2 + 1e-5)
            if abs(alpha / beta - t) <= 1e-3 * t:
                break
        evidence = (
            dim / 2 * np.log(alpha)
            + n / 2 * np.log(beta)
            - 0.5 * np.sum(np.log(alpha + beta * sigma))
            - beta / 2 * res2
            - alpha / 2 * m2
            - n / 2 * np.log(2 * np.pi)
        )
        out.append(evidence / n)
    return float(np.mean(out))


def nleep_ref(f: np.ndarray, y: np.ndarray, seed: int) -> float:
    """Li et al. 2021: PCA by SVD, scikit-learn's mixture, in metaleep's conventions.

    The PCA scores are computed with nleep.py's operations on purpose: k-means++ meets exact
    ties (isolated pairs of samples) that last-bit differences, e.g. from scikit-learn's
    ``PCA``, break either way, and N-LEEP jumps with them.
    """
    from sklearn.mixture import GaussianMixture

    order = np.lexsort(f.T[::-1])
    centred = f[order] - f[order].mean(0)
    _, s, vh = np.linalg.svd(centred, full_matrices=False)
    variance = (s / s[0]) ** 2
    keep = int(np.searchsorted(np.cumsum(variance) / variance.sum(), 0.8, side="right")) + 1
    scores = (centred / (s[0] / np.sqrt(len(f)))) @ vh[:keep].T
    k = max(1, min(5 * len(np.unique(y)), len(f) // 2))
    post = GaussianMixture(k, covariance_type="full", random_state=seed).fit(scores)
    probs = np.empty((len(f), k))
    probs[order] = post.predict_proba(scores)
    return leep_ref(probs, y)


def scored(logits: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    return (
        float((logits.argmax(1) == y).double().mean()),
        float(nn.functional.cross_entropy(logits, y)),
    )


def accelerated_head(head: nn.Linear, sf: torch.Tensor, sy: torch.Tensor) -> nn.Linear:
    """100 steps of Nesterov's accelerated gradient of size 1 / L, L = s_max([X, 1])^2 / 2n,
    on the support cross-entropy, with autograd; the head is changed in place and returned."""
    params = [head.weight, head.bias]
    previous = [q.detach().clone() for q in params]
    augmented = np.hstack([sf.numpy(), np.ones((len(sf), 1))])
    size = 2 * len(sf) / np.linalg.norm(augmented, 2) ** 2
    for k in range(1, 101):
        grads = torch.autograd.grad(nn.functional.cross_entropy(head(sf), sy), params)
        with torch.no_grad():
            for q, g, last in zip(params, grads, previous, strict=True):
                new = q - size * g
                q.copy_(new + (k - 1) / (k + 2) * (new - last))
                last.copy_(new)
    with torch.no_grad():
        for q, last in zip(params, previous, strict=True):
            q.copy_(last)
    return head


def naive_study(dataset, episodes, backbones) -> pd.DataFrame:
    """One episode at a time: forward, metrics, adaptation; nothing shared."""
    rows = []
    for b in backbones:
        model = b.model.eval()
        with torch.no_grad():  # source prototypes and the scale-free temperature
            source = [
                model.features(dataset.batch(dataset.labels_to_indices[int(c)]).double())
                for c in b.source_classes
            ]
            protos = torch.stack([f.mean(0) for f in source])
            nearest = torch.cat([torch.cdist(f, protos).pow(2).min(1).values for f in source])
            temperature = float(torch.sort(nearest).values[(len(nearest) - 1) // 2])
        for ep in episodes:
            sx, qx = dataset.batch(ep.support).double(), dataset.batch(ep.query).double()
            sy, qy = torch.as_tensor(ep.support_labels), torch.as_tensor(ep.query_labels)
            y = ep.support_labels
            with torch.no_grad():
                sf, qf = model.features(sx).double(), model.features(qx).double()
                head = model.classifier(sf).numpy()
                proto = (-torch.cdist(sf, protos).pow(2) / temperature).numpy()
            modes = {"prototypes": softmax(proto)}
            modes["head" if b.algorithm == "fomaml" else "source"] = softmax(head)
            seed = int(np.random.SeedSequence(0, spawn_key=(ep.index,)).generate_state(1)[0])
            shared = {
                "h_score": h_score_ref(sf.numpy(), y),
                "logme": logme_ref(sf.numpy(), y),
                "nleep": nleep_ref(sf.numpy(), y, seed),
            }
            results = {}
            if b.algorithm == "fomaml":
                results["maml"] = scored(
                    learn2learn_maml(model, sx, sy, qx, steps=5, lr=b.inner["lr"], train_mode=True),
                    qy,
                )
                # ANIL on a MAML backbone: the same solver from the meta-learned head
                anil = accelerated_head(copy.deepcopy(model.classifier).double(), sf, sy)
                results["anil"] = scored(anil(qf).detach(), qy)
            linear = nn.Linear(sf.shape[1], 5).double()
            nn.init.zeros_(linear.weight)
            nn.init.zeros_(linear.bias)
            results["retrain_head"] = scored(accelerated_head(linear, sf, sy)(qf).detach(), qy)
            means = torch.stack([sf[sy == c].mean(0) for c in range(5)])
            results["prototype"] = scored(-torch.cdist(qf, means).pow(2), qy)
            for mode, probs in modes.items():
                values = {**shared, "leep": leep_ref(probs, y), "nce": nce_ref(probs, y)}
                for method, (accuracy, loss) in results.items():
                    rows.append(
                        {
                            "episode": ep.index,
                            "backbone": b.name,
                            "dummy": mode,
                            "adaptation": method,
                            **values,
                            "accuracy": accuracy,
                            "loss": loss,
                        }
                    )
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def study():
    dataset = toy_dataset(classes=20, per_class=8, seed=4)
    spec = EpisodeSpec(ways=5, shots=2, queries=3)
    pool = np.arange(10, 20)
    episodes = EpisodeSampler(dataset, spec, classes=pool, seed=5).sample_many(6)
    suite = suite_from_episodes(
        episodes,
        [spec] * 6,
        name="toy",
        dataset=dataset,
        split="toy",
        part="test",
        pool=pool,
        seed=5,
    )
    backbones = [
        StudyBackbone(
            "maml",
            build_backbone("conv2-8", out_features=5, seed=1).double(),
            "fomaml",
            np.arange(10),
            fingerprint="m",
            inner={"lr": 0.3},
            source_data=dataset,
        ),
        StudyBackbone(
            "supervised",
            build_backbone("conv2-8", out_features=10, seed=2).double(),
            "supervised",
            np.arange(10),
            fingerprint="s",
            source_data=dataset,
        ),
    ]
    return dataset, suite, backbones


def test_runner_equals_plain_per_episode_study(study, tmp_path) -> None:
    dataset, suite, backbones = study
    config = StudyConfig(
        suite="toy",
        backbones=("maml", "supervised"),
        chunk_size=4,
        adaptations=("maml", "anil", "retrain_head", "prototype"),
    )
    fast = run_study(
        config,
        out_dir=tmp_path,
        dataset=dataset,
        suite=suite,
        backbones=backbones,
        analyse=False,
        progress=False,
    ).table
    naive = naive_study(dataset, suite.episodes, backbones)
    keys = ["episode", "backbone", "dummy", "adaptation"]
    a, b = fast.set_index(keys).sort_index(), naive.set_index(keys).sort_index()
    assert a.index.equals(b.index)
    assert len(a) == 6 * (2 * 4 + 2 * 2)
    for metric in ("leep", "nce", "h_score", "nleep"):
        np.testing.assert_allclose(a[metric], b[metric], rtol=0, atol=1e-9, err_msg=metric)
    np.testing.assert_allclose(a["logme"], b["logme"], rtol=1e-8, atol=1e-10)
    np.testing.assert_array_equal(a["accuracy"], b["accuracy"])
    np.testing.assert_allclose(a["loss"], b["loss"], rtol=1e-9, atol=1e-10)


# --------------------------------------------------------------------------------------------
# Compute once: the reuse count
# --------------------------------------------------------------------------------------------


def test_outputs_count_references_and_log_the_reuse(study, caplog) -> None:
    dataset, suite, backbones = study
    referenced = np.concatenate([np.concatenate([e.support, e.query]) for e in suite.episodes])
    with caplog.at_level(logging.INFO, logger="metaleep.study.outputs"):
        outputs = compute_outputs(backbones[0].model, dataset, referenced, modes=("head",))
    distinct = np.unique(referenced)
    np.testing.assert_array_equal(outputs.images, distinct)
    assert outputs.references == len(referenced) == 6 * 25
    assert outputs.reuse == pytest.approx(len(referenced) / len(distinct))
    assert f"{len(distinct)} distinct images for {len(referenced)} image references" in (
        caplog.text
    )
    with torch.no_grad():  # and each distinct image's row is its own forward pass
        direct = backbones[0].model.features(dataset.batch(distinct[:7]).double()).numpy()
    np.testing.assert_allclose(outputs.features[:7], direct, rtol=0, atol=1e-12)
    unique_only = compute_outputs(backbones[0].model, dataset, distinct, modes=())
    assert unique_only.references == len(distinct)
    assert unique_only.reuse == 1.0
