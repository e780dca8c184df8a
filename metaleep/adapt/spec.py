"""The one contract of every adaptation: a batched core, and the two call forms derived from it.

An adaptation is written once, as a *batched core* over E validated episodes
(:class:`~metaleep.adapt.common.EpisodeTensors`) that takes its settings as one frozen config
dataclass and returns a :class:`~metaleep.adapt.common.BatchAdaptationResult`; and declared
once, with :func:`define_adaptation` (as :func:`metaleep.metrics.spec.define_metric` declares a
metric). Everything else derives from that declaration, here and nowhere else:

- the batched function ``<name>_batch(...)`` and the single-episode function ``<name>(...)``:
  the core on E episodes, and the core on a batch of one episode (its result's only element),
  so that the two forms cannot disagree;
- the validation of the episodes (shapes, dtypes, labels, finiteness), its messages naming the
  shapes of the form called (``(n_s, d)`` for one episode, ``(E, n_s, d)`` for E); images are
  brought to the model's dtype and device;
- the settings: ``config=`` (default: the dataclass's defaults) and, as a convenience, keyword
  overrides of its fields (``steps=5``). The keywords are the dataclass's fields
  (:func:`dataclasses.fields`), so they cannot drift from it, and its ``__post_init__`` checks
  the result;
- the signatures (``inspect.signature`` shows the real parameters) and the shared parts of the
  docstrings.

Cores come in two kinds. ``"features"``: cached features, ``core(episodes, *, ways, config,
**extras)``. ``"images"``: a whole network, ``core(model, episodes, *, ways, config, **extras)``,
with a rule ``resolve_ways(model, ways, config) -> N`` that checks the model and reads N from
its head where it can.

:class:`AdaptationSpec` is an entry of the registry (:mod:`metaleep.adapt.registry`): a name
bound to one engine's forms, a default config and whether the meta-learned head is needed.

Examples
--------
A toy adaptation that predicts the support set's most frequent class:

>>> import dataclasses, torch
>>> from metaleep.adapt.common import score_logits_batch
>>> @dataclasses.dataclass(frozen=True)
... class MajorityConfig:
...     margin: float = 1.0
>>> def _majority(episodes, *, ways, config):
...     counts = torch.nn.functional.one_hot(episodes.support_y, ways).sum(1).double()
...     logits = config.margin * counts.unsqueeze(1).expand(-1, episodes.query_y.shape[1], -1)
...     return score_logits_batch(logits, episodes.query_y)
>>> majority, majority_batch = define_adaptation(
...     name="majority", core=_majority, config=MajorityConfig, inputs="features",
...     title="Predict the support set's most frequent class")
>>> feats = torch.zeros(3, 1)
>>> majority(feats, torch.tensor([1, 1, 0]), feats[:2], torch.tensor([1, 0]), ways=2).accuracy
0.5
>>> majority(feats, [1, 1, 0], feats[:2], [1, 0], ways=2, margin=2.0).logits.tolist()
[[2.0, 4.0], [2.0, 4.0]]
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

import torch

from metaleep.adapt.common import (
    AdaptationResult,
    BatchAdaptationResult,
    EpisodeTensors,
    check_episode_tensors,
    check_ways,
)

__all__ = [
    "AdaptationSpec",
    "EpisodeForms",
    "Extra",
    "InputKind",
    "define_adaptation",
    "module_dtype_device",
]

InputKind = Literal["features", "images"]


class EpisodeForms(NamedTuple):
    """The two call forms of one adaptation, built by :func:`define_adaptation`."""

    single: Callable[..., AdaptationResult]
    """One episode -> :class:`~metaleep.adapt.common.AdaptationResult`."""
    batch: Callable[..., BatchAdaptationResult]
    """E episodes -> :class:`~metaleep.adapt.common.BatchAdaptationResult`."""


@dataclass(frozen=True)
class Extra:
    """A keyword argument of an adaptation besides its settings: data it starts from (ANIL's
    meta-learned head) or how to run it (``vectorize``), passed on to the core.

    Attributes
    ----------
    name:
        Keyword name.
    default:
        Default value.
    doc:
        Its description in the Parameters section (the single-episode form's).
    batch_doc:
        The description in the batched form, when it differs; None: ``doc``.
    batch_only:
        Only the batched form takes it (the single-episode form passes the default).
    annotation:
        The type shown in the signature.
    """

    name: str
    default: Any
    doc: str
    batch_doc: str | None = None
    batch_only: bool = False
    annotation: str = "Any"


@dataclass(frozen=True)
class AdaptationSpec:
    """One adaptation method of the registry.

    Attributes
    ----------
    name:
        Registry key.
    needs_model:
        True: ``run``/``run_batch`` take the model and images (maml, finetune). False: they
        take cached support/query features (retrain_head, anil, prototype) and batch cheaply.
    needs_head:
        True when ``run``/``run_batch`` need the meta-learned head ``head=(W, b)`` (anil).
    config:
        Default settings (frozen dataclass); pass another as ``config=``.
    run:
        Per-episode call, returns an :class:`~metaleep.adapt.common.AdaptationResult`.
    run_batch:
        E-episode call, returns a :class:`~metaleep.adapt.common.BatchAdaptationResult`.
    description:
        One line for tables and ``--help``.
    """

    name: str
    needs_model: bool
    needs_head: bool
    config: Any
    run: Callable[..., AdaptationResult]
    run_batch: Callable[..., BatchAdaptationResult]
    description: str

    def resolve(self, config: Any) -> Any:
        """``config``, or the default, checked to be of this method's config type."""
        if config is None:
            return self.config
        if type(config) is not type(self.config):
            raise TypeError(
                f"`config` must be a {type(self.config).__name__} for {self.name!r}; "
                f"got {type(config).__name__!r}."
            )
        return config


def module_dtype_device(module: torch.nn.Module) -> tuple[torch.dtype, torch.device]:
    """``dtype`` and ``device`` of a module's first parameter (float32 / CPU without any).

    Examples
    --------
    >>> module_dtype_device(torch.nn.Linear(2, 2).double())
    (torch.float64, device(type='cpu'))
    """
    for parameter in module.parameters():
        return parameter.dtype, parameter.device
    return torch.float32, torch.device("cpu")


def _settings(config_type: type, config: object, overrides: dict[str, Any]) -> Any:
    """``config`` (default ``config_type()``) with ``overrides`` replacing its fields."""
    if config is None:
        config = config_type()
    elif not isinstance(config, config_type):
        raise TypeError(
            f"`config` must be a {config_type.__name__}; got {type(config).__name__!r}."
        )
    return dataclasses.replace(config, **overrides) if overrides else config  # type: ignore[type-var]


def _wrap(text: str, indent: str = "    ") -> str:
    lines = textwrap.wrap(text, 92, break_on_hyphens=False)
    return textwrap.indent("\n".join(lines), indent)


def _param(name: str, doc: str) -> str:
    return f"{name}:\n" + _wrap(doc)


_DATA_DOCS = {
    ("features", False): (
        ("support_feats", "Float array of shape (n_s, d): the support set's features."),
        ("support_y", "Integer labels of shape (n_s,) in 0..ways-1."),
        ("query_feats", "Float array of shape (n_q, d)."),
        ("query_y", "Integer labels of shape (n_q,) in 0..ways-1."),
    ),
    ("features", True): (
        ("support_feats", "Float array of shape (E, n_s, d): each episode's support features."),
        ("support_y", "Integer labels of shape (E, n_s) in 0..ways-1."),
        ("query_feats", "Float array of shape (E, n_q, d)."),
        ("query_y", "Integer labels of shape (E, n_q) in 0..ways-1."),
    ),
    ("images", False): (
        (
            "model",
            "``nn.Module`` with ``features`` (images -> (n, d)) and ``classifier`` (an "
            "``nn.Linear(d, N)`` head); the network is ``classifier(features(x))``. Adapted "
            "on a deep copy: its parameters, BatchNorm statistics and mode are unchanged.",
        ),
        (
            "support_x",
            "Float images of shape (n_s, C, H, W) (any per-example shape the model takes), "
            "brought to the model's dtype and device.",
        ),
        ("support_y", "Integer labels of shape (n_s,) in 0..N-1."),
        ("query_x", "Float images of shape (n_q, C, H, W)."),
        ("query_y", "Integer labels of shape (n_q,) in 0..N-1."),
    ),
    ("images", True): (
        ("model", "As for the single-episode form."),
        ("support_x", "Float images of shape (E, n_s, C, H, W)."),
        ("support_y", "Integer labels of shape (E, n_s) in 0..N-1."),
        ("query_x", "Float images of shape (E, n_q, C, H, W)."),
        ("query_y", "Integer labels of shape (E, n_q) in 0..N-1."),
    ),
}

_RETURNS = {
    False: "AdaptationResult\n"
    + _wrap(
        "Query accuracy and log-loss, query logits (n_q, N), the support log-loss of the "
        "adapted model and the spread of the starting logits."
    ),
    True: "BatchAdaptationResult\n"
    + _wrap(
        "Per-episode query accuracy and log-loss (E,), query logits (E, n_q, N), support "
        "log-loss and starting spread (E,); episode e's values are those of the "
        "single-episode form on episode e."
    ),
}


def _section(title: str, body: str) -> str:
    body = textwrap.dedent(body.strip("\n")).strip()
    return f"\n\n{title}\n{'-' * len(title)}\n{body}" if body else ""


@dataclass(frozen=True)
class _Declaration:
    """What :func:`define_adaptation` was told; builds and runs the two forms."""

    name: str
    core: Callable[..., BatchAdaptationResult]
    config: type
    inputs: InputKind
    extras: tuple[Extra, ...]
    resolve_ways: Callable[[torch.nn.Module, Any, Any], int] | None
    ways_doc: str

    @property
    def fields(self) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(self.config))

    @property
    def x_names(self) -> tuple[str, str]:
        if self.inputs == "features":
            return "support_feats", "query_feats"
        return "support_x", "query_x"

    @functools.cached_property
    def signatures(self) -> dict[bool, inspect.Signature]:
        """The signature of each form (batched: True)."""
        return {batched: self.signature(batched) for batched in (False, True)}

    def own_extras(self, batched: bool) -> tuple[Extra, ...]:
        return tuple(e for e in self.extras if batched or not e.batch_only)

    def signature(self, batched: bool) -> inspect.Signature:
        positional = inspect.Parameter.POSITIONAL_OR_KEYWORD
        kw = inspect.Parameter.KEYWORD_ONLY
        data = ("support_y", "query_y")
        names = [self.x_names[0], data[0], self.x_names[1], data[1]]
        if self.inputs == "images":
            names.insert(0, "model")
        params = [inspect.Parameter(n, positional, annotation="Any") for n in names]
        if self.inputs == "features":
            params.append(inspect.Parameter("ways", kw, annotation="int"))
        else:
            params.append(inspect.Parameter("ways", kw, default=None, annotation="int | None"))
        config = f"{self.config.__name__} | None"
        params.append(inspect.Parameter("config", kw, default=None, annotation=config))
        params += [
            inspect.Parameter(e.name, kw, default=e.default, annotation=e.annotation)
            for e in self.own_extras(batched)
        ]
        for field in dataclasses.fields(self.config):
            if field.default is dataclasses.MISSING:
                raise TypeError(
                    f"`config` must have a default for every field; {field.name} lacks one."
                )
            params.append(
                inspect.Parameter(field.name, kw, default=field.default, annotation=field.type)
            )
        form = "BatchAdaptationResult" if batched else "AdaptationResult"
        return inspect.Signature(params, return_annotation=form)

    def call(self, batched: bool, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """Bind, settle the settings, validate the episodes, run the core (one episode: its
        result's only element)."""
        given = dict(self.signatures[batched].bind(*args, **kwargs).arguments)  # as passed
        overrides = {key: given.pop(key) for key in self.fields if key in given}
        settings = _settings(self.config, given.pop("config", None), overrides)
        options = {e.name: given.get(e.name, e.default) for e in self.extras}
        model: Any = given.get("model")
        if self.resolve_ways is not None:
            ways = self.resolve_ways(model, given.get("ways"), settings)
        else:
            ways = check_ways(given["ways"])
        support_name, query_name = self.x_names
        episodes = check_episode_tensors(
            given[support_name],
            given["support_y"],
            given[query_name],
            given["query_y"],
            ways=ways,
            batched=batched,
            x_names=self.x_names,
            features=self.inputs == "features",
        )
        if self.inputs == "features":
            result = self.core(episodes, ways=ways, config=settings, **options)
        else:
            dtype, device = module_dtype_device(model)
            sx, sy, qx, qy = episodes
            moved = EpisodeTensors(
                sx.to(device, dtype), sy.to(device), qx.to(device, dtype), qy.to(device)
            )
            result = self.core(model, moved, ways=ways, config=settings, **options)
        return result if batched else result[0]

    def parameters_doc(self, batched: bool) -> str:
        config = f":class:`~{self.config.__module__}.{self.config.__name__}`"
        blocks = [_param(n, doc) for n, doc in _DATA_DOCS[self.inputs, batched]]
        blocks.append(_param("ways", self.ways_doc or "N, the number of classes."))
        blocks.append(_param("config", f"The settings, a {config} (default: its defaults)."))
        blocks += [
            _param(e.name, (e.batch_doc or e.doc) if batched else e.doc)
            for e in self.own_extras(batched)
        ]
        blocks.append(
            _param(
                ", ".join(self.fields),
                f"Fields of {config}; those given replace ``config``'s "
                f"(``dataclasses.replace``, checked as the class checks them).",
            )
        )
        return "\n".join(blocks)


def define_adaptation(
    *,
    name: str,
    core: Callable[..., BatchAdaptationResult],
    config: type,
    inputs: InputKind,
    title: str,
    summary: str = "",
    extras: tuple[Extra, ...] = (),
    resolve_ways: Callable[[torch.nn.Module, Any, Any], int] | None = None,
    ways_doc: str = "",
    notes: str = "",
    batch_notes: str = "",
    examples: str = "",
    batch_examples: str = "",
    module: str | None = None,
) -> EpisodeForms:
    """Declare an adaptation: its single-episode and batched functions and their docs.

    Parameters
    ----------
    name:
        Base name: the functions are ``name`` and ``name + "_batch"``.
    core:
        The batched core, the only implementation (see the module docstring); called with
        validated :class:`~metaleep.adapt.common.EpisodeTensors`, ``ways``, ``config`` and the
        ``extras`` by name.
    config:
        The settings dataclass (frozen, a default for every field, validated in
        ``__post_init__``); its fields become keyword overrides.
    inputs:
        ``"features"`` (cached features) or ``"images"`` (a model and images).
    title:
        What it does, one line without a full stop ("Train a linear head ...").
    summary, notes, batch_notes, examples, batch_examples:
        Docstring parts (numpydoc prose; examples as doctest lines). ``summary`` is shared by
        both forms.
    extras:
        Keyword arguments besides the settings, passed on to the core.
    resolve_ways:
        ``"images"`` only: ``resolve_ways(model, ways, config) -> N``, which checks the model
        and reads or checks N (``ways`` may be None); called before the episodes are
        validated. ``"features"`` adaptations require ``ways``.
    ways_doc:
        The ``ways`` parameter's description (``"images"``).
    module:
        ``__module__`` of the functions (for ``help`` and doctests).

    Returns
    -------
    EpisodeForms
        ``(single, batch)``.
    """
    if not dataclasses.is_dataclass(config):
        raise TypeError(f"`config` must be a dataclass type; got {config!r}.")
    if inputs == "images" and resolve_ways is None:
        raise ValueError("`resolve_ways` must be given for inputs='images'; got None.")
    declared = _Declaration(name, core, config, inputs, extras, resolve_ways, ways_doc)

    def single(*args: Any, **kwargs: Any) -> AdaptationResult:
        return declared.call(False, args, kwargs)

    def batch(*args: Any, **kwargs: Any) -> BatchAdaptationResult:
        return declared.call(True, args, kwargs)

    shared = f"\n\n{textwrap.dedent(summary).strip()}" if summary.strip() else ""
    single.__doc__ = (
        f"{title}: one episode.{shared}"
        + f"\n\nThe core of :func:`{name}_batch` on this episode alone (E = 1)."
        + _section("Parameters", declared.parameters_doc(False))
        + _section("Returns", _RETURNS[False])
        + _section("Notes", notes)
        + _section("Examples", examples)
    )
    batch.__doc__ = (
        f"{title}: E episodes at once.{shared}"
        + _section("Parameters", declared.parameters_doc(True))
        + _section("Returns", _RETURNS[True])
        + _section("Notes", batch_notes)
        + _section("Examples", batch_examples)
    )
    for fn, fn_name, batched in ((single, name, False), (batch, f"{name}_batch", True)):
        fn.__name__ = fn_name
        fn.__qualname__ = fn_name
        setattr(fn, "__signature__", declared.signatures[batched])  # noqa: B010 (read by inspect)
        if module is not None:
            fn.__module__ = module
    return EpisodeForms(single, batch)
