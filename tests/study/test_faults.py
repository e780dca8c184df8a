"""Faults: a study process killed (SIGKILL) at random points and resumed; damaged result files,
manifests and checkpoints; a full disk and an unwritable output directory.

What is asserted: no finished episode lost, none computed twice once stored, none duplicated in
the table, and the final table equal to an uninterrupted run's; every damaged file reported with
its path and what to do (never read as if intact); storage problems reported before any
backbone output is computed.
"""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from metaleep._io import atomic_write
from metaleep.study import out_dir as out_dir_module
from metaleep.study import runner as runner_module
from metaleep.study import store as store_module
from metaleep.study.runner import run_study
from metaleep.study.store import StoreError

KEYS = ["episode", "backbone", "dummy", "adaptation"]

# The toy study, as a script: the killed subprocesses run it, and the tests exec it for the
# uninterrupted reference. One torch/BLAS thread, so that every process computes the same bits.
STUDY_SCRIPT = textwrap.dedent(
    '''
    import os
    import sys
    import time

    import numpy as np
    import torch
    from threadpoolctl import threadpool_limits

    from metaleep.backbones.models import build_backbone
    from metaleep.backbones.testing import toy_dataset
    from metaleep.episodes import EpisodeSampler, EpisodeSpec
    from metaleep.episodes.manifest import suite_from_episodes
    from metaleep.study.config import StudyConfig
    from metaleep.study.runner import StudyBackbone, run_study

    torch.set_num_threads(1)
    threadpool_limits(1)
    SPEC = EpisodeSpec(ways=5, shots=2, queries=3)


    def build(episodes=24, chunk_size=2):
        dataset = toy_dataset(classes=20, per_class=8, seed=1)
        pool = np.arange(10, 20)
        drawn = EpisodeSampler(dataset, SPEC, classes=pool, seed=3).sample_many(episodes)
        suite = suite_from_episodes(
            drawn, [SPEC] * episodes, name="toy", dataset=dataset, split="toy", part="test",
            pool=pool, seed=3,
        )
        torch.manual_seed(0)
        maml = build_backbone("conv2-8", out_features=5).double().eval()
        supervised = build_backbone("conv2-8", out_features=10).double().eval()
        backbones = [
            StudyBackbone("maml", maml, "fomaml", np.arange(10), "m", source_data=dataset),
            StudyBackbone(
                "supervised", supervised, "supervised", np.arange(10), "s", source_data=dataset
            ),
        ]
        config = StudyConfig(
            suite="toy", adaptations=("anil", "retrain_head", "prototype"),
            chunk_size=chunk_size, temperature=2.0,
        )
        return config, dataset, suite, backbones


    class LoggingExecutor:
        """In-process, one chunk at a time; appends 'begin|done <pid> <chunk>' to a log, and
        pauses before each chunk so that a study lasts long enough to be killed midway."""

        def __init__(self, log, pause):
            self.log, self.pause = log, pause

        def note(self, what, chunk):
            with open(self.log, "a") as fh:
                fh.write(f"{what} {os.getpid()} {chunk}\\n")

        def map_chunks(self, context, chunks):
            for chunk in chunks:
                self.note("begin", chunk)
                time.sleep(self.pause)
                rows = context.evaluate(chunk)
                self.note("done", chunk)
                yield chunk, rows


    def study(out, executor=None):
        config, dataset, suite, backbones = build()
        return run_study(
            config, out_dir=out, dataset=dataset, suite=suite, backbones=backbones,
            analyse=False, progress=False, executor=executor,
        )


    if __name__ == "__main__":
        study(sys.argv[1], LoggingExecutor(sys.argv[2], float(sys.argv[3])))
    '''
)


def _script() -> dict[str, Any]:
    namespace: dict[str, Any] = {"__name__": "faults_study"}
    exec(compile(STUDY_SCRIPT, "<faults study>", "exec"), namespace)
    return namespace


def _drop_timings(table: pd.DataFrame) -> pd.DataFrame:
    return table.drop(columns=[c for c in table.columns if c.startswith("seconds_")])


@pytest.fixture(scope="module")
def script() -> dict[str, Any]:
    return _script()


