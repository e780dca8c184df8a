"""Episode manifests: a suite of episodes as one versioned, checksummed, pandas-readable file.

Format (``metaleep-episodes``, version 1; documented with examples in ``episodes/README.md``)::

    # metaleep episode manifest (format 1): pandas.read_csv(path, comment="#") reads the rows
    # {"checksum":"sha256:…","command":"…","dataset_id":"glyphs",…,"format_version":1,…}
    episode,ways,shots,queries,alphabet_rule,classes,support,query,alphabets
    0,5,1,15,any,812 95 1040 377 603,…,…,Cyrillic|Latin

- Line 1 is a fixed comment; line 2 is ``# `` and one JSON object (sorted keys, no spaces, ASCII):
  ``format`` (``"metaleep-episodes"``), ``format_version``, ``name``, ``description``,
  ``dataset_id``, ``dataset_version`` (the data set's :attr:`ImageDataset.version`), ``split``
  and ``part`` (e.g. ``"omniglot"``, ``"test"``), ``pool`` (sorted class ids episodes are drawn
  from), ``seed``, ``num_episodes``, ``specs`` (episode count per spec name), ``command`` (the
  ``metaleep episodes sample`` command that regenerates the file, less ``--out``) and
  ``checksum``.
- Then a CSV table (``,`` separated, ``\\n`` line ends, no quoting): one row per episode.
  ``classes`` are the N class ids in target order (target j is ``classes[j]``); ``support`` and
  ``query`` are image indices, class-major (the first ``shots`` support indices are target 0's),
  all space-separated; ``alphabets`` the episode's sorted distinct alphabets, ``|``-separated
  (empty when the data set has none).
- ``checksum`` is ``"sha256:"`` + the SHA-256 of the header JSON written without its
  ``checksum`` key, a ``\\n``, and the table's bytes: any edit, truncation or corruption of
  header or rows is detected on load.

The file holds no timestamp, no float and no version of metaleep: the same suite always gives
the same bytes, so a standard suite can be regenerated and compared byte for byte.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import pandas as pd

from metaleep._io import atomic_write_bytes
from metaleep._text import printable
from metaleep.episodes.spec import ALPHABET_RULES, AlphabetRule, Episode, EpisodeSpec

if TYPE_CHECKING:
    from metaleep.data.base import ImageDataset

FORMAT = "metaleep-episodes"
FORMAT_VERSION = 1
COLUMNS = (
    "episode",
    "ways",
    "shots",
    "queries",
    "alphabet_rule",
    "classes",
    "support",
    "query",
    "alphabets",
)
_FIRST_LINE = (
    f"# metaleep episode manifest (format {FORMAT_VERSION}): "
    'pandas.read_csv(path, comment="#") reads the rows'
)
_FORBIDDEN = set(',|#"\n\r')
_DEFAULT_COMMAND = "metaleep episodes sample ..."


class ManifestError(ValueError):
    """A manifest that cannot be read, or that does not match the data set it is used with."""


@dataclass(frozen=True, eq=False)
class Suite:
    """A named, reproducible list of episodes on one data set.

    Attributes
    ----------
    name:
        Suite name, e.g. ``"glyphs-5w1s"``.
    dataset_id, dataset_version:
        The data set the indices refer to (``ImageDataset.dataset_id`` / ``.version``).
    split, part:
        The class split and the part of it the episodes come from, e.g. ``"omniglot"`` and
        ``"test"`` (``"all"``/``"all"`` when every class is in the pool).
    seed:
        Seed of the suite: episode i is a function of (seed, i) and its spec.
    pool:
        int64 (P,): sorted class ids the episodes were drawn from.
    specs:
        The :class:`EpisodeSpec` of each episode (one per episode; mixed suites vary).
    episodes:
        The episodes, in file order.
    alphabets:
        Per episode, its sorted distinct alphabet names (empty tuples without alphabets).
    description:
        One line for people.
    command:
        The ``metaleep episodes sample`` command (less ``--out``) that regenerates the suite.

    Examples
    --------
    >>> ep = Episode.from_indices(0, [3, 1], [[30], [10]], [[31, 32], [11, 12]])
    >>> suite = Suite(name="tiny", dataset_id="toy", dataset_version="v1", split="all",
    ...               part="all", seed=0, pool=np.array([1, 3]),
    ...               specs=(EpisodeSpec(ways=2, shots=1, queries=2),), episodes=(ep,))
    >>> suite.to_frame()[["episode", "spec", "classes", "support"]]
       episode    spec classes   support
    0        0  2w1s2q  [3, 1]  [30, 10]
    """

    name: str
    dataset_id: str
    dataset_version: str
    split: str
    part: str
    seed: int
    pool: np.ndarray
    specs: tuple[EpisodeSpec, ...]
    episodes: tuple[Episode, ...]
    alphabets: tuple[tuple[str, ...], ...] = field(default=())
    description: str = ""
    command: str = ""

    def __post_init__(self) -> None:
        n = len(self.episodes)
        object.__setattr__(self, "episodes", tuple(self.episodes))
        object.__setattr__(self, "specs", tuple(self.specs))
        alphabets = tuple(tuple(str(a) for a in row) for row in self.alphabets) or ((),) * n
        object.__setattr__(self, "alphabets", alphabets)
        object.__setattr__(self, "pool", np.asarray(self.pool, dtype=np.int64).reshape(-1))
        if isinstance(self.seed, bool) or not isinstance(self.seed, int | np.integer):
            raise TypeError(f"`seed` must be an integer; got {self.seed!r}.")
        if self.seed < 0:
            raise ValueError(f"`seed` must be a non-negative integer; got {self.seed!r}.")
        object.__setattr__(self, "seed", int(self.seed))
        if len(self.specs) != n or len(self.alphabets) != n:
            raise ValueError(
                f"`specs` and `alphabets` must have one entry per episode ({n}); "
                f"got {len(self.specs)} and {len(self.alphabets)}."
            )
        for key in ("name", "split", "part", "dataset_id", "dataset_version"):
            value = getattr(self, key)
            if (
                not isinstance(value, str)
                or not value
                or set(value) & _FORBIDDEN - {","}
                or not value.isprintable()
            ):
                raise ValueError(
                    f'`{key}` must be a non-empty string without | # " or control characters; '
                    f"got {value!r}."
                )
        for row in self.alphabets:
            bad = [a for a in row if not a or set(a) & _FORBIDDEN or not a.isprintable()]
            if bad:
                raise ValueError(
                    '`alphabets` must be names without , | # " or control characters; '
                    f"got {bad[0]!r}."
                )
        indices = [ep.index for ep in self.episodes]
        if len(set(indices)) != n:
            raise ValueError("`episodes` must have distinct indices; got repeated ones.")
        for ep, spec in zip(self.episodes, self.specs, strict=True):
            got = (ep.ways, ep.shots, ep.queries)
            want = (spec.ways, spec.shots, spec.queries)
            sizes = (ep.support.size, ep.query.size)
            if got != want or sizes != (spec.n_support, spec.n_query):
                raise ValueError(
                    f"`episodes` must match their specs; episode {ep.index} has "
                    f"(ways, shots, queries) = {got}, its spec {spec.name}."
                )

    def __len__(self) -> int:
        return len(self.episodes)

    @property
    def fingerprint(self) -> str:
        """``"{dataset_id}@{dataset_version}"``, comparable with ``ImageDataset.fingerprint``."""
        return f"{self.dataset_id}@{self.dataset_version}"

    def spec_counts(self) -> dict[str, int]:
        """Episodes per spec name, sorted by name."""
        return dict(sorted(Counter(s.name for s in self.specs).items()))

    def to_frame(self) -> pd.DataFrame:
        """One row per episode: the manifest's columns plus ``spec`` (its name).

        ``classes``, ``support`` and ``query`` hold int64 arrays; ``alphabets`` a tuple of str.
        """
        return pd.DataFrame(
            {
                "episode": [ep.index for ep in self.episodes],
                "ways": [s.ways for s in self.specs],
                "shots": [s.shots for s in self.specs],
                "queries": [s.queries for s in self.specs],
                "alphabet_rule": [s.alphabets for s in self.specs],
                "spec": [s.name for s in self.specs],
                "classes": [ep.classes for ep in self.episodes],
                "support": [ep.support for ep in self.episodes],
                "query": [ep.query for ep in self.episodes],
                "alphabets": list(self.alphabets),
            }
        )

    def summary(self) -> dict[str, Any]:
        """What ``metaleep episodes show`` prints: provenance, specs, class and alphabet usage."""
        usage = Counter(int(c) for ep in self.episodes for c in ep.classes)
        counts = np.array(sorted(usage.values()) or [0])
        alphabet_use = Counter(a for row in self.alphabets for a in row)
        per_episode = Counter(len(row) for row in self.alphabets)
        return {
            "name": self.name,
            "description": self.description,
            "dataset": self.fingerprint,
            "split": f"{self.split}/{self.part}",
            "seed": self.seed,
            "episodes": len(self),
            "specs": self.spec_counts(),
            "pool_classes": int(self.pool.size),
            "classes_used": len(usage),
            "uses_per_class": {
                "min": int(counts.min()),
                "median": float(np.median(counts)),
                "max": int(counts.max()),
            },
            "alphabets": dict(sorted(alphabet_use.items())),
            "alphabets_per_episode": dict(sorted(per_episode.items())),
            "command": self.command,
        }

    def episode_digests(self) -> dict[int, str]:
        """SHA-256 of each episode's manifest row, by episode index: what the episode is
        (index, spec, classes, support and query images, alphabets), to bind results to it.

        Examples
        --------
        >>> ep = Episode.from_indices(0, [3, 1], [[30], [10]], [[31, 32], [11, 12]])
        >>> suite = Suite(name="tiny", dataset_id="toy", dataset_version="v1", split="all",
        ...               part="all", seed=0, pool=np.array([1, 3]),
        ...               specs=(EpisodeSpec(ways=2, shots=1, queries=2),), episodes=(ep,))
        >>> {i: d[:12] for i, d in suite.episode_digests().items()}
        {0: '6d29789ccfc5'}
        """
        return {
            ep.index: hashlib.sha256(row.encode("ascii")).hexdigest()
            for ep, row in zip(self.episodes, _rows(self), strict=True)
        }

    def recipe(self) -> dict[str, Any]:
        """What draws the suite's episodes, except how many: name, data set, split and part,
        seed and class pool (a digest of its ids). Two suites with the same recipe sampled by
        metaleep have the same episode i (episode i depends only on the seed and i), so a
        study of one extends to more episodes of the other."""
        pool = hashlib.sha256(" ".join(map(str, self.pool.tolist())).encode()).hexdigest()
        return {
            "name": self.name,
            "data": self.fingerprint,
            "split": f"{self.split}/{self.part}",
            "seed": self.seed,
            "pool": pool[:16],
        }

    def regenerate_hint(self, path: str | os.PathLike[str] | None = None) -> str:
        """The command that rewrites this suite's file."""
        command = self.command or _DEFAULT_COMMAND
        return f"`{command} --out {path}`" if path is not None else f"`{command}`"


