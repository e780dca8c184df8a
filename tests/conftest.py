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


# BLAS threads: OpenBLAS with 2 threads on the tiny matrices of few-shot episodes was 170x
# slower than with 1 on this VM (N-LEEP's GMM, LogME). Pin it like torch's.
from threadpoolctl import threadpool_limits  # noqa: E402

threadpool_limits(int(os.environ.get("METALEEP_TEST_THREADS", "1")))