def _log(path: Path) -> list[tuple[str, int, int]]:
    if not path.exists():
        return []
    rows = [line.split() for line in path.read_text().splitlines() if line.strip()]
    return [(what, int(pid), int(chunk)) for what, pid, chunk in rows]


KILLER_SCRIPT = STUDY_SCRIPT.replace(
    'if __name__ == "__main__":\n    study(',
    'if __name__ == "__main__" and sys.argv[1] != "kill":\n    study(',
) + textwrap.dedent(
    '''

    def kill_rounds(out, log, report, rounds, seed, pause):
        """Fork the prepared study `rounds` times and SIGKILL each child at a random moment
        (models and data are built once, here: a fork starts in milliseconds where a fresh
        interpreter takes seconds). After each round, every chunk ever stored must still be
        there, byte for byte."""
        import hashlib
        import json
        import signal
        import traceback
        from pathlib import Path

        config, dataset, suite, backbones = build(episodes=48, chunk_size=1)
        rng = np.random.default_rng(np.random.SeedSequence(seed))
        results = Path(out) / "results"
        ever, lost, before, kills, finished = {}, [], {}, 0, 0

        def chunks():
            if not results.is_dir():
                return {}
            return {
                p.name: hashlib.sha256(p.read_bytes()).hexdigest()
                for p in sorted(results.glob("chunk-*.csv"))
            }

        for _ in range(rounds):
            stored = sorted(int(name[6:11]) for name in chunks())
            pid = os.fork()
            if pid == 0:
                code = 0
                try:
                    run_study(
                        config, out_dir=out, dataset=dataset, suite=suite, backbones=backbones,
                        analyse=False, progress=False, executor=LoggingExecutor(log, pause),
                    )
                except BaseException:
                    traceback.print_exc()
                    code = 1
                os._exit(code)
            before[pid] = stored
            time.sleep(float(rng.uniform(0.0, 0.5)))
            done, status = os.waitpid(pid, os.WNOHANG)
            if done == 0:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                kills += 1
            elif status != 0:
                raise SystemExit(f"a study process failed (status {status})")
            else:
                finished += 1
            now = chunks()
            lost += [name for name, digest in ever.items() if now.get(name) != digest]
            ever.update(now)
        Path(report).write_text(
            json.dumps({"kills": kills, "finished": finished, "lost": lost, "before": before})
        )


    if __name__ == "__main__" and sys.argv[1] == "kill":
        kill_rounds(*sys.argv[2:5], int(sys.argv[5]), int(sys.argv[6]), float(sys.argv[7]))
    '''
)


@pytest.mark.slow
def test_many_sigkills_at_random_points_lose_nothing(tmp_path, script, capsys):
    """24 SIGKILLs at seeded random moments of one study (48 one-episode chunks): in loading,
    opening the store, computing outputs or chunks, writing a chunk. After every kill each
    chunk ever stored is intact; a run never computes a chunk that was stored when it started;
    the resumed table equals an uninterrupted run's."""
    path, out, log = tmp_path / "study.py", tmp_path / "study", tmp_path / "chunks.log"
    report = tmp_path / "report.json"
    path.write_text(KILLER_SCRIPT)
    rounds = 24
    started = time.perf_counter()
    args = ["kill", str(out), str(log), str(report), str(rounds), "7", "0.05"]
    process = subprocess.run(
        [sys.executable, str(path), *args], capture_output=True, text=True, timeout=600
    )
    assert process.returncode == 0, process.stderr[-3000:]
    outcome = json.loads(report.read_text())
    assert outcome["lost"] == []
    assert outcome["kills"] >= 20, outcome
    stored_before = {int(pid): set(chunks) for pid, chunks in outcome["before"].items()}
    stored_before[os.getpid()] = {int(p.name[6:11]) for p in (out / "results").glob("chunk-*")}
    config, dataset, suite, backbones = script["build"](episodes=48, chunk_size=1)

    def finish(directory: Path, executor: Any = None) -> pd.DataFrame:
        return run_study(
            config,
            out_dir=directory,
            dataset=dataset,
            suite=suite,
            backbones=backbones,
            analyse=False,
            progress=False,
            executor=executor,
        ).table

    final = finish(out, script["LoggingExecutor"](str(log), 0.0))
    reference = finish(tmp_path / "uninterrupted")
    events = _log(log)
    begun = [chunk for what, _, chunk in events if what == "begin"]
    again = [(c, pid) for what, pid, c in events if what == "begin" and c in stored_before[pid]]
    assert not again  # no chunk computed by a run that started with it stored
    assert sorted({c for what, _, c in events if what == "done"}) == list(range(48))
    assert len(begun) - 48 <= outcome["kills"]  # at most the chunk in flight at each kill
    table = pd.read_csv(out / "results.csv")
    assert not table.duplicated(KEYS).any()
    pd.testing.assert_frame_equal(_drop_timings(table), _drop_timings(reference))
    pd.testing.assert_frame_equal(_drop_timings(final), _drop_timings(reference))
    with capsys.disabled():
        print(
            f"\nSIGKILL faults: {outcome['kills']} kills of {rounds} runs, {len(begun)} chunk "
            f"tries for 48 chunks ({len(begun) - 48} recomputed), results lost: 0 "
            f"({time.perf_counter() - started:.1f} s)"
        )


