"""Adaptation methods by name: how a meta-trained backbone is adapted on an episode's support
set, and its post-adaptation query accuracy and log-loss measured.

The registry :data:`ADAPTATIONS` maps a name to an :class:`AdaptationSpec`:

============== =========== ========== ===================================================
name           needs_model needs_head what it does
============== =========== ========== ===================================================
maml           yes         no         MAML inner loop on the whole network (metaleep.adapt)
finetune       yes         no         full fine-tuning (SGD/Adam) of a copy of the network
retrain_head   no          no         linear head from zero, trained to convergence on features
anil           no          yes        the meta-learned head, trained to convergence (ANIL)
prototype      no          no         nearest class mean of the features (ProtoNet)
============== =========== ========== ===================================================

Feature-based methods (``needs_model=False``) take cached features and are adapted for many
episodes at once; model-based ones take the model and images. All specs share two call forms::

    spec.run(model, support_x, support_y, query_x, query_y, ways=..., config=...)   # model
    spec.run(support_feats, support_y, query_feats, query_y, ways=..., config=..., head=...)
    spec.run_batch(...)  # the same with a leading episode axis E; returns arrays of E results

``config`` defaults to ``spec.config`` (a frozen dataclass; change it with
``dataclasses.replace``); ``head`` is the meta-learned ``(W, b)`` from :func:`head_parameters`,
required where ``needs_head`` and ignored elsewhere. Model-based ``run_batch`` also takes
``vectorize`` (MAML: ``torch.func.vmap`` over episodes, or the engine's loop episode by
episode).

Which settings a study uses for a backbone (:func:`backbone_config`): an adaptation that
repeats how the backbone was meta-trained uses the training settings (``maml`` on a MAML or
first-order MAML backbone: its inner steps, inner learning rate and order; ``anil`` on an ANIL
backbone likewise). Elsewhere each adaptation has a default that converges whatever the
backbone: ``anil`` on a MAML backbone starts from a meta-learned head whose logits are nearly
flat (their spread over classes was 0.47 on the default MAML backbone's support images), which
the 5 steps at the training rate barely move (34 % query accuracy on ``glyphs-5w5s``, chance
20 %), so it runs 100 accelerated steps of the curvature-bounded size ``1 / L`` instead
(92.1 % on the 600 episodes, support loss 0.06). ``retrain_head`` solves the same convex
problem with the same rule from a zero head: the two differ only in where they start.
(100 plain steps of ``1 / L`` left ``retrain_head`` at a mean support loss of
0.74 on the default MAML backbone's ``glyphs-5w5s`` features and 1.06 on ``digits-5w5s``,
against ``log 5 = 1.61`` for a uniform guess.) Each result records the support loss it ended
at, so an adaptation that did not converge shows. Which head a whole-network adaptation starts
from is not a setting: :meth:`~metaleep.backbones.protocol.StudyBackbone.with_head` gives the
network (its meta-learned head where that fits the episodes, else a fresh zero head).

Examples
--------
>>> import torch
>>> spec = get_adaptation("prototype")
>>> spec.needs_model, spec.needs_head
(False, False)
>>> feats = torch.tensor([[[0.0, 0.0], [0.0, 4.0]]])
>>> labels = torch.tensor([[0, 1]])
>>> spec.run_batch(feats, labels, feats, labels, ways=2).accuracy.tolist()
[1.0]
>>> sorted(ADAPTATIONS)
['anil', 'finetune', 'maml', 'prototype', 'retrain_head']
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from types import MappingProxyType
from typing import Any, TypeAlias

from metaleep.adapt.common import (
    AdaptationResult,
    BatchAdaptationResult,
    BatchNormMode,
    FinetuneConfig,
    HeadConfig,
    MamlConfig,
    PrototypeConfig,
    score_logits,
    score_logits_batch,
)
from metaleep.adapt.head import (
    head_parameters,
    nearest_prototype,
    nearest_prototype_batch,
    retrain_head,
    retrain_head_batch,
)
from metaleep.adapt.network import finetune, finetune_batch, maml_adapt, maml_adapt_batch
from metaleep.adapt.spec import AdaptationSpec, EpisodeForms

__all__ = [
    "ADAPTATIONS",
    "AdaptationConfig",
    "AdaptationResult",
    "AdaptationSpec",
    "BatchAdaptationResult",
    "BatchNormMode",
    "FinetuneConfig",
    "HeadConfig",
    "MamlConfig",
    "PrototypeConfig",
    "adaptation_settings",
    "backbone_config",
    "finetune",
    "finetune_batch",
    "get_adaptation",
    "head_parameters",
    "maml_adapt",
    "maml_adapt_batch",
    "nearest_prototype",
    "nearest_prototype_batch",
    "retrain_head",
    "retrain_head_batch",
    "score_logits",
    "score_logits_batch",
]

AdaptationConfig: TypeAlias = MamlConfig | FinetuneConfig | HeadConfig | PrototypeConfig

_ENGINES: Mapping[str, EpisodeForms] = {
    "maml": EpisodeForms(maml_adapt, maml_adapt_batch),
    "finetune": EpisodeForms(finetune, finetune_batch),
    "retrain_head": EpisodeForms(retrain_head, retrain_head_batch),
    "anil": EpisodeForms(retrain_head, retrain_head_batch),
    "prototype": EpisodeForms(nearest_prototype, nearest_prototype_batch),
}
"""The engine of each registered adaptation (``anil`` is ``retrain_head`` from the meta-learned
head)."""


def _feature_call(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    """The uniform feature-based call ``(sf, sy, qf, qy, *, ways, config, head)`` for ``name``."""

    def call(
        support_feats: Any,
        support_y: Any,
        query_feats: Any,
        query_y: Any,
        *,
        ways: int,
        config: AdaptationConfig | None = None,
        head: Any = None,
    ) -> Any:
        spec = ADAPTATIONS[name]
        extra: dict[str, Any] = {}
        if spec.needs_head:
            if head is None:
                raise ValueError(f"`head` must be the meta-learned (W, b) for {name!r}; got None.")
            extra["init"] = head
        args = (support_feats, support_y, query_feats, query_y)
        return fn(*args, ways=ways, config=spec.resolve(config), **extra)

    call.__name__ = f"{name}_{fn.__name__}"
    return call


def _model_call(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    """The uniform model-based call ``(model, sx, sy, qx, qy, *, ways, config, ...)``."""

    def call(
        model: Any,
        support_x: Any,
        support_y: Any,
        query_x: Any,
        query_y: Any,
        *,
        ways: int | None = None,
        config: AdaptationConfig | None = None,
        **options: Any,
    ) -> Any:
        config = ADAPTATIONS[name].resolve(config)
        return fn(
            model, support_x, support_y, query_x, query_y, ways=ways, config=config, **options
        )

    call.__name__ = f"{name}_{fn.__name__}"
    return call


def _spec(
    name: str, *, needs_model: bool, needs_head: bool, config: AdaptationConfig, description: str
) -> AdaptationSpec:
    make = _model_call if needs_model else _feature_call
    engine = _ENGINES[name]
    return AdaptationSpec(
        name=name,
        needs_model=needs_model,
        needs_head=needs_head,
        config=config,
        run=make(name, engine.single),
        run_batch=make(name, engine.batch),
        description=description,
    )


ADAPTATIONS: Mapping[str, AdaptationSpec] = MappingProxyType(
    {
        "maml": _spec(
            "maml",
            needs_model=True,
            needs_head=False,
            config=MamlConfig(steps=5, lr=0.4, first_order=True),
            description="MAML inner loop (SGD) on the whole network (metaleep.adapt.InnerLoop).",
        ),
        "finetune": _spec(
            "finetune",
            needs_model=True,
            needs_head=False,
            config=FinetuneConfig(),
            description="Full fine-tuning of a copy of the network (SGD or Adam), full batch.",
        ),
        "retrain_head": _spec(
            "retrain_head",
            needs_model=False,
            needs_head=False,
            config=HeadConfig(steps=100, lr="auto", weight_decay=0.0, accelerated=True),
            description=(
                "Linear head from zero on cached features, trained until it converges "
                "(accelerated gradient, curvature-bounded step)."
            ),
        ),
        "anil": _spec(
            "anil",
            needs_model=False,
            needs_head=True,
            config=HeadConfig(steps=100, lr="auto", weight_decay=0.0, accelerated=True),
            description=(
                "ANIL: the meta-learned head adapted on cached features until it converges "
                "(accelerated gradient, curvature-bounded step)."
            ),
        ),
        "prototype": _spec(
            "prototype",
            needs_model=False,
            needs_head=False,
            config=PrototypeConfig(),
            description="Nearest class mean of cached features (ProtoNet), -squared distance.",
        ),
    }
)
"""Adaptation methods by name (read-only)."""


def backbone_config(
    name: str, algorithm: str, inner: Mapping[str, Any] | None = None
) -> AdaptationConfig:
    """The settings of adaptation ``name`` for a backbone meta-trained by ``algorithm``.

    The adaptation that repeats the training inner loop uses the backbone's inner-loop
    settings: ``maml`` on ``maml`` / ``fomaml`` backbones (with ``first_order`` recorded, not
    changing the predictions) and ``anil`` on ``anil`` backbones (steps and lr, plain gradient
    descent, as trained). Every other pair gets the registry's default (``spec.config``), whose
    ANIL rule converges from any head.

    Parameters
    ----------
    name:
        A registered adaptation.
    algorithm:
        How the backbone was trained (:data:`~metaleep.backbones.protocol.ALGORITHMS`).
    inner:
        Its inner-loop settings from meta-training (keys ``steps``, ``lr``, ``first_order``;
        :attr:`~metaleep.backbones.protocol.StudyBackbone.inner`); missing keys keep the
        default, unknown keys are a ValueError.

    Returns
    -------
    AdaptationConfig
        The config the study adapts with.

    Examples
    --------
    >>> backbone_config("maml", "maml", {"steps": 1, "lr": 0.4, "first_order": False})
    MamlConfig(steps=1, lr=0.4, first_order=False, batch_norm='transductive')
    >>> backbone_config("anil", "maml", {"steps": 1, "lr": 0.4}).accelerated
    True
    >>> backbone_config("anil", "anil", {"steps": 5, "lr": 0.4, "first_order": False})
    HeadConfig(steps=5, lr=0.4, weight_decay=0.0, accelerated=False)
    """
    spec = get_adaptation(name)
    settings = dict(inner or {})
    unknown = sorted(set(settings) - {"steps", "lr", "first_order"})
    if unknown:
        raise ValueError(
            f"`inner` must hold only steps, lr and first_order; got unknown keys {unknown!r}."
        )
    if not _repeats_training(name, algorithm):
        return spec.config
    if name == "maml":
        return dataclasses.replace(spec.config, **settings)
    settings.pop("first_order", None)  # the head's inner loop: SGD steps, same values
    return HeadConfig(**{"steps": 5, "lr": 0.4, **settings})


def _repeats_training(name: str, algorithm: str) -> bool:
    """Whether adaptation ``name`` is the inner loop a backbone of ``algorithm`` trained with."""
    return (name == "maml" and algorithm in ("maml", "fomaml")) or (
        name == "anil" and algorithm == "anil"
    )


def adaptation_settings(
    names: Sequence[str], backbones: Sequence[Any]
) -> dict[str, dict[str, dict[str, Any]]]:
    """``{backbone: {adaptation: settings}}``: what a study adapts each backbone with.

    ``backbones`` are :class:`~metaleep.backbones.protocol.StudyBackbone` objects; an adaptation a
    backbone does not offer is left out. The settings are :func:`backbone_config`'s fields,
    and ``from_training`` says whether they are the backbone's meta-training inner loop.
    Recorded in ``study.json``, so a result says how each row was adapted.

    Examples
    --------
    >>> from types import SimpleNamespace
    >>> b = SimpleNamespace(name="m", algorithm="maml", inner={"steps": 1, "lr": 0.4},
    ...                     head_ways=5, offers_adaptation=lambda name, ways: True)
    >>> adaptation_settings(["maml"], [b])
    {'m': {'maml': {'steps': 1, 'lr': 0.4, 'first_order': True, 'batch_norm': 'transductive', \
'from_training': True}}}
    """
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for backbone in backbones:
        settings: dict[str, dict[str, Any]] = {}
        for name in names:
            if name not in ADAPTATIONS:
                continue
            if not backbone.offers_adaptation(name, backbone.head_ways or 0):
                continue
            config = backbone_config(name, backbone.algorithm, backbone.inner)
            settings[name] = {
                **dataclasses.asdict(config),
                "from_training": bool(backbone.inner)
                and _repeats_training(name, backbone.algorithm),
            }
        out[backbone.name] = settings
    return out


def get_adaptation(name: str) -> AdaptationSpec:
    """The :class:`AdaptationSpec` registered as ``name``.

    Examples
    --------
    >>> spec = get_adaptation("maml")
    >>> spec.needs_model, spec.config
    (True, MamlConfig(steps=5, lr=0.4, first_order=True, batch_norm='transductive'))
    """
    if not isinstance(name, str):
        raise TypeError(f"`name` must be a str; got {name!r}.")
    try:
        return ADAPTATIONS[name]
    except KeyError:
        raise ValueError(
            f"`name` must be one of {tuple(sorted(ADAPTATIONS))!r}; got {name!r}."
        ) from None
