"""The one contract of every metric: a batched core, and what derives from it.

A metric is written once, as a *batched core* ``core(ep, **options) -> (E,) float64 tensor`` over
an :class:`~metaleep.metrics._validation.Episodes` batch (padded, re-encoded, validated), and
declared once, with :func:`define_metric`. Everything else derives from that declaration, here
and nowhere else:

- the per-episode function ``<name>_score(x, labels, **options) -> float`` (the core on a batch
  of one episode) and the batched ``<name>_score_batch(x, labels, *, mask=None, **options) ->
  ndarray`` (dense ``(E, n, K)`` input with an optional mask, or a list of ragged episodes);
- the conversion and validation of the inputs (shapes, dtypes, labels, finiteness, probability
  rows, ``from_logits``), the checks of the options, in one order for every metric;
- their signatures (``inspect.signature`` shows the real parameters) and their docstrings
  (numpydoc, built from the declaration's parts; the examples run as doctests);
- the registry entry, a :class:`MetricSpec`.

A new metric is therefore one core, one :func:`define_metric` call and one line in
:mod:`metaleep.metrics.registry`.

Examples
--------
A toy metric, the fraction of samples in the largest class:

>>> import torch
>>> def _largest_class(ep, **_options):
...     return ep.class_counts.amax(1).to(torch.float64) / ep.sizes
>>> spec = define_metric(name="largest", title="Largest-class share", core=_largest_class,
...                      input_kind="features", returns="The share, in (0, 1].",
...                      description="Share of the largest class.")
>>> spec.score([[0.0], [1.0], [2.0]], [5, 5, 7])
0.666...
>>> spec.score_batch([[[0.0], [1.0]], [[0.0], [1.0]]], [[1, 1], [1, 2]]).tolist()
[1.0, 0.5]
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from metaleep.metrics._validation import check_flag

if TYPE_CHECKING:
    import torch

    from metaleep.metrics._validation import Episodes

__all__ = ["FROM_LOGITS", "VALIDATE", "InputKind", "MetricSpec", "Option", "define_metric"]

InputKind = Literal["probs", "features"]


@dataclass(frozen=True)
class Option:
    """A keyword option of a metric, checked before any work.

    Attributes
    ----------
    name:
        Keyword name.
    default:
        Default value.
    doc:
        Its description in the Parameters section (one paragraph, plain text).
    check:
        ``check(value) -> value``: raises ``TypeError``/``ValueError`` in the house wording,
        returns the value to pass on (normalised).
    check_batch:
        The check in the batched form, when it accepts more (N-LEEP's per-episode seeds);
        ``None``: ``check``.
    annotation:
        The type shown in the signature.
    """

    name: str
    default: Any
    doc: str
    check: Callable[[Any], Any]
    check_batch: Callable[[Any], Any] | None = None
    annotation: str = "bool"


def _check_validate(value: object) -> bool:
    return check_flag(value, "validate")


def _check_from_logits(value: object) -> bool:
    return check_flag(value, "from_logits")


VALIDATE = Option(
    "validate",
    True,
    "Check the values (finite features; probability rows), one or two extra reads of the "
    "input; ``False`` trusts the caller. Shapes, dtypes and labels are always checked.",
    _check_validate,
)
"""The ``validate`` option every metric has."""

FROM_LOGITS = Option(
    "from_logits",
    False,
    "``probs`` holds logits (any finite reals); the probabilities are their softmax, computed "
    "in log space.",
    _check_from_logits,
)
"""The ``from_logits`` option of the metrics that read the source model's outputs."""

_INPUT_DOCS = {
    "probs": (
        "``(n, Z)`` source-model probabilities θ(x_i) of the n target samples over the Z source "
        "labels; rows finite, non-negative and summing to 1 within ``1e-6`` (or logits with "
        "``from_logits=True``)."
    ),
    "features": "``(n, d)`` finite features of the n target samples.",
}


@dataclass(frozen=True)
class MetricSpec:
    """How to call one metric, and how to read its scores.

    Built by :func:`define_metric`; :data:`metaleep.metrics.METRICS` holds one per metric.

    Attributes
    ----------
    name:
        Registry key (``"leep"``, ``"sfda"``, ...).
    score:
        Per-episode function ``score(x, labels, **options) -> float``.
    score_batch:
        Batched function ``score_batch(x, labels, *, mask=None, **options) -> ndarray (E,)``.
    input_kind:
        ``"probs"``: x holds the source model's probabilities (or logits with
        ``from_logits=True``) over its Z labels; ``"features"``: x holds features.
    higher_is_better:
        Whether a larger score predicts better transfer (True for every metric here).
    description:
        One line for tables and ``--help`` texts: what it computes, and its source.
    options:
        Keyword options accepted by ``score`` and ``score_batch`` besides ``mask``.
    core:
        The batched core ``core(ep, **options) -> (E,) tensor`` (the only implementation).
    min_samples:
        Fewest samples per episode.

    Examples
    --------
    >>> from metaleep.metrics import get_metric
    >>> spec = get_metric("leep")
    >>> spec.input_kind, spec.higher_is_better, spec.options
    ('probs', True, ('from_logits', 'validate', 'kernel'))
    >>> spec.score([[0.5, 0.5]] * 2, [0, 1])
    -0.6931...
    """

    name: str
    score: Callable[..., float]
    score_batch: Callable[..., np.ndarray]
    input_kind: InputKind
    higher_is_better: bool
    description: str
    options: tuple[str, ...] = ("validate",)
    core: Callable[..., torch.Tensor] | None = field(default=None, repr=False, compare=False)
    min_samples: int = 1

    def select_options(self, options: Mapping[str, Any]) -> dict[str, Any]:
        """The entries of ``options`` that this metric accepts (others are dropped).

        Examples
        --------
        >>> from metaleep.metrics import get_metric
        >>> get_metric("nleep").select_options({"seed": 3, "from_logits": False})
        {'seed': 3}
        >>> get_metric("leep").select_options({"seed": 3, "from_logits": False})
        {'from_logits': False}
        """
        return {key: value for key, value in options.items() if key in self.options}


def _indent(text: str, spaces: int = 4) -> str:
    pad = " " * spaces
    return "\n".join(pad + line if line.strip() else "" for line in text.strip("\n").splitlines())


def _param_block(name: str, doc: str) -> str:
    import textwrap

    return f"{name}:\n" + _indent("\n".join(textwrap.wrap(doc, 92)))


def _section(title: str, body: str) -> str:
    import textwrap

    body = textwrap.dedent(body.strip("\n")).strip()
    if not body:
        return ""
    return f"\n\n{title}\n{'-' * len(title)}\n{body}"


def define_metric(
    *,
    name: str,
    title: str,
    core: Callable[..., torch.Tensor],
    input_kind: InputKind,
    returns: str,
    description: str,
    options: tuple[Option, ...] = (VALIDATE,),
    min_samples: int = 1,
    precheck: Callable[[Any, dict[str, Any]], None] | None = None,
    summary: str = "",
    notes: str = "",
    raises: str = "",
    examples: str = "",
    batch_notes: str = "",
    batch_examples: str = "",
    module: str | None = None,
    higher_is_better: bool = True,
) -> MetricSpec:
    """Declare a metric: its public functions, their docs and its registry entry.

    Parameters
    ----------
    name:
        Registry key; the functions are ``<name>_score`` and ``<name>_score_batch`` unless
        the name already ends with ``_score`` (``h_score``).
    title:
        The metric's name in prose (``"SFDA"``).
    core:
        ``core(ep, **options) -> (E,) float64 tensor``: the score of every episode of the
        validated batch ``ep``, called with every declared option (after its check).
    input_kind:
        ``"probs"`` (source-model outputs; adds ``from_logits`` handling) or ``"features"``.
    returns, description, summary, notes, raises, examples, batch_notes, batch_examples:
        Docstring parts (numpydoc prose; examples as doctest lines).
    options:
        The keyword options in signature order; ``validate`` among them.
    min_samples:
        Fewest samples per episode (checked with the common message).
    precheck:
        ``precheck(x, options)``, run after the option checks and before the conversion
        (LEEP's device check of ``kernel=True``).
    module:
        ``__module__`` of the functions (the metric's module, for ``help`` and doctests).
    higher_is_better:
        Orientation of the score.

    Returns
    -------
    MetricSpec
        With ``score`` and ``score_batch`` built here.
    """
    import textwrap

    x_name = "probs" if input_kind == "probs" else "features"
    base = name if name.endswith("_score") else f"{name}_score"
    option_names = tuple(o.name for o in options)
    if "validate" not in option_names:
        raise ValueError(f"`options` must include validate; got {option_names!r}.")
    if input_kind == "probs" and "from_logits" not in option_names:
        raise ValueError(f"`options` must include from_logits for probs; got {option_names!r}.")

    def checked(values: Mapping[str, Any], single: bool) -> dict[str, Any]:
        out = {}
        for option in options:
            check = option.check if single or option.check_batch is None else option.check_batch
            out[option.name] = check(values[option.name])
        return out

    def to_episodes(x: Any, labels: Any, mask: Any, opts: dict[str, Any], single: bool) -> Episodes:
        from metaleep.metrics._validation import episodes, source_outputs

        if precheck is not None:
            precheck(x, opts)
        if input_kind == "probs":
            return source_outputs(
                x,
                labels,
                mask,
                metric=name,
                single=single,
                from_logits=opts["from_logits"],
                validate=opts["validate"],
            )
        return episodes(
            x,
            labels,
            mask,
            name="features",
            kind="features",
            metric=name,
            single=single,
            min_samples=min_samples,
            validate=opts["validate"],
        )

    kw = inspect.Parameter.KEYWORD_ONLY
    positional = [
        inspect.Parameter(x_name, inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation="Any"),
        inspect.Parameter("labels", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation="Any"),
    ]
    option_params = [
        inspect.Parameter(o.name, kw, default=o.default, annotation=o.annotation) for o in options
    ]
    single_sig = inspect.Signature([*positional, *option_params], return_annotation="float")
    mask_param = inspect.Parameter("mask", kw, default=None, annotation="Any")
    batch_sig = inspect.Signature(
        [*positional, mask_param, *option_params], return_annotation="np.ndarray"
    )

    def score(*args: Any, **kwargs: Any) -> float:
        bound = single_sig.bind(*args, **kwargs)
        bound.apply_defaults()
        values = bound.arguments
        opts = checked(values, single=True)
        ep = to_episodes(values[x_name], values["labels"], None, opts, single=True)
        return float(core(ep, **opts)[0])

    def score_batch(*args: Any, **kwargs: Any) -> np.ndarray:
        from metaleep.metrics._validation import as_float_array

        bound = batch_sig.bind(*args, **kwargs)
        bound.apply_defaults()
        values = bound.arguments
        opts = checked(values, single=False)
        ep = to_episodes(values[x_name], values["labels"], values["mask"], opts, single=False)
        return as_float_array(core(ep, **opts))

    option_docs = "\n".join(_param_block(o.name, o.doc) for o in options)
    common_raises = (
        "TypeError\n    Non-numeric input; non-integer ``labels`` (bool and float included); "
        "options of the wrong type.\nValueError\n    Wrong shapes, too few samples"
        + (f" (at least {min_samples})" if min_samples > 1 else "")
        + ", non-finite values"
        + (", rows that are not probabilities" if input_kind == "probs" else "")
        + ", bad option values."
    )
    score.__doc__ = (
        f"{title} of one episode.{_section_plain(summary)}"
        + (_section_plain(f"Conventions and degenerate cases: :mod:`{module}`.") if module else "")
        + _section(
            "Parameters",
            _param_block(x_name, _INPUT_DOCS[input_kind])
            + "\n"
            + _param_block("labels", "``(n,)`` integer target labels; any ids (re-encoded).")
            + "\n"
            + option_docs,
        )
        + _section("Returns", "float\n" + _indent(returns))
        + _section(
            "Raises", common_raises + ("\n" + textwrap.dedent(raises.strip("\n")) if raises else "")
        )
        + _section("Notes", notes)
        + _section("Examples", examples)
    )
    batch_params = (
        _param_block(
            x_name,
            f"``(E, n, {'Z' if input_kind == 'probs' else 'd'})`` array or tensor (computed in "
            f"float64 on its device), or a sequence of E ``(n_e, "
            f"{'Z' if input_kind == 'probs' else 'd'})`` arrays of different sizes.",
        )
        + "\n"
        + _param_block("labels", "``(E, n)`` integer labels, or a sequence of E ``(n_e,)``.")
        + "\n"
        + _param_block(
            "mask",
            "Optional ``(E, n)`` bool (array form only): ``True`` for the rows of each "
            "episode; the other rows are ignored and may hold anything.",
        )
        + "\n"
        + "\n".join(
            _param_block(o.name, "As in :func:`" + base + "`.")
            if o.check_batch is None
            else _param_block(o.name, o.doc)
            for o in options
        )
    )
    score_batch.__doc__ = (
        f"{title} of E episodes at once, batched in torch (one call of the core)."
        + _section("Parameters", batch_params)
        + _section(
            "Returns",
            "numpy.ndarray\n    ``(E,)`` float64 scores, each equal to :func:`"
            + base
            + "` of its episode (to about 1e-12).",
        )
        + _section("Notes", batch_notes)
        + _section("Examples", batch_examples)
    )
    for fn, fn_name, sig in (
        (score, base, single_sig),
        (score_batch, f"{base}_batch", batch_sig),
    ):
        fn.__name__ = fn_name
        fn.__qualname__ = fn_name
        setattr(fn, "__signature__", sig)  # noqa: B010 (read by inspect.signature)
        if module is not None:
            fn.__module__ = module
    return MetricSpec(
        name=name,
        score=score,
        score_batch=score_batch,
        input_kind=input_kind,
        higher_is_better=higher_is_better,
        description=description,
        options=option_names,
        core=core,
        min_samples=min_samples,
    )


def _section_plain(text: str) -> str:
    import textwrap

    return f"\n\n{textwrap.dedent(text.strip(chr(10))).strip()}" if text.strip() else ""
