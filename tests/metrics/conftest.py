"""LEEP and NCE tests run twice: through torch ops and through the fused CPU kernel."""

from __future__ import annotations

import pytest

_BOTH_PATHS = {"test_leep", "test_nce", "test_common"}


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if metafunc.module.__name__.rsplit(".", 1)[-1] in _BOTH_PATHS:
        metafunc.parametrize("cpu_path", ["torch", "kernel"], indirect=True)


@pytest.fixture(autouse=True)
def cpu_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """``auto`` picks torch ops below 2^20 values (every input here) or, patched, the kernel."""
    path = str(getattr(request, "param", "torch"))
    if path == "kernel":
        monkeypatch.setattr("metaleep.metrics.leep.KERNEL_MIN_VALUES", 0)
    return path
