"""The naive way to run a meta-transfer study: one episode at a time, nothing shared.

This is the baseline of ``benchmarks/bench_study.py``, written the way one would write a study
without metaleep: for each episode,

1. forward the support set (and, for adaptation, the query set) through the backbone;
2. compute each metric with its own per-episode NumPy function (TLlib's ``tllib/ranking``
   style for LEEP, NCE and the H-score, LogME from the equations of You et al., N-LEEP with
   an SVD and scikit-learn's ``GaussianMixture``);
3. adapt: learn2learn ``MAML`` ``clone``/``adapt`` on the whole network (``maml``) or on the
   head (``anil``), a ``torch.nn.Linear`` trained with ``torch.optim.SGD`` (``retrain_head``),
   or the nearest class mean (``prototype``), then evaluate the query set.

It computes the same quantities as :func:`metaleep.study.runner.run_study` under the same
conventions, so that the two can be checked against each other:

- dummy labels: ``softmax(classifier(f(x)))`` (``head``/``source``) or
  ``softmax(-‖f(x) − μ_z‖² / T)`` over the source-class prototypes (``prototypes``), T the
  lower median squared distance of the source images to their nearest prototype (what
  ``torch.median`` returns);
- LogME sums ``log(α + β σ_i)`` over all D eigenvalues of FᵀF (metaleep's documented choice;
  TLlib and thuml/LogME sum over min(n, D) of them);
- N-LEEP: samples in lexicographic order, PCA (SVD) keeping more than 80 % of the variance,
  scores in units of the first component's standard deviation, 5·C components clipped to
  n // 2, the episode's seed ``SeedSequence(seed, spawn_key=(episode,))`` (metaleep's
  documented conventions), scikit-learn's ``GaussianMixture``;
- ``retrain_head`` and ``anil``: 100 steps of Nesterov's accelerated gradient of size
  ``1 / L``, ``L = σ_max([X, 1])² / (2 n)`` (the curvature bound of the mean cross-entropy),
  momentum ``(k − 1) / (k + 2)`` at step k = 1, 2, …, gradients by autograd on an
  ``nn.Linear``, from a zero head (``retrain_head``) or a copy of the meta-learned head
  (``anil``); learn2learn's ``adapt`` takes plain gradient steps only, so it is not used here;
- ``maml``: learn2learn ``MAML`` ``clone``/``adapt`` with the inner loop the backbone was
  trained with (its steps and lr), first order (no outer step follows, so the adapted weights
  are those of the second-order loop), BatchNorm on batch statistics (train mode), on a deep
  copy of the model.

Metrics: the five above (the study's defaults since added shrinkage H-score, GBC, TransRate,
SFDA and the centroid leave-one-out baseline; the whole-study comparison keeps to these five).

Nothing here is computed once for several episodes except the source prototypes (one pass
over the source classes, class by class), which any implementation needs once.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

# ------------------------------------------------------------------------------ metrics


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax of a (n, Z) array."""
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def leep(probs: np.ndarray, labels: np.ndarray) -> float:
    """LEEP (Nguyen et al., 2020) as TLlib computes it, zero-mass source labels skipped."""
    n, n_source = probs.shape
    n_target = int(labels.max()) + 1
    joint = np.zeros((n_target, n_source))
    for y in range(n_target):
        joint[y] = probs[labels == y].sum(axis=0) / n
    marginal = joint.sum(axis=0, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        conditional = np.where(marginal > 0, joint / marginal, 0.0).T  # (Z, C): P(y | z)
    expected = probs @ conditional
    return float(np.mean(np.log([expected[i, labels[i]] for i in range(n)])))


def nce(probs: np.ndarray, labels: np.ndarray) -> float:
    """NCE (Tran et al., 2019) on the arg-max source labels, as TLlib computes it."""
    source = probs.argmax(axis=1)
    n = len(labels)
    joint = np.zeros((int(labels.max()) + 1, probs.shape[1]))
    for z, y in zip(source, labels, strict=True):
        joint[y, z] += 1.0 / n
    marginal = joint.sum(axis=0)
    total = 0.0
    for z in np.flatnonzero(marginal):
        for y in np.flatnonzero(joint[:, z]):
            total += joint[y, z] * np.log(joint[y, z] / marginal[z])
    return float(total)


def h_score(features: np.ndarray, labels: np.ndarray) -> float:
    """H-score (Bao et al., 2019) as TLlib computes it: tr(pinv(cov f) cov g)."""
    cov_f = np.cov(features, rowvar=False)
    g = np.zeros_like(features)
    for y in np.unique(labels):
        g[labels == y] = features[labels == y].mean(axis=0)
    cov_g = np.cov(g, rowvar=False)
    return float(np.trace(np.linalg.pinv(cov_f, rcond=1e-15) @ cov_g))


def logme(features: np.ndarray, labels: np.ndarray) -> float:
    """LogME (You et al., 2021), MacKay's fixed point per class, from the paper's equations.

    α = β = 1 at the start, at most 11 updates, stop when α/β moves by <= 1e-3 relative,
    1e-5 added to mᵀm and ‖F m − y‖²; log|A| over all D eigenvalues of FᵀF.
    """
    f = features
    n, dim = f.shape
    sigma, vectors = np.linalg.eigh(f.T @ f)
    sigma = np.clip(sigma, 0.0, None)
    evidences = []
    for c in np.unique(labels):
        y = (labels == c).astype(np.float64)
        projected = vectors.T @ (f.T @ y)
        alpha, beta = 1.0, 1.0
        t = alpha / beta
        for _ in range(11):
            gamma = float(np.sum(beta * sigma / (alpha + beta * sigma)))
            m = vectors @ (beta * projected / (alpha + beta * sigma))
            m2 = float(m @ m)
            res2 = float(np.sum((f @ m - y) ** 2))
            alpha = gamma / (m2 + 1e-5)
            beta = (n - gamma) / (res2 + 1e-5)
            new_t = alpha / beta
            if abs(new_t - t) <= 1e-3 * t:
                break
            t = new_t
        evidence = (
            dim / 2 * np.log(alpha)
            + n / 2 * np.log(beta)
            - 0.5 * np.sum(np.log(alpha + beta * sigma))
            - beta / 2 * res2
            - alpha / 2 * m2
            - n / 2 * np.log(2 * np.pi)
        )
        evidences.append(evidence / n)
    return float(np.mean(evidences))


def nleep(features: np.ndarray, labels: np.ndarray, seed: int) -> float:
    """N-LEEP (Li et al., 2021): LEEP of scikit-learn Gaussian-mixture posteriors on PCA scores.

    The PCA is the SVD of the centred features, written with the same operations as metaleep's
    (not scikit-learn's ``PCA``, whose scores differ in the last bits): N-LEEP is discontinuous
    where k-means++ meets an exact tie (two isolated nearby samples give the same potential
    whichever is chosen, common in 2-shot episodes), which rounding at 1e-16 breaks either way.
    """
    from sklearn.mixture import GaussianMixture

    order = np.lexsort(features.T[::-1])
    ordered = features[order]
    n = len(ordered)
    if np.all(ordered == ordered[0]):
        posteriors = np.ones((n, 1))
    else:
        centred = ordered - ordered.mean(0)
        _, s, vh = np.linalg.svd(centred, full_matrices=False)
        variance = (s / s[0]) ** 2
        keep = int(np.searchsorted(np.cumsum(variance) / variance.sum(), 0.8, side="right")) + 1
        scores = (centred / (s[0] / np.sqrt(n))) @ vh[: min(keep, len(s))].T
        k = max(1, min(5 * len(np.unique(labels)), n // 2))
        mixture = GaussianMixture(n_components=k, covariance_type="full", random_state=seed)
        posteriors = mixture.fit(scores).predict_proba(scores)
    unsorted = np.empty_like(posteriors)
    unsorted[order] = posteriors
    return leep(unsorted, labels)


def episode_seed(seed: int, episode: int) -> int:
    """The seed of episode ``episode``'s stochastic metrics: ``SeedSequence(seed, (episode,))``."""
    return int(np.random.SeedSequence(seed, spawn_key=(episode,)).generate_state(1)[0])


# ------------------------------------------------------------------------------ adaptation


def query_scores(logits: torch.Tensor, labels: torch.Tensor) -> tuple[float, float]:
    """Query accuracy and mean cross-entropy of (n_q, N) logits."""
    labels = labels.to(logits.device)
    accuracy = int((logits.argmax(dim=1) == labels).sum()) / len(labels)
    loss = float(nn.functional.cross_entropy(logits, labels))
    return accuracy, loss


def accelerated_head(head: nn.Linear, sf: torch.Tensor, sy: torch.Tensor, steps: int) -> None:
    """Train ``head`` in place: Nesterov's accelerated gradient on the support cross-entropy.

    Step size ``1 / L`` with ``L = σ_max([X, 1])² / (2 n)``; for k = 1, ..., ``steps``:
    ``H_k = Y_{k-1} − ∇J(Y_{k-1}) / L`` and ``Y_k = H_k + (k − 1) / (k + 2) (H_k − H_{k-1})``,
    ``Y_0 = H_0`` the initial head; the head ends at ``H_steps``.
    """
    n = sf.shape[0]
    augmented = torch.cat([sf, torch.ones(n, 1, dtype=sf.dtype, device=sf.device)], dim=1)
    step = 1.0 / (np.linalg.norm(augmented.cpu().numpy(), 2) ** 2 / (2 * n))
    params = [head.weight, head.bias]
    last = [p.detach().clone() for p in params]  # H_{k-1}
    for k in range(1, steps + 1):
        loss = nn.functional.cross_entropy(head(sf), sy)  # at Y_{k-1}, held in ``head``
        grads = torch.autograd.grad(loss, params)
        with torch.no_grad():
            for p, g, previous in zip(params, grads, last, strict=True):
                new = p - step * g
                p.copy_(new + (k - 1) / (k + 2) * (new - previous))
                previous.copy_(new)
    with torch.no_grad():
        for p, final in zip(params, last, strict=True):
            p.copy_(final)


def retrain_head(
    sf: torch.Tensor,
    sy: torch.Tensor,
    qf: torch.Tensor,
    qy: torch.Tensor,
    ways: int,
    steps: int = 100,
) -> tuple[float, float]:
    """A zero-initialised ``nn.Linear`` trained by :func:`accelerated_head`."""
    head = nn.Linear(sf.shape[1], ways).to(sf.device, sf.dtype)
    nn.init.zeros_(head.weight)
    nn.init.zeros_(head.bias)
    accelerated_head(head, sf, sy, steps)
    with torch.no_grad():
        return query_scores(head(qf), qy)


def anil(
    head: nn.Linear,
    sf: torch.Tensor,
    sy: torch.Tensor,
    qf: torch.Tensor,
    qy: torch.Tensor,
    steps: int = 100,
) -> tuple[float, float]:
    """ANIL: a copy of the meta-learned head trained by :func:`accelerated_head`."""
    learner = copy.deepcopy(head).to(sf.dtype)
    accelerated_head(learner, sf, sy, steps)
    with torch.no_grad():
        return query_scores(learner(qf), qy)


def prototype(
    sf: np.ndarray, sy: np.ndarray, qf: np.ndarray, qy: np.ndarray, ways: int
) -> tuple[float, float]:
    """Nearest class mean: logits −‖x − c_k‖²."""
    means = np.stack([sf[sy == k].mean(axis=0) for k in range(ways)])
    logits = -((qf[:, None, :] - means[None, :, :]) ** 2).sum(axis=2)
    return query_scores(torch.from_numpy(logits), torch.from_numpy(qy))


def maml(
    learner_source: Any,
    sx: torch.Tensor,
    sy: torch.Tensor,
    qx: torch.Tensor,
    qy: torch.Tensor,
    steps: int,
) -> tuple[float, float]:
    """learn2learn's MAML inner loop on the whole network: ``clone()``, ``adapt`` per step."""
    learner = learner_source.clone()
    for _ in range(steps):
        learner.adapt(nn.functional.cross_entropy(learner(sx), sy))
    with torch.no_grad():
        return query_scores(learner(qx), qy)


# ------------------------------------------------------------------------------ the study


@dataclass
class NaiveBackbone:
    """What the naive study needs of a backbone (mirrors ``StudyBackbone``); ``lr`` and
    ``steps`` are the inner loop it was meta-trained with, which ``maml`` repeats."""

    name: str
    model: nn.Module
    algorithm: str
    source_classes: np.ndarray
    lr: float = 0.4
    steps: int = 1


def source_prototypes(
    model: nn.Module, dataset: Any, classes: np.ndarray, device: str = "cpu"
) -> tuple[torch.Tensor, float]:
    """Source-class prototypes (Z, d) float64, class by class, and the lower-median temperature."""
    feats, prototypes = [], []
    with torch.no_grad():
        for c in classes:
            images = dataset.batch(dataset.labels_to_indices[int(c)]).to(device)
            f = model.features(images).double()
            feats.append(f)
            prototypes.append(f.mean(dim=0))
    protos = torch.stack(prototypes)
    nearest = torch.cat([torch.cdist(f, protos).pow(2).min(dim=1).values for f in feats])
    ordered = torch.sort(nearest).values
    return protos, float(ordered[(len(ordered) - 1) // 2].clamp_min(1e-12))


def run_naive_study(
    dataset: Any,
    episodes: Sequence[Any],
    backbone: NaiveBackbone,
    *,
    dummies: Sequence[str],
    adaptations: Sequence[str],
    metrics: Sequence[str],
    seed: int = 0,
    device: str = "cpu",
) -> pd.DataFrame:
    """One row per (episode, dummy, adaptation) with the metric values, accuracy and loss.

    The model runs on ``device`` (forward passes, head training, MAML); the metrics in NumPy.
    """
    unknown = sorted(set(adaptations) - {"maml", "anil", "retrain_head", "prototype"})
    if unknown:
        raise ValueError(
            f"`adaptations` must be maml, anil, retrain_head or prototype; got {unknown}."
        )
    model = backbone.model.to(device).eval()
    meta_head = backbone.algorithm in ("maml", "fomaml", "anil")
    head_ways = model.classifier.out_features if meta_head else None
    prototypes, temperature = (None, 1.0)
    if "prototypes" in dummies:
        prototypes, temperature = source_prototypes(model, dataset, backbone.source_classes, device)
    maml_source = None
    if "maml" in adaptations:
        import learn2learn as l2l

        maml_source = l2l.algorithms.MAML(
            copy.deepcopy(model).train(), lr=backbone.lr, first_order=True, allow_unused=True
        )
    rows = []
    for ep in episodes:
        ways = len(ep.classes)
        start = time.perf_counter()
        sx, qx = dataset.batch(ep.support).to(device), dataset.batch(ep.query).to(device)
        sy = torch.as_tensor(ep.support_labels, device=device)
        qy = torch.as_tensor(ep.query_labels, device=device)
        labels = np.asarray(ep.support_labels)
        with torch.no_grad():
            sf = model.features(sx)
            logits = model.classifier(sf).double().cpu().numpy()
            sf = sf.double()
        modes = [
            m
            for m in dummies
            if (m == "head" and head_ways == ways)
            or (m == "source" and backbone.algorithm == "supervised")
            or m == "prototypes"
        ]
        scores: dict[str, dict[str, float]] = {}
        feats = sf.cpu().numpy()
        by_feature = {}
        if "h_score" in metrics:
            by_feature["h_score"] = h_score(feats, labels)
        if "logme" in metrics:
            by_feature["logme"] = logme(feats, labels)
        if "nleep" in metrics:
            by_feature["nleep"] = nleep(feats, labels, episode_seed(seed, ep.index))
        for mode in modes:
            if mode == "prototypes" and prototypes is not None:
                distances = torch.cdist(sf, prototypes).pow(2)
                probs = softmax((-distances / temperature).cpu().numpy())
            else:
                probs = softmax(logits)
            values = dict(by_feature)
            if "leep" in metrics:
                values["leep"] = leep(probs, labels)
            if "nce" in metrics:
                values["nce"] = nce(probs, labels)
            scores[mode] = values
        metric_seconds = time.perf_counter() - start
        methods = [
            a
            for a in adaptations
            if (a == "maml" and backbone.algorithm in ("maml", "fomaml") and head_ways == ways)
            or (a == "anil" and head_ways == ways)
            or a in ("retrain_head", "prototype")
        ]
        results: dict[str, tuple[float, float]] = {}
        if methods != ["maml"]:
            with torch.no_grad():
                qf = model.features(qx).double()
        for method in methods:
            if method == "maml":
                results[method] = maml(maml_source, sx, sy, qx, qy, backbone.steps)
            elif method == "anil":
                results[method] = anil(model.classifier, sf, sy, qf, qy)
            elif method == "retrain_head":
                results[method] = retrain_head(sf, sy, qf, qy, ways)
            else:
                results[method] = prototype(feats, labels, qf.cpu().numpy(), ep.query_labels, ways)
        for mode in modes:
            for method, (accuracy, loss) in results.items():
                rows.append(
                    {
                        "episode": ep.index,
                        "backbone": backbone.name,
                        "dummy": mode,
                        "adaptation": method,
                        **{m: scores[mode][m] for m in metrics},
                        "accuracy": accuracy,
                        "loss": loss,
                        "seconds_metrics": metric_seconds,
                    }
                )
    return pd.DataFrame(rows)
