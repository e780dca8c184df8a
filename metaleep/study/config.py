"""The configuration of a meta-transfer study, and how a suite is sampled from ``data``."""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field
from numbers import Real
from typing import Any

from metaleep.metrics.registry import DEFAULT_METRICS, METRICS
from metaleep.study.outputs import DUMMY_MODES

DEFAULT_SUITE = "glyphs-5w5s"
"""The suite of a study that names neither a suite nor data."""


def option_names(value: Any, flag: str, allowed: tuple[str, ...] | None = None) -> tuple[str, ...]:
    try:
        items = (value,) if isinstance(value, str) else tuple(value)
    except TypeError:  # not iterable
        raise TypeError(f"`{flag}` must be one or more names; got {value!r}.") from None
    if not items or not all(isinstance(v, str) and v for v in items):
        raise ValueError(f"`{flag}` must be one or more names; got {value!r}.")
    if len(set(items)) != len(items):
        raise ValueError(f"`{flag}` must not repeat a name; got {value!r}.")
    if allowed is not None:
        unknown = [v for v in items if v not in allowed]
        if unknown:
            raise ValueError(
                f"`{flag}` must name from {', '.join(allowed)}; got {', '.join(unknown)!s}."
            )
    return items


@dataclass(frozen=True)
class StudyConfig:
    """What a study evaluates. Saved beside its results (``study.json``).

    Parameters
    ----------
    suite:
        A standard suite name (``metaleep episodes list``) or a manifest path. ``None``: a suite
        sampled from ``data`` (:class:`Sampling`; written to the study directory as
        ``suite.csv``), or :data:`DEFAULT_SUITE` without ``data``.
    backbones:
        Backbone specs, each optionally ``NAME=SPEC``: default backbone names (``maml``,
        ``fomaml``, ``anil``, ``protonet``, ``supervised``), checkpoint paths (``metaleep
        train`` or ``metaleep export``), or factories ``FILE.py:CALLABLE`` /
        ``package.module:CALLABLE`` (optionally ``@WEIGHTS.pt``); see
        :mod:`metaleep.study.loading`.
    dummies:
        Dummy-label modes to score (``head``, ``source``, ``prototypes``); each backbone uses
        those it offers.
    adaptations:
        Adaptation methods whose post-adaptation query accuracy is measured (``maml``,
        ``anil``, ``retrain_head``, ``finetune``, ``prototype``); each backbone uses those it
        supports.
    metrics:
        Transferability metrics (registry names).
    episodes:
        Evaluate only the first ``episodes`` episodes of the suite (``None``: all).
    chunk_size:
        Episodes per result chunk: the unit of batching and of resuming. Larger chunks pay
        the fixed cost of each batched call (metrics, head training steps) over more episodes
        (200 rather than 50 took 8 % less time on 600 ``glyphs-5w1s`` episodes); a crash loses
        at most one chunk's work.
    temperature:
        Temperature of the ``prototypes`` dummy labels; ``None`` (default) is scale-free: the
        median squared distance of source images to their nearest prototype.
    seed:
        Seed of the stochastic parts (N-LEEP's mixture, fresh heads); episode i of the study
        uses ``(seed, i)``, so results do not depend on chunking or process order.
    device:
        ``"cpu"``, ``"cuda"`` or ``"auto"``.
    data:
        The target data set, ``NAME[:ROOT]`` (:mod:`metaleep.data.spec`); ``None``: the data
        set the suite names (glyphs or digits).
    image_size:
        Load the data at this size: ``N`` (N x N) or ``HxW``. Default: what a suite file
        recorded; for a suite sampled from an image folder, the largest input the backbones
        declare, else the folder's rule (:mod:`metaleep.data.folder`).
    bad_files:
        Image folders: ``skip`` (default) or ``refuse`` files that are not usable images.
    source_data:
        ``NAME=SPEC`` entries giving backbone ``NAME`` the data it was trained on (a ``--data``
        spec; benchmarks read their ``train`` split): every class of it is a source class, so
        an embedding network gets ``prototypes`` dummy labels (LEEP, NCE).
    trust_code:
        Let ``metaleep export`` files among ``backbones`` run the factory they record to
        build their model (``--trust-factory``): code read from a file. Off, such an export is
        refused unless its factory is named (``FILE.py:CALLABLE@export.pt``). Not part of
        what the study computed (not in its identity).
    """

    suite: str | None = None
    backbones: tuple[str, ...] = ("maml", "supervised")
    dummies: tuple[str, ...] = DUMMY_MODES
    adaptations: tuple[str, ...] = ("maml", "anil", "retrain_head", "prototype")
    metrics: tuple[str, ...] = DEFAULT_METRICS
    episodes: int | None = None
    chunk_size: int = 200
    temperature: float | None = None
    seed: int = 0
    device: str = "cpu"
    data: str | None = None
    image_size: str | None = None
    bad_files: str = "skip"
    source_data: tuple[str, ...] = ()
    trust_code: bool = False
    extra: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def __post_init__(self) -> None:
        if self.suite is not None and (not isinstance(self.suite, str) or not self.suite):
            raise ValueError(
                f"`suite` must be a suite name, a manifest path or None; got {self.suite!r}."
            )
        object.__setattr__(self, "backbones", option_names(self.backbones, "backbones"))
        object.__setattr__(self, "dummies", option_names(self.dummies, "dummies", DUMMY_MODES))
        from metaleep.adapt.registry import ADAPTATIONS

        object.__setattr__(
            self, "adaptations", option_names(self.adaptations, "adaptations", tuple(ADAPTATIONS))
        )
        object.__setattr__(self, "metrics", option_names(self.metrics, "metrics", tuple(METRICS)))
        if self.episodes is not None and (
            isinstance(self.episodes, bool)
            or not isinstance(self.episodes, int)
            or self.episodes < 1
        ):
            raise ValueError(
                f"`episodes` must be a positive integer or None; got {self.episodes!r}."
            )
        if (
            isinstance(self.chunk_size, bool)
            or not isinstance(self.chunk_size, int)
            or self.chunk_size < 1
        ):
            raise ValueError(f"`chunk_size` must be a positive integer; got {self.chunk_size!r}.")
        if self.temperature is not None:
            expected = "a finite number > 0 or None"
            if isinstance(self.temperature, bool) or not isinstance(self.temperature, Real):
                raise TypeError(f"`temperature` must be {expected}; got {self.temperature!r}.")
            if not 0 < self.temperature < math.inf:
                raise ValueError(f"`temperature` must be {expected}; got {self.temperature!r}.")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"`seed` must be a non-negative integer; got {self.seed!r}.")
        if not isinstance(self.device, str):
            raise TypeError(f"`device` must be cpu, cuda, cuda:N or auto; got {self.device!r}.")
        if self.device not in ("cpu", "cuda", "auto") and not re.fullmatch(
            r"cuda:\d+", self.device
        ):
            raise ValueError(f"`device` must be cpu, cuda, cuda:N or auto; got {self.device!r}.")

        if not isinstance(self.trust_code, bool):
            raise TypeError(f"`trust_code` must be True or False; got {self.trust_code!r}.")
        if self.data is not None:
            from metaleep.data.spec import parse_data

            object.__setattr__(self, "data", parse_data(self.data).text)
        if self.image_size is not None:
            from metaleep.data.folder import check_image_size, size_text

            object.__setattr__(self, "image_size", size_text(check_image_size(self.image_size)))
        if self.bad_files not in ("skip", "refuse"):
            raise ValueError(f"`bad_files` must be skip or refuse; got {self.bad_files!r}.")
        object.__setattr__(self, "source_data", _source_entries(self.source_data))

    @property
    def suite_name(self) -> str:
        """The suite this configuration runs when it names one: ``suite``, else the default."""
        return self.suite or DEFAULT_SUITE

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (tuples as lists)."""
        out = asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in out.items()}

    def resolved_device(self) -> str:
        """The torch device string: ``auto`` becomes ``cuda`` when available, else ``cpu``.

        A CUDA device that this machine does not have raises ``ValueError``.
        """
        if self.device == "cpu":
            return self.device
        import torch

        if self.device == "auto":
            return "cuda" if torch.cuda.is_available() else "cpu"
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        index = int(self.device.partition(":")[2] or 0) if self.device != "cuda" else 0
        if index >= count:
            have = f"{count} CUDA device(s)" if count else "no CUDA GPU (or no CUDA build of torch)"
            raise ValueError(
                f"`device` must be cpu or auto on this machine, which has {have}; "
                f"got {self.device!r}."
            )
        return self.device


def _source_entries(value: Any) -> tuple[str, ...]:
    """``NAME=SPEC`` entries, each SPEC a ``--data`` spec (roots made absolute)."""
    from metaleep.data.spec import parse_data

    if isinstance(value, str):
        items: tuple[Any, ...] = (value,)
    elif isinstance(value, (list, tuple)):
        items = tuple(value)
    else:
        raise TypeError(f"`source_data` must be NAME=SPEC entries (a list of str); got {value!r}.")
    out = []
    for item in items:
        name, sep, spec = str(item).partition("=")
        if not sep or not name.strip() or not spec.strip():
            raise ValueError(
                f"`source_data` must be NAME=SPEC (a backbone's name and a --data spec, e.g. "
                f"proto=imagefolder:~/train); got {item!r}."
            )
        out.append(f"{name.strip()}={parse_data(spec.strip()).text}")
    names = [o.partition("=")[0] for o in out]
    if len(set(names)) != len(names):
        raise ValueError(f"`source_data` must name each backbone once; got {value!r}.")
    return tuple(out)


@dataclass(frozen=True)
class Sampling:
    """How a suite is sampled from the data when no suite is named: the CLI's ``--ways``,
    ``--shots``, ``--queries``, ``--min-images`` (with ``--episodes`` and ``--seed`` from the
    study); :func:`metaleep.episodes.suites.sampled_recipe` does it.

    Parameters
    ----------
    ways, shots:
        N and K of every episode.
    queries:
        Query images per class; ``None``: as many as every class allows beside the shots, at
        most 15.
    min_images:
        Leave classes with fewer images out of the pool (``None``: keep all).

    Examples
    --------
    >>> Sampling(ways=5, shots=1).queries is None
    True
    >>> Sampling(ways=1)
    Traceback (most recent call last):
    ...
    ValueError: `ways` must be an integer >= 2; got 1.
    """

    ways: int = 5
    shots: int = 5
    queries: int | None = None
    min_images: int | None = None

    def __post_init__(self) -> None:
        for name, low in (("ways", 2), ("shots", 1), ("queries", 1), ("min_images", 1)):
            value = getattr(self, name)
            if value is None and name in ("queries", "min_images"):
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"`{name}` must be an integer >= {low}; got {value!r}.")
