"""No wrong result returned (issue 20, items 2 and 4; issue 21, item 2): a study is bound to
what it computed on. A suite regenerated with other content at the same path is refused or
recomputed, never resumed or mixed; a longer suite of the same recipe keeps every stored
episode; numbers in a manifest are range-checked when it is read.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from metaleep.cli import app
from metaleep.episodes.manifest import ManifestError, read_manifest

pytestmark = pytest.mark.slow


def _invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.output


def _sample(path: Path, seed: int, episodes: int = 6) -> None:
    code, output = _invoke(
        "episodes", "sample", "--data", "glyphs", "--ways", "5", "--shots", "1",
        "--queries", "3", "--episodes", str(episodes), "--seed", str(seed), "--name", "my",
        "--out", str(path),
    )  # fmt: skip
    assert code == 0, output


def _study(out: Path, suite: Path, backbone: str, *extra: str) -> tuple[int, str]:
    return _invoke(
        "run", "--suite", str(suite), "--backbones", backbone, "--adaptations", "prototype",
        "--metrics", "leep,nce", "--n-boot", "20", "--chunk-size", "2", "--out", str(out),
        "--no-progress", *extra,
    )  # fmt: skip


def _values(out: Path) -> pd.DataFrame:
    table = pd.read_csv(out / "results.csv")
    return table.drop(columns=[c for c in table.columns if c.startswith("seconds_")])


def test_a_regenerated_suite_file_is_refused_then_recomputed_never_resumed(
    tmp_path, tiny_backbones
):
    """The issue's sequence: sample my.csv (seed 0), run; re-sample my.csv (seed 1), rerun the
    same command. (Before: "resuming: 3 of 3 chunks already stored", exit 0, and the seed-0
    table returned.)"""
    suite, out = tmp_path / "my.csv", tmp_path / "study"
    backbone = tiny_backbones["supervised"]
    _sample(suite, seed=0)
    code, output = _study(out, suite, backbone)
    assert code == 0, output
    old = _values(out)
    _sample(suite, seed=1)
    code, output = _study(out, suite, backbone)
    assert code == 2, output
    assert "holds results of another study configuration" in output
    assert "they differ in suite_recipe" in output
    code, output = _study(out, suite, backbone, "--overwrite")
    assert code == 0, output
    recomputed = _values(out)
    code, output = _study(tmp_path / "fresh", suite, backbone)
    assert code == 0, output
    pd.testing.assert_frame_equal(recomputed, _values(tmp_path / "fresh"))
    assert not recomputed.equals(old)


def test_a_half_run_on_a_regenerated_suite_is_never_mixed(tmp_path, tiny_backbones):
    """The issue's other sequence: a partial run (2 of 3 chunks stored), the suite re-sampled
    with the same seed but other content (another recipe written under the same header),
    rerun: refused before any chunk is computed. (Before: 20 of 40 rows from the old suite.)"""
    from metaleep.episodes.manifest import suite_from_episodes, write_manifest
    from metaleep.episodes.sampler import EpisodeSampler
    from metaleep.episodes.spec import EpisodeSpec

    suite, out = tmp_path / "my.csv", tmp_path / "study"
    _sample(suite, seed=0)
    code, output = _study(out, suite, tiny_backbones["supervised"])
    assert code == 0, output
    (out / "results" / "chunk-00002.csv").unlink()  # as if stopped after two chunks
    stored = read_manifest(suite)
    from metaleep.data.spec import load_dataset

    glyphs = load_dataset("glyphs")
    spec = EpisodeSpec(ways=5, shots=1, queries=3)
    others = EpisodeSampler(glyphs, spec, classes=stored.pool, seed=99).sample_many(6)
    forged = suite_from_episodes(
        others, [spec] * 6, name=stored.name, dataset=glyphs, split=stored.split,
        part=stored.part, pool=stored.pool, seed=stored.seed, command=stored.command,
    )  # fmt: skip
    write_manifest(forged, suite)
    before = {p.name: p.read_bytes() for p in (out / "results").iterdir()}
    code, output = _study(out, suite, tiny_backbones["supervised"])
    assert code == 2, output
    assert "was computed on other episodes than this study's suite holds" in output
    assert {p.name: p.read_bytes() for p in (out / "results").iterdir()} == before


def test_a_finished_study_extends_to_more_episodes_keeping_every_stored_one(
    tmp_path, tiny_backbones
):
    """Issue 21: `run --data` with 4 episodes, then 6: its suite.csv grows (episode i depends
    only on (seed, i)), the stored chunks are kept byte for byte and only the 2 new episodes
    are computed; the table equals a fresh 6-episode study's. Then 5: the first 5 of them.
    (Before: "holds a suite of other episodes".)"""
    out = tmp_path / "study"
    common = [
        "run", "--data", "digits", "--ways", "5", "--shots", "1", "--queries", "3",
        "--backbones", tiny_backbones["supervised"], "--adaptations", "prototype",
        "--metrics", "leep,nce", "--n-boot", "20", "--chunk-size", "200", "--no-progress",
    ]  # fmt: skip
    code, output = _invoke(*common, "--episodes", "4", "--out", str(out))
    assert code == 0, output
    first = {p.name: p.read_bytes() for p in (out / "results").iterdir()}
    assert list(first) == ["chunk-00000.csv"]
    code, output = _invoke(*common, "--episodes", "6", "--out", str(out))
    assert code == 0, output
    assert "6 episodes" in output
    now = {p.name: p.read_bytes() for p in (out / "results").iterdir()}
    assert now["chunk-00000.csv"] == first["chunk-00000.csv"]
    assert sorted(now) == ["chunk-00000.csv", "chunk-00001.csv"]
    assert json.loads((out / "results" / "chunk-00001.csv").read_text().splitlines()[0][17:])[
        "episodes"
    ] == [4, 5]
    assert len(read_manifest(out / "suite.csv")) == 6
    code, output = _invoke(*common, "--episodes", "6", "--out", str(tmp_path / "fresh"))
    assert code == 0, output
    pd.testing.assert_frame_equal(_values(out), _values(tmp_path / "fresh"))
    code, output = _invoke(*common, "--episodes", "5", "--out", str(out))
    assert code == 0 and "5 episodes" in output
    assert sorted(p.name for p in (out / "results").iterdir()) == sorted(now)
    assert len(read_manifest(out / "suite.csv")) == 6  # never shrunk


# ----------------------------------------------------------------------------- manifests


def _forge(source: Path, out: Path, edit) -> Path:
    """A manifest edited, its checksum recomputed (the checksum is no signature)."""
    first, header_line, body = source.read_bytes().split(b"\n", 2)
    header = json.loads(header_line[2:])
    header, body = edit(header, body.decode())
    body_bytes = body.encode()
    unsigned = {k: v for k, v in header.items() if k != "checksum"}
    text = json.dumps(unsigned, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    digest = hashlib.sha256(text.encode() + b"\n" + body_bytes).hexdigest()
    header["checksum"] = "sha256:" + digest
    signed = json.dumps(header, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    out.write_bytes(first + b"\n# " + signed.encode() + b"\n" + body_bytes)
    return out


def _row(body: str, field: int, value: str) -> str:
    lines = body.split("\n")
    cells = lines[1].split(",")
    cells[field] = value
    lines[1] = ",".join(cells)
    return "\n".join(lines)


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("index 2**63", "row 1: `episode` must be in 0..2147483647; got 9223372036854775808."),
        ("index 2**70", "row 1: `episode` must be in 0..2147483647; got 1180591620717411303424."),
        ("image 2**70", "row 1: `support` must be integers in 0..2147483647; got 11805916"),
        ("pool 2**70", "bad header (`pool` must be a list of class ids in 0..2147483647)"),
        ("seed -1", "bad header (`seed` must be an integer in 0..2**63-1; got -1)"),
        ("name escapes", 'must be a non-empty string without | # " or control characters'),
    ],
)
def test_numbers_in_a_manifest_are_range_checked_on_read(tmp_path, case, message):
    """(Before: index 2**63 wrapped and failed after every chunk, with advice that failed
    again; 2**70: OverflowError.)"""
    source = tmp_path / "my.csv"
    _sample(source, seed=0, episodes=2)

    def edit(header: dict, body: str) -> tuple[dict, str]:
        if case.startswith("index"):
            body = _row(body, 0, str(2 ** int(case[-2:])))
        elif case == "image 2**70":
            body = _row(body, 6, str(2**70))
        elif case == "pool 2**70":
            header["pool"] = [*header["pool"], 2**70]
        elif case == "seed -1":
            header["seed"] = -1
        else:
            header["name"] = "my\x1b[2J"
        return header, body

    path = _forge(source, tmp_path / "forged.csv", edit)
    with pytest.raises(ManifestError) as caught:
        read_manifest(path)
    assert message in str(caught.value)
    assert str(caught.value).startswith(f"Manifest {path}: ")
    code, output = _invoke("episodes", "show", str(path))
    assert code != 0 and "Traceback" not in output and "\x1b" not in output
    assert np.iinfo(np.int64).max > 2**31  # the bound keeps every number exact in int64