# --- writing ---------------------------------------------------------------------------------


def _ints(values: np.ndarray) -> str:
    return " ".join(str(v) for v in np.asarray(values).tolist())


def _row(ep: Episode, spec: EpisodeSpec, alphabets: tuple[str, ...]) -> str:
    fields = [
        str(ep.index),
        str(spec.ways),
        str(spec.shots),
        str(spec.queries),
        spec.alphabets,
        _ints(ep.classes),
        _ints(ep.support),
        _ints(ep.query),
        "|".join(alphabets),
    ]
    return ",".join(fields)


def _rows(suite: Suite) -> list[str]:
    return [
        _row(ep, spec, alphabets)
        for ep, spec, alphabets in zip(suite.episodes, suite.specs, suite.alphabets, strict=True)
    ]


def _body(suite: Suite) -> bytes:
    return ("\n".join([",".join(COLUMNS), *_rows(suite)]) + "\n").encode("ascii")


def _header(suite: Suite) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "name": suite.name,
        "description": suite.description,
        "dataset_id": suite.dataset_id,
        "dataset_version": suite.dataset_version,
        "split": suite.split,
        "part": suite.part,
        "pool": suite.pool.tolist(),
        "seed": suite.seed,
        "num_episodes": len(suite),
        "specs": suite.spec_counts(),
        "command": suite.command,
    }


