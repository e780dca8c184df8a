"""Reproducible episode sampling: episode i depends only on (seed, i).

The sampler works on a label index ``class id -> image indices``: the one learn2learn's
``MetaDataset`` builds (its ``labels_to_indices``), which :class:`~metaleep.data.base.ImageDataset`
computes directly. Unlike learn2learn's ``Taskset`` transforms, which draw from Python's global
``random``, every episode has its own generator,
``np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(i,)))`` — the generator
``SeedSequence(seed).spawn(n)[i]`` would give — so an episode is identical in any process, in
any order, and whatever the number of episodes drawn.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from metaleep.episodes.spec import Episode, EpisodeSpec

_MAX_MIXED_TRIES = 1000

QUERIES = 15
"""Query images per class when the data allow them (the standard suites' number)."""

_LISTED = 5


def class_names(source: Any) -> dict[int, str]:
    """Class id -> name from the data set's ``classes["name"]`` (empty for a bare mapping)."""
    table = getattr(source, "classes", None)
    if isinstance(table, pd.DataFrame) and "name" in table.columns:
        return dict(enumerate(table["name"].astype(str).tolist()))  # index: class id 0..C-1
    return {}


def _counts(names: Mapping[int, str], sizes: Sequence[tuple[int, int]]) -> str:
    """``'cat' (3 images), 'dog' (4 images)`` for the smallest classes, by name (else id)."""
    shown = sorted(sizes, key=lambda item: (item[1], item[0]))[:_LISTED]
    words = [
        f"{names[c]!r} ({n} images)" if c in names else f"class {c} ({n} images)" for c, n in shown
    ]
    more = len(sizes) - len(shown)
    return ", ".join(words) + (f" and {more} more" if more > 0 else "")


def fit_queries(
    source: Any,
    shots: int,
    *,
    classes: Sequence[int] | np.ndarray | None = None,
    at_most: int = QUERIES,
) -> int:
    """The most query images per class (at most ``at_most``) that every class of the pool can
    give beside ``shots`` support images: what ``--queries`` is when not given.

    Raises
    ------
    ValueError
        When some class has no image left for a query; the message names the smallest classes
        and ``min_images``, which drops them.

    Examples
    --------
    >>> index = {0: np.arange(30), 1: np.arange(30, 42)}
    >>> fit_queries(index, 5), fit_queries(index, 1), fit_queries({0: [1, 2]}, 1, at_most=15)
    (7, 11, 1)
    """
    index = label_index(source)
    pool = sorted(index) if classes is None else [int(c) for c in classes]
    sizes = [(c, len(index[c])) for c in pool]
    smallest = min((n for _, n in sizes), default=0)
    queries = min(at_most, smallest - shots)
    if queries < 1:
        small = [(c, n) for c, n in sizes if n < shots + 1]
        raise ValueError(
            f"`shots` must leave at least one query image in every class of the pool; got "
            f"{shots}, and {len(small)} classes have {shots} images or fewer: "
            f"{_counts(class_names(source), small)}. Drop them with `min_images` "
            f"{shots + 1}, or take fewer `shots`."
        )
    return queries


def label_index(source: Any) -> dict[int, np.ndarray]:
    """The class id -> image indices map of an ``ImageDataset`` or a learn2learn ``MetaDataset``.

    Examples
    --------
    >>> label_index({0: [3, 1], 1: [0, 2]})
    {0: array([1, 3]), 1: array([0, 2])}
    """
    mapping = source if isinstance(source, Mapping) else getattr(source, "labels_to_indices", None)
    if mapping is None:
        raise TypeError(
            "`source` must be an ImageDataset, a learn2learn MetaDataset or a mapping of class id "
            f"to image indices; got {type(source).__name__!r}."
        )
    return {int(c): np.sort(np.asarray(idx, dtype=np.int64)) for c, idx in mapping.items()}


def episode_rng(seed: int, index: int) -> np.random.Generator:
    """The generator of episode ``index`` of a suite with ``seed``."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(index,)))


class EpisodeSampler:
    """Draws episodes of one :class:`EpisodeSpec` from a pool of classes.

    Parameters
    ----------
    source:
        An ``ImageDataset``, a learn2learn ``MetaDataset``, or a mapping class id -> indices.
    spec:
        The episode recipe.
    classes:
        The class pool (e.g. a split's test classes); default every class of ``source``.
    alphabets:
        Alphabet of each class id (a Series indexed by class id, or a mapping); needed for the
        ``"same"`` and ``"mixed"`` rules. Taken from ``source.classes["alphabet"]`` when
        ``source`` has it.
    seed:
        Seed of the suite.

    Examples
    --------
    >>> index = {c: np.arange(20 * c, 20 * c + 20) for c in range(10)}
    >>> sampler = EpisodeSampler(index, EpisodeSpec(ways=3, shots=2, queries=4), seed=7)
    >>> ep = sampler.sample(5)
    >>> ep.support.shape, ep.query.shape, ep.support_labels.tolist()
    ((6,), (12,), [0, 0, 1, 1, 2, 2])
    >>> ep == EpisodeSampler(index, EpisodeSpec(ways=3, shots=2, queries=4), seed=7).sample(5)
    True
    """

    def __init__(
        self,
        source: Any,
        spec: EpisodeSpec,
        *,
        classes: Sequence[int] | np.ndarray | None = None,
        alphabets: pd.Series | Mapping[int, str] | None = None,
        seed: int = 0,
    ) -> None:
        if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
            raise ValueError(f"`seed` must be a non-negative integer; got {seed!r}.")
        self.spec = spec
        self.seed = int(seed)
        index = label_index(source)
        pool = np.asarray(sorted(index) if classes is None else classes, dtype=np.int64)
        if pool.ndim != 1 or len(np.unique(pool)) != len(pool):
            raise ValueError(f"`classes` must be distinct class ids; got {classes!r}.")
        unknown = sorted(set(pool.tolist()) - set(index))
        if unknown:
            raise ValueError(
                f"`classes` must be class ids of the data set; got unknown ids {unknown[:10]!r}."
            )
        if len(pool) < spec.ways:
            raise ValueError(
                f"`ways` must be at most the {len(pool)} classes in the pool; got {spec.ways}."
            )
        short = [(int(c), len(index[int(c)])) for c in pool if len(index[int(c)]) < spec.per_class]
        if short:
            largest = min(n for _, n in short) - spec.shots
            if largest >= 1:
                expected = (
                    f"at most {largest} with {spec.shots} shots (every class of the pool gives "
                    f"{spec.shots} + the queries images)"
                )
            else:
                expected = f"to fit beside {spec.shots} shots in every class of the pool"
            raise ValueError(
                f"`queries` must be {expected}; got {spec.queries}, and {len(short)} classes "
                f"have fewer than {spec.per_class} images: {_counts(class_names(source), short)}. "
                f"Take fewer `queries`, or leave small classes out with `min_images` "
                f"{spec.per_class}."
            )
        self.classes = pool
        self._index = [index[int(c)] for c in pool]
        self._alphabet_codes, self._alphabet_names = self._encode_alphabets(source, alphabets)
        if spec.alphabets == "same":
            codes, counts = np.unique(self._alphabet_codes, return_counts=True)
            big_enough = codes[counts >= spec.ways]
            self._eligible = [np.flatnonzero(self._alphabet_codes == a) for a in big_enough]
            if not self._eligible:
                raise ValueError(
                    f"`ways` must be at most the classes of some alphabet in the pool for "
                    f"alphabets='same' (largest has {counts.max()}); got {spec.ways}."
                )
        if spec.alphabets == "mixed" and len(np.unique(self._alphabet_codes)) < 2:
            raise ValueError(
                "`alphabets` must name a rule the pool can satisfy: 'mixed' needs classes from "
                "at least 2 alphabets; got a pool with 1 alphabet."
            )

    def _encode_alphabets(
        self, source: Any, alphabets: pd.Series | Mapping[int, str] | None
    ) -> tuple[np.ndarray, list[str]]:
        if alphabets is None:
            table = getattr(source, "classes", None)
            if isinstance(table, pd.DataFrame) and "alphabet" in table.columns:
                alphabets = table["alphabet"]
        if alphabets is None:
            if self.spec.alphabets != "any":
                raise ValueError(
                    f"`alphabets` must be given (or the data set must have an 'alphabet' column) "
                    f"for alphabets={self.spec.alphabets!r}; got None."
                )
            return np.zeros(len(self.classes), dtype=np.int64), [""]
        lookup = alphabets if isinstance(alphabets, Mapping) else alphabets.to_dict()
        names = [str(lookup[int(c)]) for c in self.classes]
        uniques, codes = np.unique(np.asarray(names), return_inverse=True)
        return codes.astype(np.int64), [str(u) for u in uniques]

    def _choose_classes(self, rng: np.random.Generator) -> np.ndarray:
        ways = self.spec.ways
        if self.spec.alphabets == "same":
            members = self._eligible[int(rng.integers(len(self._eligible)))]
            return members[rng.choice(len(members), ways, replace=False)]
        for _ in range(_MAX_MIXED_TRIES):
            chosen = rng.choice(len(self.classes), ways, replace=False)
            if self.spec.alphabets == "any" or len(np.unique(self._alphabet_codes[chosen])) > 1:
                return chosen
        raise RuntimeError(  # pragma: no cover - needs a pool with one dominant alphabet
            f"no mixed-alphabet episode found in {_MAX_MIXED_TRIES} draws; use alphabets='any'."
        )

    def sample(self, index: int) -> Episode:
        """Episode ``index`` (a function of (seed, index) alone)."""
        if isinstance(index, bool) or not isinstance(index, int | np.integer) or index < 0:
            raise ValueError(f"`index` must be a non-negative integer; got {index!r}.")
        rng = episode_rng(self.seed, int(index))
        chosen = self._choose_classes(rng)
        spec = self.spec
        blocks = np.empty((spec.ways, spec.per_class), dtype=np.int64)
        for row, position in enumerate(chosen):
            images = self._index[int(position)]
            blocks[row] = images[rng.choice(len(images), spec.per_class, replace=False)]
        return Episode.from_indices(
            int(index), self.classes[chosen], blocks[:, : spec.shots], blocks[:, spec.shots :]
        )

    def sample_many(self, n: int, *, start: int = 0) -> list[Episode]:
        """Episodes ``start .. start + n - 1``."""
        return [self.sample(i) for i in range(start, start + n)]

    def __iter__(self) -> Iterator[Episode]:
        i = 0
        while True:
            yield self.sample(i)
            i += 1

    def alphabets_of(self, episode: Episode) -> list[str]:
        """Sorted distinct alphabet names of an episode's classes (empty without alphabets)."""
        if self._alphabet_names == [""]:
            return []
        position = {int(c): i for i, c in enumerate(self.classes)}
        codes = {int(self._alphabet_codes[position[int(c)]]) for c in episode.classes}
        return sorted(self._alphabet_names[k] for k in codes)