# ----------------------------------------------------------------------------- damaged files


def _truncate(data: bytes) -> bytes:
    return data[: len(data) // 2]


def _flip(offset: float, bit: int) -> Callable[[bytes], bytes]:
    def edit(data: bytes) -> bytes:
        i = int(offset * (len(data) - 1))
        return data[:i] + bytes([data[i] ^ bit]) + data[i + 1 :]

    return edit


EDITS = {
    "truncated": _truncate,
    "empty": lambda data: b"",
    "flipped-bit": _flip(0.4, 0x01),
    "flipped-high-bit": _flip(0.6, 0x80),  # not valid UTF-8 any more
    "flipped-last-bytes": _flip(0.999, 0x02),
}


@pytest.fixture(scope="module")
def finished(script, tmp_path_factory) -> tuple[Path, pd.DataFrame]:
    """A finished small study directory (6 episodes, 3 chunks)."""
    out = tmp_path_factory.mktemp("finished")
    config, dataset, suite, backbones = script["build"](episodes=6)
    table = run_study(
        config,
        out_dir=out,
        dataset=dataset,
        suite=suite,
        backbones=backbones,
        analyse=False,
        progress=False,
    ).table
    return out, table


@pytest.fixture
def counting(monkeypatch) -> dict[str, int]:
    """Counts backbone-output computations and chunk evaluations of the runner."""
    counts = {"outputs": 0, "chunks": 0}
    compute, evaluate = runner_module.compute_outputs, runner_module.evaluate_chunk

    def counted_compute(*args, **kwargs):
        counts["outputs"] += 1
        return compute(*args, **kwargs)

    def counted_evaluate(*args, **kwargs):
        counts["chunks"] += 1
        return evaluate(*args, **kwargs)

    monkeypatch.setattr(runner_module, "compute_outputs", counted_compute)
    monkeypatch.setattr(runner_module, "evaluate_chunk", counted_evaluate)
    return counts


def _resume(script, out: Path, **kwargs):
    config, dataset, suite, backbones = script["build"](episodes=6)
    return run_study(
        config,
        out_dir=out,
        dataset=dataset,
        suite=suite,
        backbones=backbones,
        analyse=False,
        progress=False,
        **kwargs,
    )


@pytest.mark.parametrize("edit", EDITS)
def test_damaged_chunk_is_reported_before_any_work(script, finished, tmp_path, counting, edit):
    source, table = finished
    out = tmp_path / "study"
    shutil.copytree(source, out)
    chunk = out / "results" / "chunk-00001.csv"
    chunk.write_bytes(EDITS[edit](chunk.read_bytes()))
    message = (
        f"result chunk {chunk} is damaged (checksum mismatch or truncated); delete it and rerun "
        "the study to recompute that chunk."
    )
    with pytest.raises(StoreError, match=f"^{re.escape(message)}$"):
        _resume(script, out)
    assert counting == {"outputs": 0, "chunks": 0}
    chunk.unlink()  # what the message says to do
    resumed = _resume(script, out).table
    assert counting == {"outputs": 2, "chunks": 2}  # that chunk only, for the two backbones
    pd.testing.assert_frame_equal(_drop_timings(resumed), _drop_timings(table))


@pytest.mark.parametrize("edit", EDITS)
def test_damaged_study_json_is_reported(script, finished, tmp_path, counting, edit):
    source, _ = finished
    out = tmp_path / "study"
    shutil.copytree(source, out)
    path = out / "study.json"
    path.write_bytes(EDITS[edit](path.read_bytes()))
    with pytest.raises(StoreError) as caught:
        _resume(script, out)
    text = str(caught.value)
    assert text.startswith(f"{path} is ")
    assert "damaged" in text or "unreadable" in text
    assert "delete" in text or "another output directory" in text
    assert counting == {"outputs": 0, "chunks": 0}


def test_every_single_bit_flip_of_study_json_is_caught(script, finished, tmp_path):
    """Each of 40 seeded (byte, bit) flips: refused, never read as the saved configuration."""
    source, _ = finished
    original = (source / "study.json").read_bytes()
    rng = np.random.default_rng(7)
    identity = json.loads(original)["config"]
    for _ in range(40):
        out = tmp_path / "study"
        shutil.rmtree(out, ignore_errors=True)
        shutil.copytree(source, out)
        i, bit = int(rng.integers(len(original))), 1 << int(rng.integers(7))
        (out / "study.json").write_bytes(
            original[:i] + bytes([original[i] ^ bit]) + original[i + 1 :]
        )
        with pytest.raises(StoreError):
            store_module.ResultStore(out, identity)


def test_damaged_results_csv_is_rebuilt_from_the_chunks(script, finished, tmp_path, counting):
    """``results.csv`` is an export, never read: a resumed study rewrites it from the chunks."""
    source, table = finished
    out = tmp_path / "study"
    shutil.copytree(source, out)
    path = out / "results.csv"
    path.write_bytes(_truncate(path.read_bytes()))
    _resume(script, out)
    assert counting == {"outputs": 0, "chunks": 0}
    pd.testing.assert_frame_equal(_drop_timings(pd.read_csv(path)), _drop_timings(table))


@pytest.fixture(scope="module")
def manifest(script, tmp_path_factory) -> Path:
    from metaleep.episodes.manifest import write_manifest

    _, _, suite, _ = script["build"](episodes=6)
    return write_manifest(suite, tmp_path_factory.mktemp("manifest") / "toy.csv")


@pytest.mark.parametrize("edit", EDITS)
def test_damaged_manifest_is_reported(manifest, tmp_path, edit):
    from metaleep.episodes.manifest import ManifestError, read_manifest

    path = tmp_path / "toy.csv"
    path.write_bytes(EDITS[edit](manifest.read_bytes()))
    with pytest.raises(ManifestError, match=f"^Manifest {re.escape(str(path))}: .*Regenerate it"):
        read_manifest(path)


def test_every_single_bit_flip_of_a_manifest_is_caught(manifest, tmp_path):
    """40 seeded flips after the first line (a fixed comment that carries no data)."""
    from metaleep.episodes.manifest import ManifestError, read_manifest

    original = manifest.read_bytes()
    start = original.index(b"\n") + 1
    rng = np.random.default_rng(11)
    path = tmp_path / "toy.csv"
    for _ in range(40):
        i, bit = int(rng.integers(start, len(original))), 1 << int(rng.integers(8))
        path.write_bytes(original[:i] + bytes([original[i] ^ bit]) + original[i + 1 :])
        with pytest.raises(ManifestError, match=re.escape(str(path))):
            read_manifest(path)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    import torch

    from metaleep.backbones.checkpoint import Backbone
    from metaleep.backbones.config import TrainConfig
    from metaleep.backbones.models import build_backbone

    torch.manual_seed(0)
    backbone = Backbone(
        model=build_backbone("conv2-8", out_features=10).eval(),
        config=TrainConfig(algorithm="supervised", arch="conv2-8"),
        source_classes=np.arange(10),
        dataset_fingerprint="toy@v1",
        split={"name": "toy", "hash": "0" * 16},
        name="supervised",
        step=0,
        best_step=0,
    )
    return backbone.save(tmp_path_factory.mktemp("checkpoint") / "backbone.pt")


@pytest.mark.parametrize("edit", EDITS)
def test_damaged_checkpoint_is_reported(checkpoint, tmp_path, edit):
    from metaleep.backbones.checkpoint import CheckpointError, load_backbone

    path = tmp_path / "backbone.pt"
    path.write_bytes(EDITS[edit](checkpoint.read_bytes()))
    with pytest.raises(CheckpointError, match=f"^{re.escape(str(path))}") as caught:
        load_backbone(path)
    text = str(caught.value)
    assert "train again" in text or "metaleep train" in text


def test_every_bit_flip_in_a_checkpoint_payload_is_caught(checkpoint, tmp_path):
    """40 seeded flips in the payload (the weights): always refused. (The header's descriptive
    fields are not covered by the checksum: see the module notes of the checkpoint format.)"""
    from metaleep.backbones.checkpoint import MAGIC, CheckpointError, load_backbone

    original = checkpoint.read_bytes()
    start = original.index(b"\n", len(MAGIC)) + 1
    rng = np.random.default_rng(5)
    path = tmp_path / "backbone.pt"
    for _ in range(40):
        i, bit = int(rng.integers(start, len(original))), 1 << int(rng.integers(8))
        path.write_bytes(original[:i] + bytes([original[i] ^ bit]) + original[i + 1 :])
        with pytest.raises(CheckpointError, match=re.escape(str(path))):
            load_backbone(path)


# ----------------------------------------------------------------------------- storage


def test_full_disk_fails_before_any_work(script, tmp_path, counting, monkeypatch):
    full = shutil.disk_usage(tmp_path)._replace(free=10 * 2**20)
    monkeypatch.setattr(out_dir_module.shutil, "disk_usage", lambda path: full)
    message = (
        f"output directory {tmp_path / 'study'} has only 10 MiB free; a study needs at least "
        "50 MiB. Free space or choose another --out."
    )
    with pytest.raises(StoreError, match=f"^{re.escape(message)}$"):
        _resume(script, tmp_path / "study")
    assert counting == {"outputs": 0, "chunks": 0}


def test_output_path_under_a_file_fails_before_any_work(script, tmp_path, counting):
    (tmp_path / "a-file").write_text("not a directory")
    out = tmp_path / "a-file" / "study"
    with pytest.raises(StoreError, match=f"^output directory {re.escape(str(out))} is not "):
        _resume(script, out)
    assert counting == {"outputs": 0, "chunks": 0}


@pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root writes to read-only folders"
)
def test_read_only_directory_fails_before_any_work(script, tmp_path, counting):
    out = tmp_path / "study"
    out.mkdir()
    out.chmod(0o500)
    try:
        with pytest.raises(StoreError, match="is not writable"):
            _resume(script, out)
    finally:
        out.chmod(0o700)
    assert counting == {"outputs": 0, "chunks": 0}