def _dumps(obj: dict[str, Any]) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def _checksum(header: dict[str, Any], body: bytes) -> str:
    unsigned = {k: v for k, v in header.items() if k != "checksum"}
    digest = hashlib.sha256(_dumps(unsigned).encode("ascii") + b"\n" + body)
    return "sha256:" + digest.hexdigest()


def manifest_bytes(suite: Suite) -> bytes:
    """The exact bytes :func:`write_manifest` writes for ``suite``."""
    body = _body(suite)
    header = _header(suite)
    header["checksum"] = _checksum(header, body)
    return f"{_FIRST_LINE}\n# {_dumps(header)}\n".encode("ascii") + body


def write_manifest(suite: Suite, path: str | os.PathLike[str]) -> Path:
    """Write ``suite`` to ``path`` atomically (see the module docstring for the format).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> ep = Episode.from_indices(0, [3, 1], [[30], [10]], [[31, 32], [11, 12]])
    >>> suite = Suite(name="tiny", dataset_id="toy", dataset_version="v1", split="all",
    ...               part="all", seed=0, pool=[1, 3],
    ...               specs=(EpisodeSpec(ways=2, shots=1, queries=2),), episodes=(ep,))
    >>> path = write_manifest(suite, pathlib.Path(tempfile.mkdtemp()) / "tiny.csv")
    >>> print(path.read_text().splitlines()[-1])
    0,2,1,2,any,3 1,30 10,31 32 11 12,
    >>> pd.read_csv(path, comment="#").loc[0, "query"]
    '31 32 11 12'
    >>> read_manifest(path).episodes[0] == ep
    True
    """
    return atomic_write_bytes(path, manifest_bytes(suite))


