"""Class splits by alphabet: hygiene, the omniglot rule, the "A+B->C" syntax and its errors."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from metaleep.data.glyphs import load_bank
from metaleep.data.splits import ClassSplit, get_split, list_splits, parse_split


@pytest.fixture(scope="module")
def classes() -> pd.DataFrame:
    return load_bank().classes_frame()


def _check_hygiene(split: ClassSplit, classes: pd.DataFrame) -> None:
    parts = [split.train, split.validation, split.test]
    everything = np.concatenate([*parts, split.excluded_validation, split.excluded_test])
    assert len(np.unique(everything)) == len(everything)  # disjoint
    alphabet = classes["alphabet"]
    for ids, names in (
        (split.train, split.train_alphabets),
        (split.validation, split.validation_alphabets),
        (split.test, split.test_alphabets),
        (split.excluded_validation, split.validation_alphabets),
        (split.excluded_test, split.test_alphabets),
    ):
        assert set(alphabet.loc[ids]) <= set(names)
    assert not set(split.train_alphabets) & set(split.test_alphabets)
    assert not set(split.train_alphabets) & set(split.validation_alphabets)
    assert not set(split.validation_alphabets) & set(split.test_alphabets)
    # every class of the named alphabets is in exactly one place
    named = set(split.train_alphabets) | set(split.validation_alphabets)
    named |= set(split.test_alphabets)
    assert set(everything) == set(classes.index[alphabet.isin(named)])
    # no validation/test class shares a look-alike cluster with a training class
    seen = set(classes.loc[split.train, "cluster"])
    assert not seen & set(classes.loc[split.test, "cluster"])
    assert not seen & set(classes.loc[split.validation, "cluster"])
    # and everything excluded does
    assert set(classes.loc[split.excluded_test, "cluster"]) <= seen
    assert set(classes.loc[split.excluded_validation, "cluster"]) <= seen


@pytest.mark.parametrize("name", list_splits())
def test_named_splits_are_clean(classes, name):
    split = get_split(classes, name)
    _check_hygiene(split, classes)
    assert len(split.train) > 0 and len(split.test) > 0
    for ids in (split.train, split.validation, split.test):
        assert ids.dtype == np.int64 and np.all(np.diff(ids) > 0)


def test_omniglot_split(classes):
    split = get_split(classes)
    assert split.name == "omniglot"
    n = classes["alphabet"].nunique()
    n_background = round(2 / 3 * n)
    assert len(split.test_alphabets) == n - n_background
    assert len(split.validation_alphabets) == round(n_background / 5)
    assert len(split.train_alphabets) == n_background - round(n_background / 5)
    again = get_split(classes, "OMNIGLOT")
    np.testing.assert_array_equal(split.train, again.train)
    np.testing.assert_array_equal(split.test, again.test)
    # the rule is the documented hash order, not chance
    import hashlib

    order = sorted(
        classes["alphabet"].unique(),
        key=lambda a: hashlib.sha256(f"metaleep-split:{a.lower()}".encode()).hexdigest(),
    )
    assert set(split.test_alphabets) == set(order[n_background:])
    assert set(split.validation_alphabets) == set(
        order[n_background - round(n_background / 5) : n_background]
    )


def test_latin_greek_to_cyrillic_excludes_lookalikes(classes):
    split = get_split(classes, "latin+greek->cyrillic")
    assert split.train_alphabets == ("Greek", "Latin")
    assert split.test_alphabets == ("Cyrillic",) and split.validation_alphabets == ()
    assert len(split.validation) == 0
    assert split.n_excluded == len(split.excluded_test) > 0
    excluded_chars = set(classes.loc[split.excluded_test, "char"])
    assert excluded_chars & set("іиүћк")  # e.g. Cyrillic і looks like Latin i
    assert split.summary()["excluded_test"] == len(split.excluded_test)
    n_cyrillic = int((classes.alphabet == "Cyrillic").sum())
    assert len(split.test) + len(split.excluded_test) == n_cyrillic


def test_syntax_variants(classes):
    a = get_split(classes, "Latin + GREEK -> cyrillic")
    b = get_split(classes, "greek+latin->Cyrillic")
    np.testing.assert_array_equal(a.test, b.test)
    three = get_split(classes, "latin->greek->cyrillic")
    assert three.validation_alphabets == ("Greek",) and len(three.validation) > 0
    assert three.excluded_validation.size > 0  # Greek ρ looks like Latin p
    star = get_split(classes, "*->canadian_aboriginal")
    assert star.test_alphabets == ("Canadian Aboriginal",)
    assert len(star.train_alphabets) == classes["alphabet"].nunique() - 1
    other = get_split(classes, "latin->*")
    assert "Latin" not in other.test_alphabets and len(other.test_alphabets) > 20


def test_dataset_or_frame(classes):
    from metaleep.data.glyphs import load_glyphs

    ds = load_glyphs(instances_per_class=1)
    np.testing.assert_array_equal(
        get_split(ds, "latin->greek").test, get_split(classes, "latin->greek").test
    )


VALID = "Alpha, Beta, Gamma"


@pytest.mark.parametrize(
    ("name", "message"),
    [
        (
            "alpha->delta",
            f"`name` must name known alphabets ({VALID}); got 'delta' in 'alpha->delta'.",
        ),
        (
            "alpha",
            "`name` must be a named split (omniglot, latin+greek->cyrillic, latin->greek, "
            "latin+greek+cyrillic->armenian+georgian, devanagari+bengali+gujarati+gurmukhi->"
            "kannada+malayalam+tamil+telugu) or look like 'A+B->C+D' or 'A+B->V->C'; "
            "got 'alpha'.",
        ),
        (
            "alpha->beta->gamma->alpha",
            "`name` must be a named split (omniglot, latin+greek->cyrillic, latin->greek, "
            "latin+greek+cyrillic->armenian+georgian, devanagari+bengali+gujarati+gurmukhi->"
            "kannada+malayalam+tamil+telugu) or look like 'A+B->C+D' or 'A+B->V->C'; "
            "got 'alpha->beta->gamma->alpha'.",
        ),
        ("alpha+->beta", "`name` must not have empty alphabet names; got 'alpha+->beta'."),
        (
            "alpha+beta->beta",
            "`name` must use each alphabet once; got ['Beta'] twice in 'alpha+beta->beta'.",
        ),
        ("*->*", "`name` may use '*' for one part only; got '*->*'."),
        (
            "alpha+beta+gamma->*",
            "`name` must leave train and test non-empty; got 'alpha+beta+gamma->*'.",
        ),
    ],
)
def test_errors(name, message):
    frame = pd.DataFrame({"name": list("abcdef"), "alphabet": ["Alpha", "Beta", "Gamma"] * 2})
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        get_split(frame, name)


def test_missing_alphabet_column_and_type_errors():
    frame = pd.DataFrame({"name": ["a"]})
    message = "`dataset` must have an 'alphabet' column in its classes; got columns ['name']."
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        get_split(frame)
    with pytest.raises(TypeError, match=re.escape("`name` must be a str; got 3.")):
        parse_split(3, ["A"])  # type: ignore[arg-type]


def test_without_clusters_nothing_is_excluded():
    frame = pd.DataFrame({"name": list("abcdef"), "alphabet": ["Alpha", "Beta", "Gamma"] * 2})
    split = get_split(frame, "alpha->beta->gamma")
    assert split.train.tolist() == [0, 3] and split.validation.tolist() == [1, 4]
    assert split.test.tolist() == [2, 5] and split.n_excluded == 0


def test_cluster_exclusion_by_hand():
    frame = pd.DataFrame(
        {
            "name": list("abcdef"),
            "alphabet": ["A", "A", "B", "B", "C", "C"],
            "cluster": [0, 1, 0, 2, 1, 3],
        }
    )
    split = get_split(frame, "a->b->c")
    assert split.validation.tolist() == [3] and split.excluded_validation.tolist() == [2]
    assert split.test.tolist() == [5] and split.excluded_test.tolist() == [4]
    assert split.n_excluded == 2


def test_classsplit_validates():
    ids = np.array([1, 2])
    with pytest.raises(ValueError, match="must be disjoint"):
        ClassSplit("x", ids, np.array([2]), np.array([3]), (), (), (), ids[:0], ids[:0])
    with pytest.raises(TypeError, match="`test` must be a 1-D integer array"):
        ClassSplit("x", ids, ids[:0], np.array([0.5]), (), (), (), ids[:0], ids[:0])
    split = ClassSplit("x", np.array([3, 1]), ids[:0], np.array([5]), (), (), (), ids[:0], ids[:0])
    assert split.train.tolist() == [1, 3]
