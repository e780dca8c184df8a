"""The built-in ``digits`` data set: scikit-learn's handwritten digits at the glyphs' 1x28x28."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from metaleep.data.digits import _bilinear_matrix, digits_images, load_digits


@pytest.fixture(scope="module")
def raw():
    from sklearn.datasets import load_digits as sklearn_digits

    return sklearn_digits()


def _naive_bilinear(image: np.ndarray, size: int) -> np.ndarray:
    """Bilinear resize written pixel by pixel (half-pixel centres, clamped at the border)."""
    n = image.shape[0]
    out = np.zeros((size, size))
    for i in range(size):
        for j in range(size):
            y = min(max((i + 0.5) * n / size - 0.5, 0.0), n - 1)
            x = min(max((j + 0.5) * n / size - 0.5, 0.0), n - 1)
            y0, x0 = int(np.floor(y)), int(np.floor(x))
            y1, x1 = min(y0 + 1, n - 1), min(x0 + 1, n - 1)
            fy, fx = y - y0, x - x0
            out[i, j] = (
                (1 - fy) * (1 - fx) * image[y0, x0]
                + (1 - fy) * fx * image[y0, x1]
                + fy * (1 - fx) * image[y1, x0]
                + fy * fx * image[y1, x1]
            )
    return out


def test_data_set_shape_labels_and_classes(raw):
    ds = load_digits()
    assert tuple(ds.images.shape) == (1797, 1, 28, 28) and ds.images.dtype == torch.uint8
    assert ds.dataset_id == "digits" and ds.num_classes == 10
    assert np.array_equal(ds.labels, raw.target)  # scikit-learn's order, class id = digit
    assert ds.classes["name"].tolist() == [str(d) for d in range(10)]
    assert np.array_equal(ds.classes["images"], np.bincount(raw.target))
    assert ds.classes.index.name == "class_id" and "alphabet" not in ds.classes.columns
    # The digit sits in the central 20x20 box: a 4-pixel background frame everywhere.
    images = ds.images[:, 0].numpy()
    frame = np.ones((28, 28), dtype=bool)
    frame[4:24, 4:24] = False
    assert images[:, frame].max() == 0
    assert images.max() == 255  # value 16 -> ink 255, as in the glyphs


def test_transform_equals_a_naive_reference(raw):
    picks = [0, 1, 500, 1796]
    out = digits_images(raw.images[picks])
    for k, index in enumerate(picks):
        expected = np.zeros((28, 28))
        expected[4:24, 4:24] = _naive_bilinear(raw.images[index] / 16.0, 20)
        # equal up to the rounding to uint8 (ties may round either way in the last bit)
        assert np.abs(out[k] - expected * 255).max() <= 0.5 + 1e-9
    # torch's bilinear interpolation (align_corners=False) is the same convention
    x = torch.from_numpy(raw.images[picks] / 16.0).unsqueeze(1)
    ref = torch.nn.functional.interpolate(x, size=(20, 20), mode="bilinear", align_corners=False)
    diff = np.abs(out[:, 4:24, 4:24].astype(np.float64) - ref[:, 0].numpy() * 255)
    assert diff.max() <= 0.5 + 1e-9


def test_hand_computed_resize():
    # 2 -> 4: outputs sample the input at -0.25 (clamped to 0), 0.25, 0.75, 1.25 (clamped to 1)
    assert _bilinear_matrix(2, 4).tolist() == [
        [1.0, 0.0],
        [0.75, 0.25],
        [0.25, 0.75],
        [0.0, 1.0],
    ]
    # a constant image stays constant inside the box: 8 -> 20 rows each sum to one
    out = digits_images(np.full((1, 8, 8), 16.0))
    assert set(np.unique(out[0, 4:24, 4:24]).tolist()) == {255}
    out = digits_images(np.full((1, 8, 8), 4.0))
    assert set(np.unique(out[0, 4:24, 4:24]).tolist()) == {64}  # rint(255 / 4 = 63.75)


def test_version_is_a_content_hash_and_loading_is_deterministic():
    a, b = load_digits(), load_digits()
    assert a.version == b.version and re.fullmatch(r"1\.[0-9a-f]{12}", a.version)
    assert torch.equal(a.images, b.images)
    a.images[0, 0, 10, 10] = 1  # each call returns its own tensor: the cache is not shared
    assert not torch.equal(a.images, load_digits().images)


def test_bad_input_is_refused():
    with pytest.raises(
        ValueError, match=re.escape("`raw` must be of shape (n, 8, 8); got (8, 8).")
    ):
        digits_images(np.zeros((8, 8)))
    message = "`raw` must hold values in [0, 16]; got values outside that range."
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        digits_images(np.full((1, 8, 8), 17.0))
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        digits_images(np.full((1, 8, 8), np.nan))


def test_loaded_by_name_with_the_standard_suites():
    from metaleep.data.spec import load_dataset
    from metaleep.episodes.suites import load_suite

    ds = load_dataset("digits")
    suite = load_suite("digits-5w1s", ds)
    assert suite.dataset_id == "digits" and len(suite) == 600
    assert {int(c) for ep in suite.episodes for c in ep.classes} == set(range(10))