# --- reading ---------------------------------------------------------------------------------


def _fail(path: Path, problem: str, command: str | None = None) -> ManifestError:
    hint = f"`{command or _DEFAULT_COMMAND} --out {path}`"
    return ManifestError(f"Manifest {path}: {problem}. Regenerate it with {hint}.")


MAX_INDEX = 2**31 - 1
"""The largest episode index, class id or image index a manifest may hold (numbers beyond
would wrap in int64 tables or overflow; no data set or suite comes near)."""


def _parse_ints(text: str, what: str, row: int, path: Path, command: str) -> np.ndarray:
    try:
        values = [int(t) for t in text.split(" ")] if text else []
    except ValueError as e:
        raise _fail(path, f"row {row}: `{what}` must be space-separated integers", command) from e
    bad = next((v for v in values if not 0 <= v <= MAX_INDEX), None)
    if bad is not None:
        raise _fail(
            path, f"row {row}: `{what}` must be integers in 0..{MAX_INDEX}; got {bad}", command
        )
    return np.array(values, dtype=np.int64)


def read_manifest(path: str | os.PathLike[str], *, dataset: ImageDataset | None = None) -> Suite:
    """Read a manifest written by :func:`write_manifest`; check it against ``dataset`` if given.

    Raises
    ------
    FileNotFoundError
        When ``path`` does not exist.
    ManifestError
        (a ``ValueError``) for a file that is not a manifest, a newer format version, a
        truncated or edited file (row count or checksum), malformed rows, and — with
        ``dataset`` — any mismatch reported by :func:`validate_against`. Every message names
        the file and the command that regenerates it.
    """
    path = Path(os.fspath(path))
    if not path.is_file():
        raise FileNotFoundError(f"`path` must be an existing manifest file; got {str(path)!r}.")
    data = path.read_bytes()
    lines = data.split(b"\n", 2)
    if len(lines) < 3 or not lines[0].startswith(b"# metaleep episode manifest"):
        raise _fail(path, f"not a metaleep episode manifest (format {FORMAT!r})")
    try:
        header = json.loads(lines[1][2:].decode("ascii")) if lines[1].startswith(b"# ") else None
    except (UnicodeDecodeError, json.JSONDecodeError):
        header = None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise _fail(path, "line 2 must be '# ' and the JSON header; it is damaged")
    command = str(header.get("command") or _DEFAULT_COMMAND)
    version = header.get("format_version")
    if version != FORMAT_VERSION:
        raise _fail(
            path,
            f"format version {version!r} is not supported (this metaleep reads version "
            f"{FORMAT_VERSION}); upgrade metaleep or",
            command,
        )
    body = lines[2]
    rows = body.decode("ascii", errors="replace").split("\n")
    if rows and rows[-1] == "":
        rows.pop()
    if not rows or rows[0] != ",".join(COLUMNS):
        raise _fail(path, f"line 3 must be the column names {','.join(COLUMNS)}", command)
    expected = header.get("num_episodes")
    if len(rows) - 1 != expected:
        raise _fail(
            path,
            f"{len(rows) - 1} episode rows but the header says {expected}: the file is truncated "
            "or was edited",
            command,
        )
    if header.get("checksum") != _checksum(header, body):
        raise _fail(
            path,
            "checksum mismatch: the file was edited or corrupted after it was written",
            command,
        )
    episodes, specs, alphabets = [], [], []
    for number, row in enumerate(rows[1:], start=1):
        cells = row.split(",")
        if len(cells) != len(COLUMNS):
            raise _fail(path, f"row {number} has {len(cells)} fields, not {len(COLUMNS)}", command)
        try:
            index, ways, shots, queries = (int(c) for c in cells[:4])
            for name, value in (("episode", index), ("ways", ways), ("shots", shots)):
                if not 0 <= value <= MAX_INDEX:
                    raise ValueError(f"`{name}` must be in 0..{MAX_INDEX}; got {value}.")
            if not 0 <= queries <= MAX_INDEX:
                raise ValueError(f"`queries` must be in 0..{MAX_INDEX}; got {queries}.")
            rule = cells[4]
            if rule not in ALPHABET_RULES:
                raise ValueError(f"`alphabet_rule` must be one of {ALPHABET_RULES}; got {rule!r}.")
            spec = EpisodeSpec(ways, shots, queries, cast(AlphabetRule, rule))
        except ValueError as e:
            raise _fail(path, f"row {number}: {e}", command) from e
        classes = _parse_ints(cells[5], "classes", number, path, command)
        support = _parse_ints(cells[6], "support", number, path, command)
        query = _parse_ints(cells[7], "query", number, path, command)
        if (classes.size, support.size, query.size) != (ways, spec.n_support, spec.n_query):
            raise _fail(path, f"row {number}: index counts do not match {spec.name}", command)
        if np.intersect1d(support, query).size or len(np.unique(classes)) != ways:
            raise _fail(path, f"row {number}: repeated classes or support/query overlap", command)
        episodes.append(
            Episode.from_indices(
                index, classes, support.reshape(ways, shots), query.reshape(ways, queries)
            )
        )
        specs.append(spec)
        alphabets.append(tuple(cells[8].split("|")) if cells[8] else ())
    try:
        seed, pool = header["seed"], header["pool"]
        if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**63:
            raise ValueError(f"`seed` must be an integer in 0..2**63-1; got {seed!r}")
        if not isinstance(pool, list) or not all(
            isinstance(c, int) and not isinstance(c, bool) and 0 <= c <= MAX_INDEX for c in pool
        ):
            raise ValueError(f"`pool` must be a list of class ids in 0..{MAX_INDEX}")
        suite = Suite(
            name=str(header["name"]),
            dataset_id=str(header["dataset_id"]),
            dataset_version=str(header["dataset_version"]),
            split=str(header["split"]),
            part=str(header["part"]),
            seed=int(header["seed"]),
            pool=np.asarray(header["pool"], dtype=np.int64),
            specs=tuple(specs),
            episodes=tuple(episodes),
            alphabets=tuple(alphabets),
            description=str(header.get("description", "")),
            command=str(header.get("command", "")),
        )
    except (KeyError, TypeError, ValueError, OverflowError) as e:
        raise _fail(path, f"bad header ({printable(e, 200)})", command) from e
    if suite.spec_counts() != header.get("specs"):
        raise _fail(path, "the header's spec counts do not match the rows", command)
    used = [ep.classes for ep in episodes]
    outside = np.setdiff1d(np.concatenate(used) if used else np.empty(0, np.int64), suite.pool)
    if outside.size:
        raise _fail(path, f"classes {outside[:5].tolist()} are not in the header's pool", command)
    if dataset is not None:
        validate_against(suite, dataset, path=path)
    return suite


