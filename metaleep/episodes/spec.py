"""What an N-way K-shot episode is: :class:`EpisodeSpec` (the recipe) and :class:`Episode`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

AlphabetRule = Literal["any", "same", "mixed"]
ALPHABET_RULES: tuple[AlphabetRule, ...] = ("any", "same", "mixed")


@dataclass(frozen=True)
class EpisodeSpec:
    """The recipe of an N-way K-shot episode.

    Parameters
    ----------
    ways:
        N, classes per episode (>= 2).
    shots:
        K, support images per class (>= 1).
    queries:
        Query images per class (>= 1).
    alphabets:
        How classes relate to the data set's ``alphabet`` column: ``"any"`` draws classes
        uniformly from the pool; ``"same"`` draws all N classes from one alphabet (chosen
        uniformly among the alphabets with at least N classes in the pool); ``"mixed"`` draws
        uniformly from the pool but requires at least two alphabets in the episode.

    Examples
    --------
    >>> spec = EpisodeSpec(ways=5, shots=1, queries=15)
    >>> spec.n_support, spec.n_query
    (5, 75)
    >>> EpisodeSpec(ways=1)
    Traceback (most recent call last):
    ...
    ValueError: `ways` must be an integer >= 2; got 1.
    """

    ways: int = 5
    shots: int = 1
    queries: int = 15
    alphabets: AlphabetRule = "any"

    def __post_init__(self) -> None:
        for name, low in (("ways", 2), ("shots", 1), ("queries", 1)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < low:
                raise ValueError(f"`{name}` must be an integer >= {low}; got {value!r}.")
            object.__setattr__(self, name, int(value))
        if self.alphabets not in ALPHABET_RULES:
            raise ValueError(
                f"`alphabets` must be one of {', '.join(ALPHABET_RULES)}; got {self.alphabets!r}."
            )

    @property
    def per_class(self) -> int:
        """Images drawn per class: shots + queries."""
        return self.shots + self.queries

    @property
    def n_support(self) -> int:
        """Support-set size N * K."""
        return self.ways * self.shots

    @property
    def n_query(self) -> int:
        """Query-set size N * queries."""
        return self.ways * self.queries

    @property
    def name(self) -> str:
        """Short label such as ``"5w1s15q"`` (``"5w1s15q-same"`` for alphabet rules)."""
        base = f"{self.ways}w{self.shots}s{self.queries}q"
        return base if self.alphabets == "any" else f"{base}-{self.alphabets}"


@dataclass(frozen=True, eq=False)
class Episode:
    """One sampled episode.

    Attributes
    ----------
    index:
        Position i of the episode in its suite; with the suite's seed it determines the episode.
    classes:
        int64 (N,): the data set's class ids; position j is relabelled target j.
    support, query:
        int64 (N*K,) and (N*queries,): image indices into the data set, class-major (all images
        of target 0 first). Support and query never share an image.
    support_labels, query_labels:
        int64: the relabelled targets 0..N-1 of ``support`` and ``query``.
    """

    index: int
    classes: np.ndarray
    support: np.ndarray
    query: np.ndarray
    support_labels: np.ndarray
    query_labels: np.ndarray

    @property
    def ways(self) -> int:
        """N, the number of classes."""
        return int(self.classes.shape[0])

    @property
    def shots(self) -> int:
        """K, support images per class."""
        return int(self.support.shape[0]) // self.ways

    @property
    def queries(self) -> int:
        """Query images per class."""
        return int(self.query.shape[0]) // self.ways

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Episode):
            return NotImplemented
        return self.index == other.index and all(
            np.array_equal(getattr(self, f), getattr(other, f))
            for f in ("classes", "support", "query", "support_labels", "query_labels")
        )

    __hash__ = None  # type: ignore[assignment]

    @classmethod
    def from_indices(
        cls, index: int, classes: np.ndarray, support: np.ndarray, query: np.ndarray
    ) -> Episode:
        """Build an episode from class ids and class-major (N, K) / (N, Q) index blocks."""
        classes = np.asarray(classes, dtype=np.int64)
        support = np.asarray(support, dtype=np.int64)
        query = np.asarray(query, dtype=np.int64)
        ways = classes.shape[0]
        return cls(
            index=int(index),
            classes=classes,
            support=support.reshape(-1),
            query=query.reshape(-1),
            support_labels=np.repeat(np.arange(ways, dtype=np.int64), support.size // ways),
            query_labels=np.repeat(np.arange(ways, dtype=np.int64), query.size // ways),
        )
