"""The glyphs data set: the committed bank, generation, determinism, the disk cache."""

from __future__ import annotations

import hashlib
import re
import subprocess
import sys
import unicodedata
import warnings
from pathlib import Path

import numpy as np
import pytest

from metaleep.data import glyphs
from metaleep.data._lookalike import face_key, lookalike_similarity
from metaleep.data._npz import write_npz
from metaleep.data.glyphs import (
    BANK_PATH,
    GlyphCacheWarning,
    cache_key,
    generate_glyphs,
    glyph_images,
    load_bank,
    load_glyphs,
)
from metaleep.data.instances import GENERATOR_VERSION

BANK_DIR = BANK_PATH.parent


@pytest.fixture(scope="module")
def bank():
    return load_bank()


@pytest.fixture(scope="module")
def raw():
    with np.load(BANK_PATH, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


@pytest.fixture(scope="module")
def one_per_class():
    """All classes, one instance each (the reference for the cache tests)."""
    return generate_glyphs(seed=0, instances_per_class=1)


# --- the committed bank ------------------------------------------------------------------


def test_bank_file_and_licences(raw):
    assert 0.5e6 < BANK_PATH.stat().st_size < 3e6
    for name in ("ATTRIBUTION.txt", "LICENSE-OFL-1.1.txt", "LICENSE-DejaVu.txt"):
        assert (BANK_DIR / name).stat().st_size > 1000
    assert "SIL OPEN FONT LICENSE Version 1.1" in (BANK_DIR / "LICENSE-OFL-1.1.txt").read_text()
    assert "Bitstream" in (BANK_DIR / "LICENSE-DejaVu.txt").read_text()
    attribution = (BANK_DIR / "ATTRIBUTION.txt").read_text(encoding="utf-8")
    for file in raw["face_file"].tolist():  # every face used is attributed, with its copyright
        block = attribution[attribution.index(f"({file},") :].split("\n\n")[0]
        assert "Copyright" in block and "License: " in block
    assert str(raw["version"]) in attribution


def test_bank_version_is_content_hash(raw):
    digest = hashlib.sha256()
    for name in sorted(raw):
        if name == "version":
            continue
        arr = raw[name]
        for part in (name.encode(), str(arr.dtype).encode(), str(arr.shape).encode()):
            digest.update(part)
        digest.update(arr.tobytes(order="C"))
    assert str(raw["version"]) == f"1.{digest.hexdigest()[:12]}"


def test_bank_size_and_shapes(bank, raw):
    assert 1000 <= bank.num_classes <= 1600
    assert raw["prototypes"].dtype == np.uint8 and raw["prototypes"].shape[1] == 64 * 64 // 8
    assert np.all(np.diff(raw["proto_class"]) >= 0)  # sorted by class
    assert len(np.unique(raw["class_codepoint"])) == bank.num_classes


def test_bank_faces_and_families(raw):
    proto_class, proto_face = raw["proto_class"], raw["proto_face"]
    family = raw["face_family"]
    for c in range(len(raw["class_codepoint"])):
        faces = proto_face[proto_class == c]
        assert len(faces) >= 3, c
        assert len(set(faces.tolist())) == len(faces)  # one prototype per face
        assert len(set(family[faces].tolist())) >= 2, c


def test_bank_alphabets(bank, raw):
    counts = np.bincount(raw["class_alphabet"], minlength=len(raw["alphabets"]))
    assert counts.min() >= 14 and counts.max() <= 55
    assert len(raw["alphabets"]) >= 25


def test_bank_letters_are_what_they_claim(bank):
    from fontTools import unicodedata as ftu  # matplotlib depends on fontTools

    for code, name, alphabet in zip(bank.codepoint, bank.name, bank.alphabet, strict=True):
        ch = chr(int(code))
        assert unicodedata.name(ch) == name
        assert unicodedata.category(ch) in ("Ll", "Lo")
        assert unicodedata.normalize("NFKC", ch) == ch and not unicodedata.decomposition(ch)
        assert ftu.script_name(ftu.script(ch)) == alphabet


def test_bank_prototypes_size_normalised(bank):
    for c in range(0, bank.num_classes, 97):
        protos = bank.prototypes(c)
        assert protos.shape[1:] == (64, 64) and set(np.unique(protos)) <= {0, 1}
        for p in protos:
            rows, cols = np.flatnonzero(p.any(1)), np.flatnonzero(p.any(0))
            extent = max(rows[-1] - rows[0], cols[-1] - cols[0]) + 1
            assert 44 <= extent <= 50  # longest side scaled to 48 px


def _renders_and_keys(bank, ids):
    renders = [bank.prototypes(int(c)) for c in ids]
    keys = [[face_key(f) for f in bank.face_file[bank.prototype_faces(int(c))]] for c in ids]
    return renders, keys


def test_similarity_matches_naive_reference(bank):
    """lookalike_similarity == the formula, with loops, on classes that include look-alikes."""
    frame = bank.classes_frame()
    ids = frame.index[frame.char.isin(list("pnhoαρηπпнջ"))].to_numpy()
    renders, keys = _renders_and_keys(bank, ids)
    fast = lookalike_similarity(renders, keys)

    def subset(r, k):
        order = np.argsort(np.asarray(k), kind="stable")[:16]
        return [r[i] for i in sorted(order)]

    feats = []
    for r, k in zip(renders, keys, strict=True):
        pooled = [
            x.reshape(32, 2, 32, 2).sum(axis=(1, 3)).ravel().astype(float) for x in subset(r, k)
        ]
        feats.append(pooled)
    n = len(ids)
    naive = np.ones((n, n))
    for a in range(n):
        for b in range(n):
            if a == b:
                continue

            def directed(x, y):
                return np.mean(
                    [max(u @ v / np.linalg.norm(u) / np.linalg.norm(v) for v in y) for u in x]
                )

            naive[a, b] = 0.5 * (directed(feats[a], feats[b]) + directed(feats[b], feats[a]))
    np.testing.assert_allclose(fast, naive, atol=1e-12)


@pytest.mark.slow
def test_no_cross_script_lookalikes_outside_clusters(bank):
    """No two classes of different scripts are look-alikes (> removal threshold), and any two
    above the cluster threshold share a cluster id."""
    renders, keys = _renders_and_keys(bank, range(bank.num_classes))
    sim = lookalike_similarity(renders, keys)
    cross = bank.alphabet[:, None] != bank.alphabet[None, :]
    assert sim[cross].max() <= bank.meta["lookalike_across"]
    same_script = ~cross & ~np.eye(len(sim), dtype=bool)
    assert sim[same_script].max() <= bank.meta["lookalike_within"]
    a, b = np.nonzero(np.triu(cross & (sim > bank.meta["cluster_across"]), 1))
    assert len(a) > 10  # look-alikes exist (Latin p / Greek ρ ...) and are clustered
    np.testing.assert_array_equal(bank.cluster[a], bank.cluster[b])
    # and clusters are no bigger than their links: every member of a multi-class cluster has a
    # cross-script partner above the threshold
    linked = np.zeros(len(sim), dtype=bool)
    linked[a] = linked[b] = True
    sizes = np.bincount(bank.cluster)
    np.testing.assert_array_equal(linked, sizes[bank.cluster] > 1)


# --- the data set ------------------------------------------------------------------------


def test_load_glyphs_contents(bank):
    ds = load_glyphs(instances_per_class=2)
    assert ds.images.shape == (2 * bank.num_classes, 1, 28, 28)
    assert str(ds.images.dtype) == "torch.uint8"
    np.testing.assert_array_equal(ds.labels, np.repeat(np.arange(bank.num_classes), 2))
    assert ds.dataset_id == "glyphs"
    assert ds.version == f"{bank.version}-seed0-n2-gen{GENERATOR_VERSION}"
    c = ds.classes
    assert c.index.name == "class_id" and list(c.index) == list(range(bank.num_classes))
    assert {"name", "char", "codepoint", "alphabet", "cluster", "n_faces"} <= set(c.columns)
    alpha = c[c.char == "α"].iloc[0]
    assert alpha["name"] == "GREEK SMALL LETTER ALPHA" and alpha["alphabet"] == "Greek"
    assert alpha["codepoint"] == 0x3B1
    assert (c.n_faces >= 3).all()
    # images are glyphs: ink on a clean background, not empty, not saturated
    arr = ds.images.numpy()[:, 0]
    ink = (arr > 127).mean(axis=(1, 2))
    assert np.median(ink) > 0.05 and ink.max() < 0.8
    assert (ink > 0.01).mean() > 0.999
    assert arr[:, 0, :].mean() < 10  # the top row is mostly background


def _check_metadataset(source, ds):
    import learn2learn as l2l

    fast = l2l.data.MetaDataset(source, labels_to_indices=ds.labels_to_indices)
    slow = l2l.data.MetaDataset(source)  # iterates the data set itself
    assert sorted(slow.labels) == list(range(ds.num_classes))
    for c in (0, 500, ds.num_classes - 1):
        assert sorted(slow.labels_to_indices[c]) == sorted(fast.labels_to_indices[c])
        assert sorted(fast.labels_to_indices[c]) == ds.labels_to_indices[c].tolist()
    tasks = l2l.data.Taskset(
        fast,
        task_transforms=[
            l2l.data.transforms.NWays(fast, n=5),
            l2l.data.transforms.KShots(fast, k=2),
            l2l.data.transforms.LoadData(fast),
        ],
        num_tasks=3,
    )
    x, y = tasks[0]
    assert tuple(x.shape) == (10, 1, 28, 28) and float(x.max()) <= 1.0
    assert len(set(np.asarray(y).tolist())) == 5


def test_metadataset_accepts_glyphs():
    pytest.importorskip("learn2learn", reason="needs the l2l extra")
    ds = load_glyphs(instances_per_class=2)
    _check_metadataset(ds, ds)


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"seed": -1}, ValueError, "`seed` must be >= 0; got -1."),
        ({"seed": 1.5}, TypeError, "`seed` must be an int; got 1.5."),
        ({"instances_per_class": 0}, ValueError, "`instances_per_class` must be >= 1; got 0."),
        (
            {"instances_per_class": True},
            TypeError,
            "`instances_per_class` must be an int; got True.",
        ),
    ],
)
def test_argument_errors(kwargs, error, message):
    with pytest.raises(error, match=f"^{re.escape(message)}$"):
        load_glyphs(**kwargs)


