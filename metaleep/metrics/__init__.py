"""Transferability metrics, per episode and batched: LEEP, NCE, H-score, LogME, N-LEEP, and the
metrics that came after LEEP (shrinkage H-score, GBC, TransRate, SFDA), plus two free baselines.

Each metric has one module with one batched core, declared with
:func:`metaleep.metrics.spec.define_metric`, from which derive a per-episode function returning
a Python float, a batched function returning an ``(E,)`` float64 numpy array for E episodes at
once, and its registry entry:

=================  ===============================  =====================================  ========
registry           per episode                      batched                                input
=================  ===============================  =====================================  ========
leep               :func:`leep_score`               :func:`leep_score_batch`               probs
nce                :func:`nce_score`                :func:`nce_score_batch`                probs
h_score            :func:`h_score`                  :func:`h_score_batch`                  features
logme              :func:`logme_score`              :func:`logme_score_batch`              features
nleep              :func:`nleep_score`              :func:`nleep_score_batch`              features
shrinkage_h_score  :func:`shrinkage_h_score`        :func:`shrinkage_h_score_batch`        features
gbc                :func:`gbc_score`                :func:`gbc_score_batch`                features
transrate          :func:`transrate_score`          :func:`transrate_score_batch`          features
sfda               :func:`sfda_score`               :func:`sfda_score_batch`               features
centroid_loo       :func:`centroid_loo_score`       :func:`centroid_loo_score_batch`       features
cosine_spread      :func:`cosine_spread_score`      :func:`cosine_spread_score_batch`      features
=================  ===============================  =====================================  ========

``centroid_loo`` and ``cosine_spread`` are not transferability metrics but the baselines one
should beat: the support set's nearest-centroid leave-one-out accuracy (0 in 1-shot episodes),
and the label-free mean cosine distance between its embeddings (defined at 1 shot).

Inputs may be numpy arrays, torch tensors (CPU or CUDA: computed on the tensor's device) or
nested lists; computation is in float64; every score is higher-is-better. Batched inputs are
``(E, n, K)`` arrays with ``(E, n)`` labels and an optional ``(E, n)`` boolean ``mask``, or
sequences of per-episode arrays of different sizes. A per-episode function is its batched
function on one episode (one implementation of the maths per metric).

Conventions: target labels are any integers, re-encoded per episode (gaps and ids do not change
scores); boolean and float labels are rejected (``TypeError``), even integral floats. A source
label with zero mass gives a finite LEEP (the paper's value); one target class gives
LEEP = NCE = 0; logits are accepted with ``from_logits=True`` and handled in log space.
Probability rows must be finite, non-negative and sum to 1 within a tolerance of
``max(PROBS_ATOL, 2 eps sqrt(Z))`` (:data:`PROBS_ATOL` = 1e-6; eps of the input dtype), so float32
and float16 softmaxes over many labels pass.
Every metric needs at least one sample per episode; H-score, shrinkage H-score, N-LEEP,
``centroid_loo`` and ``cosine_spread`` at least two. Bad input
raises ``TypeError``/``ValueError`` with the message ``"`name` must be <expected>; got
<actual>."``, never a silent NaN; ``validate=False`` skips the value checks (finiteness,
probability rows) for speed.

Importing this package does not import torch or scikit-learn; they are loaded on first use.

Examples
--------
>>> from metaleep.metrics import METRICS, leep_score
>>> list(METRICS)[:5]
['leep', 'nce', 'h_score', 'logme', 'nleep']
>>> leep_score([[0.9, 0.1], [0.2, 0.8]], [0, 1])
-0.2910...
"""

from __future__ import annotations

from metaleep.metrics._validation import PROBS_ATOL
from metaleep.metrics.centroid import centroid_loo_score, centroid_loo_score_batch
from metaleep.metrics.gbc import gbc_score, gbc_score_batch
from metaleep.metrics.hscore import h_score, h_score_batch
from metaleep.metrics.leep import leep_score, leep_score_batch
from metaleep.metrics.logme import logme_score, logme_score_batch
from metaleep.metrics.nce import nce_score, nce_score_batch
from metaleep.metrics.nleep import nleep_score, nleep_score_batch
from metaleep.metrics.registry import METRICS, MetricSpec, get_metric
from metaleep.metrics.sfda import sfda_score, sfda_score_batch
from metaleep.metrics.shrinkage_hscore import shrinkage_h_score, shrinkage_h_score_batch
from metaleep.metrics.spread import cosine_spread_score, cosine_spread_score_batch
from metaleep.metrics.transrate import transrate_score, transrate_score_batch

__all__ = [
    "METRICS",
    "PROBS_ATOL",
    "MetricSpec",
    "centroid_loo_score",
    "centroid_loo_score_batch",
    "cosine_spread_score",
    "cosine_spread_score_batch",
    "gbc_score",
    "gbc_score_batch",
    "get_metric",
    "h_score",
    "h_score_batch",
    "leep_score",
    "leep_score_batch",
    "logme_score",
    "logme_score_batch",
    "nce_score",
    "nce_score_batch",
    "nleep_score",
    "nleep_score_batch",
    "sfda_score",
    "sfda_score_batch",
    "shrinkage_h_score",
    "shrinkage_h_score_batch",
    "transrate_score",
    "transrate_score_batch",
]
