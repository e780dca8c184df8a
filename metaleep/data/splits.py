"""Class splits by alphabet: meta-train, validation and test classes that share no alphabet.

Omniglot's protocol splits by alphabet (30 *background* alphabets for meta-training, 20
*evaluation* alphabets for testing), so test classes come from scripts never seen in training.
:func:`get_split` does the same for any data set whose ``classes`` frame has an ``alphabet``
column (glyphs, Omniglot), and, where a ``cluster`` column marks look-alike classes (glyphs:
Latin ``p`` and Greek ``ρ``), drops validation and test classes whose cluster also appears in
training, and says how many it dropped.

Split names
-----------
``"omniglot"``
    Alphabets ordered by the SHA-256 of ``"metaleep-split:" + name.lower()`` (a fixed,
    seed-free rule that reads like a shuffle and never depends on numpy's generators). The
    first ``round(2/3 n)`` are background, the rest evaluation (test); the last
    ``round(1/5 * background)`` background alphabets are the validation slice, the others train.
``"A+B->C+D"``
    Train on alphabets A and B, test on C and D; ``"A+B->V->C"`` also names validation
    alphabets (otherwise validation is empty). Names are case-insensitive, ``_`` and spaces are
    interchangeable, and ``*`` stands for every alphabet not named elsewhere
    (``"*->cyrillic"``).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from metaleep.data.base import ImageDataset

#: Named splits that :func:`list_splits` offers (any "A+B->C" string works too).
NAMED_SPLITS: tuple[str, ...] = (
    "omniglot",
    "latin+greek->cyrillic",
    "latin->greek",
    "latin+greek+cyrillic->armenian+georgian",
    "devanagari+bengali+gujarati+gurmukhi->kannada+malayalam+tamil+telugu",
)
_BACKGROUND = 2 / 3
_VALIDATION = 1 / 5


@dataclass(frozen=True, eq=False)
class ClassSplit:
    """Disjoint meta-train / validation / test classes, by alphabet.

    Attributes
    ----------
    name:
        The split's name (as passed to :func:`get_split`).
    train, validation, test:
        Sorted int64 class ids.
    train_alphabets, validation_alphabets, test_alphabets:
        Sorted alphabet names of each part.
    excluded_validation, excluded_test:
        Class ids of the validation / test alphabets left out because their look-alike
        cluster also has a training class.
    """

    name: str
    train: np.ndarray
    validation: np.ndarray
    test: np.ndarray
    train_alphabets: tuple[str, ...]
    validation_alphabets: tuple[str, ...]
    test_alphabets: tuple[str, ...]
    excluded_validation: np.ndarray
    excluded_test: np.ndarray

    def __post_init__(self) -> None:
        for field_name in (
            "train",
            "validation",
            "test",
            "excluded_validation",
            "excluded_test",
        ):
            ids = np.asarray(getattr(self, field_name))
            if ids.ndim != 1 or (ids.size and not np.issubdtype(ids.dtype, np.integer)):
                raise TypeError(
                    f"`{field_name}` must be a 1-D integer array; got {ids.dtype} {ids.shape}."
                )
            object.__setattr__(self, field_name, np.sort(ids.astype(np.int64)))
        parts = (self.train, self.validation, self.test)
        merged = np.concatenate(parts)
        if len(np.unique(merged)) != len(merged):
            raise ValueError("`train`, `validation` and `test` must be disjoint; they overlap.")

    @property
    def n_excluded(self) -> int:
        """Validation and test classes dropped as look-alikes of training classes."""
        return len(self.excluded_validation) + len(self.excluded_test)

    def summary(self) -> dict[str, int]:
        """Class counts of each part and of the exclusions."""
        return {
            "train": len(self.train),
            "validation": len(self.validation),
            "test": len(self.test),
            "excluded_validation": len(self.excluded_validation),
            "excluded_test": len(self.excluded_test),
        }


def list_splits() -> list[str]:
    """The named splits :func:`get_split` knows (any ``"A+B->C"`` string works too).

    >>> list_splits()[:2]
    ['omniglot', 'latin+greek->cyrillic']
    """
    return list(NAMED_SPLITS)


def _norm(name: str) -> str:
    return re.sub(r"[\s_]+", " ", name.strip().lower())


def _split_key(alphabet: str) -> str:
    return hashlib.sha256(f"metaleep-split:{alphabet.lower()}".encode()).hexdigest()


def omniglot_alphabets(alphabets: list[str]) -> tuple[list[str], list[str], list[str]]:
    """(train, validation, test) alphabets of the ``"omniglot"`` rule (see module docstring).

    >>> omniglot_alphabets(["A", "B", "C", "D", "E", "F"])
    (['A', 'D', 'F'], ['B'], ['C', 'E'])
    """
    order = sorted(set(alphabets), key=_split_key)
    n_background = round(_BACKGROUND * len(order))
    background, test = order[:n_background], order[n_background:]
    n_validation = round(_VALIDATION * len(background))
    cut = len(background) - n_validation
    return sorted(background[:cut]), sorted(background[cut:]), sorted(test)


def parse_split(name: str, alphabets: list[str]) -> tuple[list[str], list[str], list[str]]:
    """(train, validation, test) alphabets of a ``"A+B->C+D"`` or ``"A->V->C"`` split name.

    Examples
    --------
    >>> parse_split("latin+Greek -> cyrillic", ["Cyrillic", "Greek", "Latin", "Lao"])
    (['Greek', 'Latin'], [], ['Cyrillic'])
    >>> parse_split("*->lao", ["Cyrillic", "Greek", "Latin", "Lao"])
    (['Cyrillic', 'Greek', 'Latin'], [], ['Lao'])
    >>> parse_split("latin->klingon", ["Greek", "Latin"])
    Traceback (most recent call last):
    ...
    ValueError: `name` must name known alphabets (Greek, Latin); got 'klingon' in 'latin->klingon'.
    """
    if not isinstance(name, str):
        raise TypeError(f"`name` must be a str; got {name!r}.")
    parts = name.split("->")
    if len(parts) not in (2, 3) or any(not p.strip() for p in parts):
        raise ValueError(
            f"`name` must be a named split ({', '.join(NAMED_SPLITS)}) or look like "
            f"'A+B->C+D' or 'A+B->V->C'; got {name!r}."
        )
    lookup = {_norm(a): a for a in alphabets}
    resolved: list[list[str] | None] = []
    for part in parts:
        tokens = [t for t in (_norm(x) for x in part.split("+"))]
        if any(not t for t in tokens):
            raise ValueError(f"`name` must not have empty alphabet names; got {name!r}.")
        if tokens == ["*"]:
            resolved.append(None)
            continue
        chosen = []
        for token in tokens:
            if token not in lookup:
                raise ValueError(
                    f"`name` must name known alphabets ({', '.join(sorted(alphabets))}); "
                    f"got {token!r} in {name!r}."
                )
            chosen.append(lookup[token])
        resolved.append(chosen)
    if sum(r is None for r in resolved) > 1:
        raise ValueError(f"`name` may use '*' for one part only; got {name!r}.")
    named = [a for r in resolved if r is not None for a in r]
    if len(set(named)) != len(named):
        twice = sorted({a for a in named if named.count(a) > 1})
        raise ValueError(f"`name` must use each alphabet once; got {twice!r} twice in {name!r}.")
    rest = sorted(set(alphabets) - set(named))
    filled = [sorted(r) if r is not None else rest for r in resolved]
    if len(filled) == 2:
        filled.insert(1, [])
    train, validation, test = filled
    if not train or not test:
        raise ValueError(f"`name` must leave train and test non-empty; got {name!r}.")
    return train, validation, test


def get_split(dataset: ImageDataset | pd.DataFrame, name: str = "omniglot") -> ClassSplit:
    """Split a data set's classes by alphabet (see the module docstring for ``name``).

    Parameters
    ----------
    dataset:
        An :class:`~metaleep.data.base.ImageDataset` or its ``classes`` frame; needs an
        ``alphabet`` column, and uses a ``cluster`` column when present.
    name:
        ``"omniglot"``, another of :func:`list_splits`, or ``"A+B->C+D"``.

    Returns
    -------
    ClassSplit
        Validation and test classes whose look-alike cluster has a training class are moved
        to ``excluded_validation`` / ``excluded_test``.

    Examples
    --------
    >>> from metaleep.data.glyphs import load_bank
    >>> split = get_split(load_bank().classes_frame(), "latin+greek->cyrillic")
    >>> split.train_alphabets, split.test_alphabets
    (('Greek', 'Latin'), ('Cyrillic',))
    >>> len(split.excluded_test) > 0  # e.g. Cyrillic і looks like Latin i
    True
    """
    classes = dataset if isinstance(dataset, pd.DataFrame) else dataset.classes
    if "alphabet" not in classes.columns:
        raise ValueError(
            f"`dataset` must have an 'alphabet' column in its classes; "
            f"got columns {list(classes.columns)!r}."
        )
    alphabet = classes["alphabet"].astype(str).to_numpy()
    names = sorted(set(alphabet.tolist()))
    if _norm(name) == "omniglot":
        train_a, val_a, test_a = omniglot_alphabets(names)
    else:
        train_a, val_a, test_a = parse_split(name, names)
    ids = classes.index.to_numpy().astype(np.int64)
    train = ids[np.isin(alphabet, train_a)]
    validation = ids[np.isin(alphabet, val_a)]
    test = ids[np.isin(alphabet, test_a)]
    excluded_val = excluded_test = np.zeros(0, dtype=np.int64)
    if "cluster" in classes.columns:
        cluster = classes["cluster"].to_numpy()
        seen = np.unique(cluster[np.isin(alphabet, train_a)])
        leak_val = np.isin(cluster[np.isin(alphabet, val_a)], seen)
        leak_test = np.isin(cluster[np.isin(alphabet, test_a)], seen)
        excluded_val, validation = validation[leak_val], validation[~leak_val]
        excluded_test, test = test[leak_test], test[~leak_test]
    return ClassSplit(
        name=name,
        train=train,
        validation=validation,
        test=test,
        train_alphabets=tuple(train_a),
        validation_alphabets=tuple(val_a),
        test_alphabets=tuple(test_a),
        excluded_validation=excluded_val,
        excluded_test=excluded_test,
    )