def test_disk_full_midway_keeps_finished_chunks_and_resumes(
    script, finished, tmp_path, monkeypatch
):
    """ENOSPC while writing the second chunk: a clear error, no partial or temporary file, the
    first chunk intact; the resumed study equals the uninterrupted one."""
    _, table = finished
    out = tmp_path / "study"

    def filling_disk(path, data):
        if Path(path).name != "chunk-00001.csv":
            return atomic_write(path, lambda p: p.write_bytes(data))

        def half_then_full(p: Path) -> None:
            p.write_bytes(data[: len(data) // 2])
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        return atomic_write(path, half_then_full)

    monkeypatch.setattr(store_module, "atomic_write_bytes", filling_disk)
    chunk = out / "results" / "chunk-00001.csv"
    message = (
        f"could not write result chunk {chunk} (No space left on device); the chunks already "
        "stored are intact: free disk space (or fix the directory) and rerun to resume."
    )
    with pytest.raises(StoreError, match=f"^{re.escape(message)}$"):
        _resume(script, out)
    assert sorted(p.name for p in (out / "results").iterdir()) == ["chunk-00000.csv"]
    monkeypatch.undo()
    resumed = _resume(script, out).table
    pd.testing.assert_frame_equal(_drop_timings(resumed), _drop_timings(table))


# ----------------------------------------------------------------------------- one writer (#16)


def test_a_second_writer_is_refused_while_the_first_runs(tmp_path, script, counting):
    """The issue's two processes on one --out: the second, even with --overwrite, is refused
    (naming the first) before any work, and deletes nothing; the first finishes intact."""
    path, out, log = tmp_path / "study.py", tmp_path / "study", tmp_path / "chunks.log"
    path.write_text(STUDY_SCRIPT)
    first = subprocess.Popen(
        [sys.executable, str(path), str(out), str(log), "0.1"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 120
        while not any(what == "done" for what, _, _ in _log(log)):
            if first.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the first study did not run: {first.communicate()[1]!r}")
            time.sleep(0.02)
        config, dataset, suite, backbones = script["build"]()
        for overwrite, seed in ((False, 0), (True, 1)):
            with pytest.raises(StoreError) as caught:
                run_study(
                    replace(config, seed=seed),
                    out_dir=out,
                    dataset=dataset,
                    suite=suite,
                    backbones=backbones,
                    analyse=False,
                    progress=False,
                    overwrite=overwrite,
                )
            assert str(caught.value).startswith(
                f"{out} is in use by another metaleep process (pid {first.pid} on "
            )
        assert counting == {"outputs": 0, "chunks": 0}
        assert first.wait(timeout=300) == 0, first.communicate()[1]
    finally:
        first.kill()
    table = pd.read_csv(out / "results.csv")
    assert not table.duplicated(KEYS).any() and table["episode"].nunique() == 24
    reference = script["study"](tmp_path / "alone").table
    pd.testing.assert_frame_equal(_drop_timings(table), _drop_timings(reference))


# ----------------------------------------------------------------------------- drift (#16)


def _copy_without_study_json(source: Path, out: Path) -> None:
    shutil.copytree(source, out)
    (out / "study.json").unlink()


def test_old_chunks_never_count_for_another_configuration(script, finished, tmp_path, counting):
    """The issue's drift: study.json deleted (as its damaged-file message suggested), then
    another configuration: refused before any work, never adopted; --overwrite recomputes."""
    source, _ = finished
    out = tmp_path / "study"
    _copy_without_study_json(source, out)
    config, dataset, suite, backbones = script["build"](episodes=6)
    changed = replace(config, seed=1, metrics=("leep", "nce"))

    def run(**kwargs: Any) -> pd.DataFrame:
        return run_study(
            changed,
            out_dir=out,
            dataset=dataset,
            suite=suite,
            backbones=backbones,
            analyse=False,
            progress=False,
            **kwargs,
        ).table

    with pytest.raises(StoreError, match="was made by another study configuration"):
        run()
    assert counting == {"outputs": 0, "chunks": 0}
    table = run(overwrite=True)
    expected = run_study(
        changed,
        out_dir=tmp_path / "fresh",
        dataset=dataset,
        suite=suite,
        backbones=backbones,
        analyse=False,
        progress=False,
    ).table
    pd.testing.assert_frame_equal(_drop_timings(table), _drop_timings(expected))
    assert not set(table.columns) & (set(config.metrics) - set(changed.metrics))


@pytest.mark.parametrize("change", [{"episodes": 4}, {"chunk_size": 3}])
def test_fewer_episodes_or_another_chunk_size_reuse_every_stored_chunk(
    script, finished, tmp_path, counting, change
):
    """Neither changes a row (episode i depends only on (seed, i); #20 item 7), so neither
    is another study: the stored chunks count, nothing is computed again."""
    source, table = finished
    out = tmp_path / "study"
    _copy_without_study_json(source, out)
    config, dataset, suite, backbones = script["build"](episodes=6)
    resumed = run_study(
        replace(config, **change),
        out_dir=out,
        dataset=dataset,
        suite=suite,
        backbones=backbones,
        analyse=False,
        progress=False,
    ).table
    assert counting == {"outputs": 0, "chunks": 0}
    episodes = change.get("episodes", 6)
    expected = table[table["episode"].isin([ep.index for ep in suite.episodes[:episodes]])]
    pd.testing.assert_frame_equal(
        _drop_timings(resumed), _drop_timings(expected.reset_index(drop=True))
    )
