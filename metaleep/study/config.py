"""The configuration of a meta-transfer study."""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field
from numbers import Real
from typing import Any

from metaleep.metrics.registry import DEFAULT_METRICS, METRICS
from metaleep.study.outputs import DUMMY_MODES


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
        A standard suite name (``metaleep episodes list``) or a manifest path.
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
    trust_code:
        Let ``metaleep export`` files among ``backbones`` run the factory they record to
        build their model (``--trust-factory``): code read from a file. Off, such an export is
        refused unless its factory is named (``FILE.py:CALLABLE@export.pt``). Not part of
        what the study computed (not in its identity).
    """

    suite: str = "glyphs-5w5s"
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
    trust_code: bool = False
    extra: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def __post_init__(self) -> None:
        if not isinstance(self.suite, str) or not self.suite:
            raise ValueError(f"`suite` must be a suite name or manifest path; got {self.suite!r}.")
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
