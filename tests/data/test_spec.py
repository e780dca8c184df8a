"""``--data`` specs and the data sets they name (metaleep.data.spec)."""

from __future__ import annotations

import re

import pytest

from metaleep.data.spec import load_dataset


def test_load_dataset_errors():
    with pytest.raises(
        ValueError, match=r"^`dataset` must be glyphs, digits or one of omniglot, mini"
    ):
        load_dataset("mnist")
    message = "`root` must be the folder that holds the fc100 files; got None."
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        load_dataset("fc100")