def validate_against(
    suite: Suite,
    dataset: ImageDataset,
    *,
    path: str | os.PathLike[str] | None = None,
) -> None:
    """Check that ``suite``'s episodes are valid episodes of ``dataset``.

    Checks, in order: the data set's id and version equal the suite's; every class id exists;
    every image index is in range; every support/query image carries the label of its target's
    class; recorded alphabets equal the data set's ``alphabet`` column.

    Raises
    ------
    ManifestError
        Naming ``path`` (or the suite), the first problem found and the command that
        regenerates the file.
    """
    where = Path(os.fspath(path)) if path is not None else Path(f"<suite {suite.name}>")
    command = suite.command or None
    if (dataset.dataset_id, dataset.version) != (suite.dataset_id, suite.dataset_version):
        raise _fail(
            where,
            f"it was made for data set {suite.fingerprint} but got {dataset.fingerprint} (a "
            "different data set or version; its image indices would mean other images)",
            command,
        )
    n_classes, n_images = dataset.num_classes, len(dataset)
    alphabet_of = None
    if "alphabet" in dataset.classes.columns:
        alphabet_of = dataset.classes["alphabet"].astype(str).to_numpy()
    for ep, alphabets in zip(suite.episodes, suite.alphabets, strict=True):
        bad = ep.classes[(ep.classes < 0) | (ep.classes >= n_classes)]
        if bad.size:
            raise _fail(
                where,
                f"episode {ep.index}: unknown class id {int(bad[0])} (the data set has "
                f"{n_classes} classes)",
                command,
            )
        for what, indices in (("support", ep.support), ("query", ep.query)):
            bad = indices[(indices < 0) | (indices >= n_images)]
            if bad.size:
                raise _fail(
                    where,
                    f"episode {ep.index}: {what} image index {int(bad[0])} is out of range "
                    f"(the data set has {n_images} images)",
                    command,
                )
            targets = ep.support_labels if what == "support" else ep.query_labels
            wrong = dataset.labels[indices] != ep.classes[targets]
            if wrong.any():
                k = int(np.argmax(wrong))
                raise _fail(
                    where,
                    f"episode {ep.index}: {what} image {int(indices[k])} has class "
                    f"{int(dataset.labels[indices[k]])}, not {int(ep.classes[targets[k]])}",
                    command,
                )
        if alphabet_of is not None:
            actual = tuple(sorted(set(alphabet_of[ep.classes].tolist())))
            if actual != alphabets:
                raise _fail(
                    where,
                    f"episode {ep.index}: alphabets {'|'.join(alphabets)!r} recorded, the data "
                    f"set says {'|'.join(actual)!r}",
                    command,
                )


def suite_from_episodes(
    episodes: Sequence[Episode],
    specs: Sequence[EpisodeSpec],
    *,
    name: str,
    dataset: ImageDataset,
    split: str,
    part: str,
    pool: np.ndarray | Sequence[int],
    seed: int,
    description: str = "",
    command: str = "",
) -> Suite:
    """A :class:`Suite` of ``episodes`` on ``dataset``, with each episode's alphabets filled in."""
    if "alphabet" in dataset.classes.columns:
        table = dataset.classes["alphabet"].astype(str).to_numpy()
        alphabets = tuple(tuple(sorted(set(table[ep.classes].tolist()))) for ep in episodes)
    else:
        alphabets = ((),) * len(episodes)
    return Suite(
        name=name,
        dataset_id=dataset.dataset_id,
        dataset_version=dataset.version,
        split=split,
        part=part,
        seed=seed,
        pool=np.sort(np.asarray(pool, dtype=np.int64)),
        specs=tuple(specs),
        episodes=tuple(episodes),
        alphabets=alphabets,
        description=description,
        command=command,
    )
