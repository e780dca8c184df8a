"""Adaptation engines shared by meta-training, evaluation and the study.

A floor below :mod:`metaleep.backbones` and :mod:`metaleep.study`: it imports neither.

- :mod:`metaleep.adapt.inner_loop`: MAML's inner loop (Finn et al., 2017), the one
  implementation behind MAML / first-order MAML / ANIL training, ``episode_logits`` and the
  study's ``maml_adapt`` / ``maml_adapt_batch``.
- :mod:`metaleep.adapt.registry`: the adaptations by name (``maml``, ``finetune``,
  ``retrain_head``, ``anil``, ``prototype``) and the settings a backbone is adapted with;
  their engines live in :mod:`~metaleep.adapt.common` (configs, results, scoring),
  :mod:`~metaleep.adapt.head` (feature-based: head training, nearest prototype) and
  :mod:`~metaleep.adapt.network` (whole-network: MAML, fine-tuning), each one batched core
  from which :mod:`~metaleep.adapt.spec` derives the batched and the single-episode function.
- :mod:`metaleep.adapt.prototypes`: class means and prototype logits ``-‖x - c‖² / T``, the one
  implementation behind the ``prototype`` adaptation, ProtoNet training and evaluation and the
  study's ``prototypes`` dummy labels.

Public API (imported lazily: ``import metaleep.adapt`` does not import torch)::

    InnerLoop(steps=1, lr=0.4, second_order=False)
        .adapt(network, params, support_x, support_y, *, buffers=None) -> dict[str, Tensor]
        .query_logits(network, support_x, support_y, query_x) -> Tensor (n_q, N)
        .query_logits_vmap(network, support_x, support_y, query_x, *, chunk_size=None)
            -> Tensor (E, n_q, N)
    sgd_step(params, grads, lr) -> dict[str, Tensor]        # p + (-lr) * g
    private_buffers(network) -> dict[str, Tensor]
    functional_forward(network, params, buffers, x) -> Tensor
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "InnerLoop": "inner_loop",
    "adapt": "inner_loop",
    "functional_forward": "inner_loop",
    "private_buffers": "inner_loop",
    "query_logits": "inner_loop",
    "query_logits_vmap": "inner_loop",
    "sgd_step": "inner_loop",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        module = importlib.import_module(f"metaleep.adapt.{_EXPORTS[name]}")
        return getattr(module, name)
    raise AttributeError(f"module 'metaleep.adapt' has no attribute {name!r}")


def __dir__() -> list[str]:
    # The public names (lazy ones too) for dir() and tab completion.
    return sorted({*__all__, *(n for n in globals() if n.startswith("_"))})