# --- determinism -------------------------------------------------------------------------


def test_same_seed_same_bytes_other_seed_differs():
    ids = [0, 10, 700, 1300]
    a = generate_glyphs(seed=3, instances_per_class=4, classes=ids)
    b = generate_glyphs(seed=3, instances_per_class=4, classes=ids)
    assert a.tobytes() == b.tobytes()
    c = generate_glyphs(seed=4, instances_per_class=4, classes=ids)
    assert (a != c).mean() > 0.05


def test_instance_does_not_depend_on_count_or_other_classes():
    many = generate_glyphs(seed=1, instances_per_class=6, classes=[5, 6, 7]).reshape(3, 6, 28, 28)
    few = generate_glyphs(seed=1, instances_per_class=2, classes=[7]).reshape(1, 2, 28, 28)
    np.testing.assert_array_equal(many[2, :2], few[0])
    assert not np.array_equal(many[2, 0], many[2, 1])  # instances differ


def test_identical_in_another_process():
    code = (
        "import hashlib; from metaleep.data.glyphs import generate_glyphs; "
        "print(hashlib.sha256(generate_glyphs(seed=2, instances_per_class=3, "
        "classes=range(0, 1398, 37)).tobytes()).hexdigest())"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    here = generate_glyphs(seed=2, instances_per_class=3, classes=range(0, 1398, 37))
    assert out == hashlib.sha256(here.tobytes()).hexdigest()


# --- the cache ---------------------------------------------------------------------------


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("METALEEP_CACHE_DIR", str(tmp_path))
    return tmp_path / "glyphs"


def _no_generation(*args, **kwargs):
    raise AssertionError("the cache should have been used")


def test_cache_round_trip(cache_dir, one_per_class, monkeypatch, bank):
    first = glyph_images(instances_per_class=1)
    np.testing.assert_array_equal(first, one_per_class)
    path = cache_dir / f"{cache_key(0, 1)}.npz"
    assert path.exists() and [p.name for p in cache_dir.iterdir()] == [path.name]
    monkeypatch.setattr(glyphs, "generate_glyphs", _no_generation)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        again = glyph_images(instances_per_class=1)
    np.testing.assert_array_equal(again, one_per_class)
    assert load_glyphs(instances_per_class=1).images.shape[0] == bank.num_classes
    info = glyphs.cache_info(path)
    assert info["images"] == bank.num_classes and info["seconds"] > 0


def _write_cache(path: Path, images: np.ndarray, *, key: str, digest: str | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    digest = digest or hashlib.sha256(images.tobytes()).hexdigest()
    write_npz(
        path,
        {
            "images": images,
            "key": np.asarray(key),
            "sha256": np.asarray(digest),
            "seconds": np.asarray(1.0),
        },
    )


def _damage_truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _damage_flip(path: Path) -> None:
    data = bytearray(path.read_bytes())
    for i in range(len(data) // 3, len(data) // 3 + 64):
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))


def _damage_empty(path: Path) -> None:
    path.write_bytes(b"")


@pytest.fixture
def counted(monkeypatch, one_per_class):
    """Replace generation by the reference images, counting the calls."""
    calls: list[dict] = []

    def fake(**kwargs):
        calls.append(kwargs)
        assert kwargs["seed"] == 0 and kwargs["instances_per_class"] == 1
        return one_per_class.copy()

    monkeypatch.setattr(glyphs, "generate_glyphs", fake)
    return calls


@pytest.mark.parametrize("damage", [_damage_truncate, _damage_flip, _damage_empty])
def test_damaged_cache_is_regenerated(cache_dir, one_per_class, counted, damage):
    key = cache_key(0, 1)
    path = cache_dir / f"{key}.npz"
    _write_cache(path, one_per_class, key=key)
    damage(path)
    with pytest.warns(GlyphCacheWarning, match="unusable"):
        images = glyph_images(instances_per_class=1)
    assert len(counted) == 1
    np.testing.assert_array_equal(images, one_per_class)
    with warnings.catch_warnings():  # the file was rewritten and is good now
        warnings.simplefilter("error")
        np.testing.assert_array_equal(glyph_images(instances_per_class=1), one_per_class)
    assert len(counted) == 1


@pytest.mark.parametrize("what", ["checksum", "key", "shape"])
def test_wrong_content_is_detected(cache_dir, one_per_class, counted, what):
    key = cache_key(0, 1)
    path = cache_dir / f"{key}.npz"
    images = one_per_class.copy()
    if what == "checksum":  # pixels changed after the checksum was taken
        digest = hashlib.sha256(images.tobytes()).hexdigest()
        images[0, 0, 0] ^= 1
        _write_cache(path, images, key=key, digest=digest)
    elif what == "key":
        _write_cache(path, images, key=key.replace("seed0", "seed9"))
    else:
        _write_cache(path, images[:-1], key=key)
    with pytest.warns(GlyphCacheWarning, match=re.escape(str(path))):
        out = glyph_images(instances_per_class=1)
    assert len(counted) == 1
    np.testing.assert_array_equal(out, one_per_class)


def test_failed_write_leaves_no_file(cache_dir, one_per_class, counted, monkeypatch):
    """A write that dies half way leaves neither the cache file nor a temporary file."""

    def dying_writer(target, arrays, **kwargs):
        with open(target, "wb") as fh:
            fh.write(b"PK\x03\x04 half an archive")
        raise KeyboardInterrupt  # as if the process were interrupted mid-write

    with monkeypatch.context() as patch:
        patch.setattr(glyphs, "write_npz", dying_writer)
        with pytest.raises(KeyboardInterrupt):
            glyph_images(instances_per_class=1)
    assert not cache_dir.exists() or list(cache_dir.iterdir()) == []
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing half-written is found
        np.testing.assert_array_equal(glyph_images(instances_per_class=1), one_per_class)
    assert [p.suffix for p in cache_dir.iterdir()] == [".npz"]


def test_cache_false_writes_nothing(cache_dir, counted):
    glyph_images(instances_per_class=1, cache=False)
    glyph_images(instances_per_class=1, cache=False)
    assert len(counted) == 2
    assert not cache_dir.exists() or list(cache_dir.iterdir()) == []
