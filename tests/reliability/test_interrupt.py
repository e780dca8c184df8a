"""Ctrl-C and SIGTERM during `metaleep run`: a message that says how far the study got and how
to resume, and the usual exit statuses (130 for SIGINT, killed by SIGTERM: 143 in a shell)
(issue 16, finding 7)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def _run(out: Path, backbone: str) -> subprocess.Popen[str]:
    args = [
        "run",
        "--suite",
        "glyphs-5w5s",
        "--chunk-size",
        "1",
        "--backbones",
        backbone,
        "--adaptations",
        "prototype",
        "--metrics",
        "leep",
        "--dummies",
        "prototypes",
        "--no-progress",
        "--threads",
        "1",
        "--out",
        str(out),
    ]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    return subprocess.Popen(
        [sys.executable, "-m", "metaleep", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        preexec_fn=default_sigint,
    )


def default_sigint() -> None:
    """SIGINT back to its default in the child: a background job of a non-interactive shell
    (``bash -c 'make test & wait'``) starts with SIGINT ignored, and Python keeps an ignored
    SIGINT ignored, so the Ctrl-C this test sends would never reach the study."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.parametrize(("sig", "status"), [(signal.SIGINT, 130), (signal.SIGTERM, -15)])
def test_an_interrupted_run_says_how_far_it_got(tmp_path, tiny_backbones, sig, status):
    out = tmp_path / "study"
    process = _run(out, tiny_backbones["supervised"])
    deadline = time.monotonic() + 120
    while not any((out / "results").glob("chunk-*.csv")):  # the first of 600 chunks
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"the study did not start its chunks: {process.communicate()[1]}")
        time.sleep(0.02)
    process.send_signal(sig)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == status, stderr
    last = stderr.strip().splitlines()[-1]
    match = re.fullmatch(
        r"metaleep run: interrupted after (\d+) of 600 chunks; run the same command to resume\.",
        last,
    )
    assert match, stderr[-2000:]
    stored = len(list((out / "results").glob("chunk-*.csv")))
    assert int(match.group(1)) == stored >= 1
    assert not (out / ".metaleep.owner").exists()  # the lock is released
