"""Test-wide settings.

torch's intra-op thread count is pinned (``METALEEP_TEST_THREADS``, default 1): tiny ops get
up to 50x slower with 2 threads on a small shared VM. Caches go to a per-session temporary
directory unless ``METALEEP_CACHE_DIR`` is set.
"""

from __future__ import annotations

import os
import tempfile

import pytest

os.environ.setdefault("METALEEP_CACHE_DIR", tempfile.mkdtemp(prefix="metaleep-test-cache-"))

import torch  # noqa: E402

torch.set_num_threads(int(os.environ.get("METALEEP_TEST_THREADS", "1")))


@pytest.fixture
def rng() -> "object":
    import numpy as np

    return np.random.default_rng(12345)
