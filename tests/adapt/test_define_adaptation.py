"""metaleep/adapt/spec.py (define_adaptation): each adaptation's single-episode form is derived
from its batched core, and its settings are its config dataclass (keyword overrides are that
class's fields)."""

from __future__ import annotations

import dataclasses
import inspect
import re
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from metaleep.adapt.common import FinetuneConfig, HeadConfig, MamlConfig, PrototypeConfig
from metaleep.adapt.head import (
    nearest_prototype,
    nearest_prototype_batch,
    retrain_head,
    retrain_head_batch,
)
from metaleep.adapt.network import finetune, finetune_batch, maml_adapt, maml_adapt_batch
from metaleep.adapt.spec import define_adaptation

WAYS = 3

FORMS: dict[str, tuple[Callable[..., Any], Callable[..., Any], type, tuple[str, ...]]] = {
    "retrain_head": (retrain_head, retrain_head_batch, HeadConfig, ("init",)),
    "nearest_prototype": (nearest_prototype, nearest_prototype_batch, PrototypeConfig, ()),
    "maml_adapt": (maml_adapt, maml_adapt_batch, MamlConfig, ("vectorize", "chunk_size")),
    "finetune": (finetune, finetune_batch, FinetuneConfig, ()),
}


class Tiny(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.features = nn.Sequential(nn.Flatten(), nn.Linear(16, 6), nn.ReLU())
        self.classifier = nn.Linear(6, WAYS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


def episodes(images: bool, n: int = 3) -> tuple[torch.Tensor, ...]:
    gen = torch.Generator().manual_seed(7)
    shape = (1, 4, 4) if images else (5,)
    sy = torch.arange(WAYS).repeat(n, 2)
    qy = torch.arange(WAYS).repeat(n, 3)
    sx = torch.randn(n, sy.shape[1], *shape, generator=gen, dtype=torch.float64)
    qx = torch.randn(n, qy.shape[1], *shape, generator=gen, dtype=torch.float64)
    return sx, sy, qx, qy


def call(name: str, batched: bool, data: tuple[torch.Tensor, ...], **options: Any) -> Any:
    single, batch, _, _ = FORMS[name]
    if name in ("maml_adapt", "finetune"):
        return (batch if batched else single)(Tiny().double(), *data, **options)
    return (batch if batched else single)(*data, ways=WAYS, **options)


SETTINGS = {
    "retrain_head": {"steps": 7, "accelerated": True},
    "nearest_prototype": {},
    "maml_adapt": {"steps": 2, "lr": 0.3},
    "finetune": {"steps": 3, "lr": 0.05, "head": "random", "seed": 4, "ways": WAYS},
}


@pytest.mark.parametrize("name", sorted(FORMS))
def test_single_episode_form_is_the_batched_core_on_one_episode(name: str) -> None:
    data = episodes(images=name in ("maml_adapt", "finetune"))
    batch = call(name, True, data, **SETTINGS[name])
    for e in range(3):
        single = call(name, False, tuple(t[e] for t in data), **SETTINGS[name])
        assert torch.equal(single.logits, batch.logits[e])
        for field in ("accuracy", "loss", "support_loss", "start_logit_std"):
            got, expected = getattr(single, field), getattr(batch, field)[e]
            assert got == expected or (np.isnan(got) and np.isnan(expected)), field


@pytest.mark.parametrize("name", sorted(FORMS))
def test_keyword_options_are_the_config_fields(name: str) -> None:
    single, batch, config, extras = FORMS[name]
    fields = {f.name for f in dataclasses.fields(config)}
    for fn, batched in ((single, False), (batch, True)):
        params = inspect.signature(fn).parameters
        keywords = {p for p, v in params.items() if v.kind is inspect.Parameter.KEYWORD_ONLY}
        own = {e for e in extras if batched or e not in ("vectorize", "chunk_size")}
        assert keywords == {"ways", "config", *own, *fields}
        for field in dataclasses.fields(config):
            assert params[field.name].default == field.default
        assert f":class:`~{config.__module__}.{config.__name__}`" in (fn.__doc__ or "")


def test_config_then_overrides() -> None:
    data = episodes(images=False)
    base = HeadConfig(steps=3, accelerated=True, weight_decay=0.1)
    overridden = retrain_head_batch(*data, ways=WAYS, config=base, steps=9)
    expected = retrain_head_batch(*data, ways=WAYS, config=dataclasses.replace(base, steps=9))
    assert torch.equal(overridden.logits, expected.logits)
    assert not torch.equal(
        overridden.logits, retrain_head_batch(*data, ways=WAYS, config=base).logits
    )
    by_keywords = retrain_head_batch(*data, ways=WAYS, steps=9, accelerated=True, weight_decay=0.1)
    assert torch.equal(by_keywords.logits, expected.logits)


def test_bad_settings_are_refused() -> None:
    data = episodes(images=False)
    with pytest.raises(
        TypeError, match="^" + re.escape("`config` must be a HeadConfig; got 'MamlConfig'.") + "$"
    ):
        retrain_head_batch(*data, ways=WAYS, config=MamlConfig())
    with pytest.raises(ValueError, match=r"^`steps` must be >= 0; got -1\.$"):
        retrain_head_batch(*data, ways=WAYS, config=HeadConfig(), steps=-1)
    with pytest.raises(TypeError, match="momentum"):  # a FinetuneConfig field, not a HeadConfig one
        retrain_head_batch(*data, ways=WAYS, momentum=0.9)
    with pytest.raises(TypeError, match="vectorize"):  # only the batched form runs vmap
        maml_adapt(Tiny().double(), *(t[0] for t in episodes(images=True)), vectorize=True)


def test_define_adaptation_derives_both_forms_from_a_core() -> None:
    @dataclasses.dataclass(frozen=True)
    class ShiftConfig:
        shift: float = 0.0

        def __post_init__(self) -> None:
            if self.shift < 0:
                raise ValueError(f"`shift` must be >= 0; got {self.shift!r}.")

    seen: list[tuple[int, ...]] = []

    def core(eps: Any, *, ways: int, config: ShiftConfig, bias: float = 0.0) -> Any:
        from metaleep.adapt.common import score_logits_batch

        seen.append(tuple(eps.support_x.shape))
        logits = eps.query_x[..., :ways] + config.shift + bias
        return score_logits_batch(logits, eps.query_y)

    from metaleep.adapt.spec import Extra

    single, batch = define_adaptation(
        name="shift",
        core=core,
        config=ShiftConfig,
        inputs="features",
        title="Shift",
        extras=(Extra("bias", 0.0, "Added."),),
    )
    sx, sy, qx, qy = episodes(images=False)
    one = single(sx[0], sy[0], qx[0], qy[0], ways=WAYS, shift=1.0, bias=0.5)
    assert seen[-1] == (1, *sx.shape[1:])  # the core saw a batch of one episode
    assert torch.equal(one.logits, qx[0, :, :WAYS] + 1.5)
    many = batch(sx, sy, qx, qy, ways=WAYS, config=ShiftConfig(1.0), bias=0.5)
    assert torch.equal(many.logits[0], one.logits)
    with pytest.raises(ValueError, match=r"^`shift` must be >= 0; got -1\.0\.$"):
        single(sx[0], sy[0], qx[0], qy[0], ways=WAYS, shift=-1.0)
    with pytest.raises(ValueError, match=r"^`support_feats` must be of shape \(n_s, d\)"):
        single(sx, sy, qx, qy, ways=WAYS)
    assert list(inspect.signature(batch).parameters)[-2:] == ["bias", "shift"]


def test_results_that_cross_module_lines_are_named() -> None:
    from metaleep.adapt.head import head_parameters
    from metaleep.adapt.inner_loop import InnerLoop
    from metaleep.backbones.evaluation import mean_ci
    from metaleep.backbones.testing import toy_dataset
    from metaleep.study.outputs import source_prototypes

    model = Tiny().double()
    head = head_parameters(model)
    assert torch.equal(head.weight, model.classifier.weight) and head.bias.shape == (WAYS,)
    ci = mean_ci(np.array([0.5, 1.0]))
    assert (ci.mean, ci.half_width) == tuple(ci)
    sx, sy, qx, _ = episodes(images=True, n=1)
    logits = InnerLoop(steps=1, lr=0.1).episode_logits(model, sx[0], sy[0], qx[0])
    assert logits.query.shape == (qx.shape[1], WAYS)
    assert logits.support_start.shape == logits.support_end.shape == (sx.shape[1], WAYS)
    dataset = toy_dataset(classes=3, per_class=2, size=4, seed=0)
    found = source_prototypes(model, dataset, np.arange(3))
    assert found.prototypes.shape == (3, 6) and found.scale > 0
