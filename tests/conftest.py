"""Test-wide settings.

torch's intra-op thread count is pinned (``METALEEP_TEST_THREADS``, default 1): tiny ops get
up to 50x slower with 2 threads on a small shared VM. Caches go to a per-session temporary
directory, removed when the session ends, unless ``METALEEP_CACHE_DIR`` is set.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile

import pytest

if "METALEEP_CACHE_DIR" not in os.environ:
    _SESSION_CACHE = tempfile.mkdtemp(prefix="metaleep-test-cache-")
    os.environ["METALEEP_CACHE_DIR"] = _SESSION_CACHE
    atexit.register(shutil.rmtree, _SESSION_CACHE, ignore_errors=True)

import torch

torch.set_num_threads(int(os.environ.get("METALEEP_TEST_THREADS", "1")))


@pytest.fixture
def rng() -> object:
    import numpy as np

    return np.random.default_rng(12345)


# BLAS threads: OpenBLAS with 2 threads on the tiny matrices of few-shot episodes was 170x
# slower than with 1 on this VM (N-LEEP's GMM, LogME). Pin it like torch's.
from threadpoolctl import threadpool_limits  # noqa: E402

threadpool_limits(int(os.environ.get("METALEEP_TEST_THREADS", "1")))


@pytest.fixture(scope="session")
def tiny_backbones(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Checkpoints of three tiny backbones trained for a few steps on the glyph data.

    Enough for end-to-end tests of the CLI and the notebooks (real training, seconds instead of
    the default backbones' minutes); their accuracy means nothing.
    """
    from metaleep.backbones.config import TrainConfig
    from metaleep.backbones.training import train
    from metaleep.data.glyphs import load_glyphs
    from metaleep.data.splits import get_split

    dataset = load_glyphs()
    split = get_split(dataset, "omniglot")
    common = dict(arch="conv2-8", iterations=4, eval_every=4, eval_episodes=4, seed=0, threads=1)
    configs = {
        "maml": TrainConfig(algorithm="fomaml", meta_batch=2, **common),  # type: ignore[arg-type]
        "protonet": TrainConfig(algorithm="protonet", meta_batch=2, **common),  # type: ignore[arg-type]
        "supervised": TrainConfig(algorithm="supervised", batch_size=64, **common),  # type: ignore[arg-type]
    }
    root = tmp_path_factory.mktemp("tiny-backbones")
    paths = {}
    for name, config in configs.items():
        train(config, dataset, split, checkpoint_dir=root / name, name=name)
        paths[name] = str(root / name)
    return paths
