"""Input validation: every bad input raises with its full message (metaleep.metrics._validation)."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from metaleep.metrics import (
    PROBS_ATOL,
    h_score,
    h_score_batch,
    leep_score,
    leep_score_batch,
    logme_score,
    nce_score,
    nleep_score,
)
from metaleep.metrics._validation import episodes

GOOD_PROBS = [[0.25, 0.75], [0.5, 0.5], [1.0, 0.0]]
GOOD_LABELS = [0, 1, 1]
SUM_HINT = "(a row of probabilities; pass from_logits=True if these are logits)"
NORMALISE_HINT = "(a row of probabilities, each in [0, 1]; normalise the row if it is one)"
NEG_HINT = "(a probability; pass from_logits=True if these are logits)"
LABELS_EXPECTED = (
    "integer class ids (bool and float labels are rejected; cast with .astype(int) or .long())"
)


def full(msg: str) -> str:
    """A pattern matching exactly ``msg``."""
    return "^" + re.escape(msg) + "$"


def test_tolerance_constant() -> None:
    assert PROBS_ATOL == 1e-6


# ----------------------------------------------------------------------------- probabilities


@pytest.mark.parametrize(
    ("probs", "msg"),
    [
        ([[0.5, 0.5], [np.nan, 1.0]], "`probs[1, 0]` must be finite; got nan."),
        ([[0.5, 0.5], [0.0, np.inf]], "`probs[1, 1]` must be finite; got inf."),
        ([[0.5, 0.5], [1.5, -0.5]], f"`probs[1, 1]` must be non-negative {NEG_HINT}; got -0.5."),
        (
            [[0.5, 0.6], [0.5, 0.5]],  # no entry above 1: not logits, just not normalised
            "`probs[0].sum()` must be 1 within an absolute tolerance of 1e-06 "
            f"{NORMALISE_HINT}; got 1.1.",
        ),
        (
            [[2.0, 3.0], [0.5, 0.5]],  # positive logits: caught by the row sum
            "`probs[0].sum()` must be 1 within an absolute tolerance of 1e-06 "
            f"{SUM_HINT}; got 5.0.",
        ),
    ],
)
def test_bad_probabilities(probs: list, msg: str) -> None:
    with pytest.raises(ValueError, match=full(msg)):
        leep_score(probs, [0, 1])


def test_row_sum_tolerance_is_inclusive_of_1e_6() -> None:
    ok = [[0.5, 0.5 + 0.9e-6], [0.5, 0.5]]
    assert np.isfinite(leep_score(ok, [0, 1]))
    bad = [[0.5, 0.5 + 1.1e-6], [0.5, 0.5]]
    with pytest.raises(ValueError, match=re.escape("`probs[0].sum()` must be 1 within")):
        leep_score(bad, [0, 1])


def test_logits_must_be_finite_with_from_logits() -> None:
    with pytest.raises(ValueError, match=full("`probs[0, 1]` must be finite; got nan.")):
        leep_score([[0.0, np.nan], [1.0, 2.0]], [0, 1], from_logits=True)
    # Negative and unnormalised values are fine as logits.
    assert np.isfinite(leep_score([[-3.0, 7.0], [1.0, 2.0]], [0, 1], from_logits=True))


def test_batch_and_list_positions_in_messages() -> None:
    probs = np.full((2, 3, 2), 0.5)
    probs[1, 2, 1] = np.nan
    with pytest.raises(ValueError, match=full("`probs[1, 2, 1]` must be finite; got nan.")):
        leep_score_batch(probs, np.zeros((2, 3), dtype=int))
    with pytest.raises(ValueError, match=full("`probs[1][2, 1]` must be finite; got nan.")):
        leep_score_batch(list(probs), [[0, 1, 0], [0, 1, 0]])


def test_padding_may_hold_anything() -> None:
    probs = np.full((2, 3, 2), 0.5)
    probs[1, 2] = [np.nan, -4.0]
    mask = np.array([[True, True, True], [True, True, False]])
    got = leep_score_batch(probs, np.array([[0, 1, 0], [0, 1, 99]]), mask=mask)
    assert np.all(np.isfinite(got))
    with pytest.raises(ValueError, match=full("`probs[1, 2, 0]` must be finite; got nan.")):
        leep_score_batch(probs, np.array([[0, 1, 0], [0, 1, 99]]))


def test_validate_false_skips_value_checks_only() -> None:
    # Unnormalised but positive rows: no error without validation (the caller's promise).
    assert np.isfinite(leep_score([[2.0, 1.0], [1.0, 2.0]], [0, 1], validate=False))
    with pytest.raises(
        ValueError, match=full("`probs` must be a 2-D array of shape (n, Z); got (2,).")
    ):
        leep_score([0.5, 0.5], [0, 1], validate=False)


# ----------------------------------------------------------------------------- types, shapes


@pytest.mark.parametrize(
    ("probs", "exc", "msg"),
    [
        (
            "abc",
            TypeError,
            "`probs` must be a numpy array, a torch tensor or a (nested) list; got <class 'str'>.",
        ),
        (
            np.ones((2, 2), dtype=bool),
            TypeError,
            "`probs` must be real numbers (an integer or float dtype); got dtype('bool').",
        ),
        (
            torch.ones(2, 2, dtype=torch.complex128),
            TypeError,
            "`probs` must be real numbers (an integer or float dtype); got torch.complex128.",
        ),
        (
            [[0.5, 0.5], [1.0]],
            ValueError,
            "`probs` must be a rectangular array; got 'a ragged nested sequence'.",
        ),
        ([0.5, 0.5], ValueError, "`probs` must be a 2-D array of shape (n, Z); got (2,)."),
        (
            np.zeros((0, 3)),
            ValueError,
            "`probs` must be an array with at least 1 row (samples); got (0, 3).",
        ),
        (
            np.zeros((2, 0)),
            ValueError,
            "`probs` must be an array with at least one column (source label); got (2, 0).",
        ),
    ],
)
def test_bad_probs_types_and_shapes(probs: object, exc: type, msg: str) -> None:
    with pytest.raises(exc, match=full(msg)):
        leep_score(probs, [0, 1])


@pytest.mark.parametrize(
    ("labels", "exc", "msg"),
    [
        ([0.0, 1.0, 1.0], TypeError, f"`labels` must be {LABELS_EXPECTED}; got dtype('float64')."),
        (
            torch.tensor([0.0, 1.0, 1.0]),
            TypeError,
            f"`labels` must be {LABELS_EXPECTED}; got torch.float32.",
        ),
        ([True, False, True], TypeError, f"`labels` must be {LABELS_EXPECTED}; got dtype('bool')."),
        (["a", "b", "c"], TypeError, f"`labels` must be {LABELS_EXPECTED}; got dtype('<U1')."),
        (
            [0, 1],
            ValueError,
            "`labels` must be 1-D with one label per row (length 3); got (2,).",
        ),
        (
            [[0], [1], [1]],
            ValueError,
            "`labels` must be 1-D with one label per row (length 3); got (3, 1).",
        ),
        ([], ValueError, "`labels` must be 1-D with one label per row (length 3); got (0,)."),
    ],
)
def test_bad_labels(labels: object, exc: type, msg: str) -> None:
    with pytest.raises(exc, match=full(msg)):
        nce_score(GOOD_PROBS, labels)


def test_labels_of_any_integer_dtype_are_accepted() -> None:
    expected = leep_score(GOOD_PROBS, GOOD_LABELS)
    for labels in (
        np.array(GOOD_LABELS, dtype=np.uint8),
        np.array(GOOD_LABELS, dtype=np.int32),
        torch.tensor(GOOD_LABELS, dtype=torch.int16),
        np.array([-5, 3, 3]),
    ):
        assert leep_score(GOOD_PROBS, labels) == pytest.approx(expected, abs=1e-15)


def test_minimum_sample_counts_name_the_metric() -> None:
    msg = "`features` must be an array with at least 2 rows (samples) for h_score; got (1, 3)."
    with pytest.raises(ValueError, match=full(msg)):
        h_score([[1.0, 2.0, 3.0]], [0])
    msg = "`features` must be an array with at least 2 rows (samples) for nleep; got (1, 3)."
    with pytest.raises(ValueError, match=full(msg)):
        nleep_score([[1.0, 2.0, 3.0]], [0])
    # LogME, LEEP and NCE are defined for one sample.
    assert np.isfinite(logme_score([[1.0, 2.0, 3.0]], [0]))
    assert leep_score([[0.2, 0.8]], [4]) == 0.0


def test_features_must_be_finite() -> None:
    features = np.ones((4, 2))
    features[2, 1] = np.inf
    with pytest.raises(ValueError, match=full("`features[2, 1]` must be finite; got inf.")):
        logme_score(features, [0, 1, 0, 1])
    # Finite but huge values whose row sums overflow are fine for the check.
    assert np.isfinite(h_score(np.array([[1e308, 1e308], [-1e308, 1e308], [0.0, 1.0]]), [0, 1, 0]))


def test_logme_rejects_features_whose_gram_matrix_overflows() -> None:
    msg = (
        "`features` must be small enough for FᵀF to be finite in logme (|values| up to about "
        "1e150); got 1e+200."
    )
    with pytest.raises(ValueError, match=full(msg)):
        logme_score(np.array([[1e200, 0.0], [0.0, 1.0], [1.0, 1.0]]), [0, 1, 1])


# ----------------------------------------------------------------------------- batches


@pytest.mark.parametrize(
    ("kwargs", "exc", "msg"),
    [
        (
            {"probs": np.full((3, 2), 0.5)},
            ValueError,
            "`probs` must be a 3-D array of shape (E, n, Z) or a sequence of (n_e, Z) arrays; "
            "got (3, 2).",
        ),
        (
            {"probs": np.full((0, 3, 2), 0.5), "labels": np.zeros((0, 3), dtype=int)},
            ValueError,
            "`probs` must be a non-empty batch of episodes; got (0, 3, 2).",
        ),
        (
            {"probs": [], "labels": []},
            ValueError,
            "`probs` must be a non-empty sequence of episodes; got [].",
        ),
        (
            {"labels": np.zeros((2, 2), dtype=int)},
            ValueError,
            "`labels` must be of shape (E, n) = (2, 3); got (2, 2).",
        ),
        (
            {"mask": np.ones((2, 3), dtype=int)},
            TypeError,
            "`mask` must be boolean; got dtype('int64').",
        ),
        (
            {"mask": np.ones((2, 2), dtype=bool)},
            ValueError,
            "`mask` must be of shape (E, n) = (2, 3); got (2, 2).",
        ),
        (
            {"mask": np.array([[True, True, True], [False, False, False]])},
            ValueError,
            "`mask[1]` must be True in at least 1 row (samples); got 0.",
        ),
        (
            {
                "probs": [np.full((3, 2), 0.5), np.full((2, 3), 1 / 3)],
                "labels": [[0, 1, 0], [0, 1]],
            },
            ValueError,
            "`probs[1]` must be an array with 2 columns like `probs[0]`; got (2, 3).",
        ),
        (
            {"probs": [np.full((3, 2), 0.5)] * 2, "labels": [[0, 1, 0]]},
            ValueError,
            "`labels` must be a sequence of 2 label arrays, one per episode; got 1.",
        ),
        (
            {"probs": [np.full((3, 2), 0.5)] * 2, "labels": [[0, 1, 0], [0, 1]]},
            ValueError,
            "`labels[1]` must be 1-D with one label per row (length 3); got (2,).",
        ),
        (
            {"probs": [np.full((3, 2), 0.5)] * 2, "mask": np.ones((2, 3), dtype=bool)},
            TypeError,
            "`mask` must be None when episodes are given as a sequence (sizes come from the "
            "arrays); got <class 'numpy.ndarray'>.",
        ),
        (
            {"probs": [np.full((3, 2), 0.5), np.zeros((0, 2))], "labels": [[0, 1, 0], []]},
            ValueError,
            "`probs[1]` must be an array with at least 1 row (samples); got (0, 2).",
        ),
    ],
)
def test_bad_batches(kwargs: dict, exc: type, msg: str) -> None:
    args = {"probs": np.full((2, 3, 2), 0.5), "labels": np.zeros((2, 3), dtype=int)}
    args.update(kwargs)
    with pytest.raises(exc, match=full(msg)):
        leep_score_batch(args.pop("probs"), args.pop("labels"), **args)


def test_masked_batch_minimum_names_the_metric() -> None:
    features = np.ones((2, 3, 2))
    mask = np.array([[True, True, True], [True, False, False]])
    msg = "`mask[1]` must be True in at least 2 rows (samples) for h_score; got 1."
    with pytest.raises(ValueError, match=full(msg)):
        h_score_batch(features, np.zeros((2, 3), dtype=int), mask=mask)


def test_option_types() -> None:
    with pytest.raises(TypeError, match=full("`from_logits` must be a bool; got 1.")):
        leep_score(GOOD_PROBS, GOOD_LABELS, from_logits=1)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=full("`validate` must be a bool; got 'yes'.")):
        h_score([[0.0], [1.0]], [0, 1], validate="yes")  # type: ignore[arg-type]
    message = "`seed` must be a non-negative integer below 2**32; got 4294967296."
    with pytest.raises(ValueError, match=full(message)):  # found by `make fuzz`
        nleep_score(np.random.default_rng(0).normal(size=(4, 2)), [0, 0, 1, 1], seed=2**32)
    with pytest.raises(ValueError, match=full("`seed` must be a non-negative integer; got -1.")):
        nleep_score([[0.0], [1.0]], [0, 1], seed=-1)
    with pytest.raises(TypeError, match=full("`seed` must be a non-negative integer; got 1.5.")):
        nleep_score([[0.0], [1.0]], [0, 1], seed=1.5)  # type: ignore[arg-type]
    msg = "`n_components` must be None or an integer >= 1; got 0."
    with pytest.raises(ValueError, match=full(msg)):
        nleep_score([[0.0], [1.0]], [0, 1], n_components=0)


def test_labels_are_reencoded_per_episode() -> None:
    ep = episodes(
        np.full((2, 3, 2), 0.5),
        np.array([[7, 7, 1000], [5, 9, 9]]),
        name="probs",
        kind="probs",
        metric="leep",
        single=False,
    )
    assert ep.codes.tolist() == [[0, 0, 1], [0, 1, 1]]
    assert ep.n_classes.tolist() == [2, 2]
    assert ep.class_counts.tolist() == [[2, 1], [1, 2]]
    # A small label range is used as is (minus its minimum): unused codes are empty classes.
    ep = episodes(
        np.full((2, 3, 2), 0.5),
        np.array([[3, 3, 5], [4, 4, 4]]),
        name="probs",
        kind="probs",
        metric="leep",
        single=False,
    )
    assert ep.codes.tolist() == [[0, 0, 2], [1, 1, 1]]
    assert ep.n_classes.tolist() == [2, 1]
    assert ep.groups.tolist() == [0, 0, 2, 4, 4, 4]


# ----------------------------------------------------------------------------- inputs users have


def _softmax_rows(rng: np.random.Generator, n: int, z: int, dtype: torch.dtype) -> torch.Tensor:
    return torch.softmax(torch.as_tensor(rng.normal(size=(n, z)) * 3.0, dtype=dtype), -1)


@pytest.mark.parametrize("metric", [leep_score, nce_score])
@pytest.mark.parametrize(
    ("dtype", "z"),
    [
        (torch.float32, 20_000),
        (torch.float32, 100_000),
        (torch.float16, 10),
        (torch.float16, 1000),
        (torch.bfloat16, 50),
    ],
)
def test_low_precision_softmax_rows_are_accepted(metric, dtype, z) -> None:
    """The issue's float32 softmax over 20,000 labels (row sums off by 5.9e-6) and float16
    probabilities, refused by a fixed 1e-6 tolerance; scored like their float64 values."""
    rng = np.random.default_rng(z)
    probs = _softmax_rows(rng, 12, z, dtype)
    labels = np.arange(12) % 3
    for given in (probs, probs.numpy() if dtype != torch.bfloat16 else probs):
        assert np.isfinite(metric(given, labels))
    exact = probs.double()
    exact = exact / exact.sum(-1, keepdim=True)
    assert metric(probs, labels) == pytest.approx(metric(exact, labels), abs=1e-3)


def test_the_tolerance_scales_with_the_dtype_and_z() -> None:
    from metaleep.metrics._validation import probs_atol

    assert probs_atol(np.finfo(np.float64).eps, 10**6) == PROBS_ATOL
    assert probs_atol(np.finfo(np.float32).eps, 20_000) == pytest.approx(3.37e-5, rel=1e-3)
    # float32 rows off by more than the float32 tolerance are still refused, naming the row
    probs = np.full((3, 4), 0.25, dtype=np.float32)
    probs[2, 0] = 0.2499
    msg = (
        "`probs[2].sum()` must be 1 within an absolute tolerance of 1e-06 "
        f"{NORMALISE_HINT}; got 0.9998999"
    )
    with pytest.raises(ValueError, match="^" + re.escape(msg)):
        leep_score(probs, [0, 1, 1])
    # the same error in float64 input of a float32 softmax over Z = 20,000 labels
    rng = np.random.default_rng(1)
    rows = _softmax_rows(rng, 4, 20_000, torch.float32)
    assert np.isfinite(leep_score(rows, [0, 1, 0, 1]))
    widened = rows.double()
    off = float((widened.sum(-1) - 1).abs().max())
    if off > PROBS_ATOL:  # the float64 copy is held to float64's tolerance
        with pytest.raises(ValueError, match=re.escape("must be 1 within an absolute tolerance")):
            leep_score(widened, [0, 1, 0, 1])


def test_float16_logits_as_probabilities_still_suggest_from_logits() -> None:
    logits = torch.tensor([[2.0, 3.0, 0.5], [0.5, 0.25, 0.25]], dtype=torch.float16)
    msg = f"`probs[0].sum()` must be 1 within an absolute tolerance of 0.00338291 {SUM_HINT}"
    with pytest.raises(ValueError, match="^" + re.escape(msg)):
        leep_score(logits, [0, 1])


def test_pandas_inputs_are_accepted() -> None:
    pd = pytest.importorskip("pandas")
    rng = np.random.default_rng(3)
    probs = rng.dirichlet(np.ones(4), size=6)
    feats = rng.normal(size=(6, 3))
    labels = np.array([0, 1, 2, 0, 1, 2])
    frame, series = pd.DataFrame(probs, columns=list("abcd")), pd.Series(labels, index=range(6))
    assert leep_score(frame, series) == leep_score(probs, labels)
    assert nce_score(frame, labels) == nce_score(probs, labels)
    assert logme_score(pd.DataFrame(feats), series) == logme_score(feats, labels)
    assert h_score(pd.DataFrame(feats), series) == h_score(feats, labels)
    batch = leep_score_batch([frame, frame.iloc[:4]], [series, series.iloc[:4]])
    assert batch.tolist() == leep_score_batch([probs, probs[:4]], [labels, labels[:4]]).tolist()
    float32 = pd.DataFrame(probs.astype(np.float32))
    assert np.isfinite(leep_score(float32 / float32.sum(axis=1).to_numpy()[:, None], series))
    with pytest.raises(TypeError, match=re.escape(f"`labels` must be {LABELS_EXPECTED}")):
        leep_score(frame, series.astype(float))


def test_nleep_translates_scikit_learn_convergence_warnings() -> None:
    """Fewer distinct samples than mixture components: scikit-learn warned
    (ConvergenceWarning) through N-LEEP, which handles the case."""
    import warnings

    rng = np.random.default_rng(0)
    feats = np.repeat(rng.normal(size=(3, 8)), 4, axis=0)  # 12 samples, 3 distinct
    labels = np.repeat([0, 1, 2], 4)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        score = nleep_score(feats, labels)
    assert np.isfinite(score)
