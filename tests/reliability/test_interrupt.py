"""Ctrl-C and SIGTERM during `metaleep run` and `metaleep grid`: a message that says how far the
command got and how to resume, and the usual exit statuses (130 for SIGINT, killed by SIGTERM:
143 in a shell) (issue 16, finding 7; issue 20, item 5). And a killed Ray driver's processes,
ended by the next private start."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def _start(args: list[str]) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    return subprocess.Popen(
        [sys.executable, "-m", "metaleep", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        preexec_fn=default_sigint,
    )


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
    return _start(args)


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


def _wait_for_a_chunk(process: subprocess.Popen[str], folder: Path) -> None:
    deadline = time.monotonic() + 180
    while not any(folder.glob("**/chunk-*.csv")):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"no chunk was computed: {process.communicate()[1]}")
        time.sleep(0.02)


@pytest.mark.parametrize(("sig", "status"), [(signal.SIGINT, 130), (signal.SIGTERM, -15)])
def test_an_interrupted_grid_says_how_far_it_got(tmp_path, tiny_backbones, sig, status):
    """(Before: exit 130 / -15 without a word.)"""
    config = tmp_path / "grid.toml"
    config.write_text(
        "[grid]\n"
        f'sources = ["s={tiny_backbones["supervised"]}"]\n'
        'transfers = ["prototype"]\nmetrics = ["leep"]\n'
        "episodes = 20\nchunk_size = 1\nn_boot = 20\ntarget_reports = false\n\n"
        '[[targets]]\nname = "first"\nsuite = "glyphs-smoke"\n\n'
        '[[targets]]\nname = "second"\nsuite = "glyphs-5w1s"\n'
    )
    out = tmp_path / "grid"
    process = _start(["grid", "--config", str(config), "--out", str(out), "--no-progress"])
    _wait_for_a_chunk(process, out / "targets")
    process.send_signal(sig)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == status, stderr
    last = stderr.strip().splitlines()[-1]
    match = re.fullmatch(
        r"metaleep grid: interrupted after 0 of 2 targets \(target first: interrupted after "
        r"(\d+) of 20 chunks\); every finished chunk is stored: run the same command to "
        r"resume\.",
        last,
    )
    assert match, stderr[-2000:]
    stored = len(list((out / "targets" / "first" / "results").glob("chunk-*.csv")))
    assert int(match.group(1)) == stored >= 1


DRIVER = """
import time
from metaleep.study.ray_executor import RayExecutor
RayExecutor(num_workers=1).__enter__()
print("ready", flush=True)
time.sleep(600)
"""


def test_the_ray_processes_of_a_killed_driver_are_ended_by_the_next_start(tmp_path, monkeypatch):
    """A private Ray instance's driver killed with SIGKILL: its agents outlive it (they did
    for about a minute, listening); the next private start ends exactly those. A process whose
    pid the record names but that started at another time is never touched."""
    psutil = pytest.importorskip("psutil")
    pytest.importorskip("ray")
    from metaleep.study.ray_executor import reap_orphans

    cache = tmp_path / "cache"
    monkeypatch.setenv("METALEEP_CACHE_DIR", str(cache))
    env = {
        **os.environ,
        "PYTHONPATH": str(Path(__file__).resolve().parents[2]),
        "METALEEP_CACHE_DIR": str(cache),
    }
    driver = subprocess.Popen(
        [sys.executable, "-c", DRIVER], stdout=subprocess.PIPE, text=True, env=env
    )
    bystander = subprocess.Popen(["sleep", "120"])
    try:
        assert driver.stdout is not None and driver.stdout.readline().strip() == "ready"
        time.sleep(3)  # the agents start after ray.init returns
        record_path = cache / "ray" / f"driver-{driver.pid}.json"
        record = json.loads(record_path.read_text())
        # a stale entry: the bystander's pid with another start time
        record["processes"].append({"pid": bystander.pid, "started": 1.0})
        record_path.write_text(json.dumps(record))
        driver.kill()
        driver.wait()
        time.sleep(1)
        recorded = [(p["pid"], p["started"]) for p in record["processes"][:-1]]

        def running() -> list[int]:
            alive = []
            for pid, started in recorded:
                try:
                    process = psutil.Process(pid)
                    if (
                        process.status() != psutil.STATUS_ZOMBIE
                        and abs(process.create_time() - started) < 1e-6
                    ):
                        alive.append(pid)
                except psutil.Error:
                    pass
            return alive

        orphans = running()
        assert orphans, "no Ray process outlived its driver (nothing to test)"
        assert reap_orphans() >= len(orphans)
        deadline = time.monotonic() + 10  # ended: gone, or a zombie its new parent reaps
        while running() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert running() == []
        assert not record_path.exists()
        assert bystander.poll() is None  # never touched
    finally:
        driver.kill()
        bystander.kill()
        bystander.wait()
        for pid, _ in [(p["pid"], 0) for p in locals().get("record", {}).get("processes", [])]:
            try:
                if pid != bystander.pid:
                    psutil.Process(pid).kill()
            except psutil.Error:
                pass
