"""The result store's assembly of ``results.csv`` from the chunk files."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from metaleep.study.store import RESULTS_FILE, ResultStore, table_to_csv

KEYS = ("episode", "adaptation")


def _rows(episodes: list[int], seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    # backbone-major within a chunk, as the runner writes them: not in table order
    return pd.DataFrame(
        {
            "episode": episodes * 2,
            "adaptation": ["b"] * len(episodes) + ["a"] * len(episodes),
            "alphabets": ["Latin, Greek"] * (2 * len(episodes)),
            "leep": rng.normal(size=2 * len(episodes)) / 3,
        }
    )


def test_assemble_sorts_rows_and_writes_the_chunks_own_text(tmp_path):
    store = ResultStore(tmp_path, {"suite": "t"})
    chunks = [_rows([2, 3], 0), _rows([0, 1], 1)]
    for c, rows in enumerate(chunks):
        store.write_chunk(c, rows)
    table = store.assemble(KEYS)
    expected = store.read_all().sort_values(list(KEYS), kind="stable").reset_index(drop=True)
    pd.testing.assert_frame_equal(table, expected)
    assert table["episode"].tolist() == [0, 0, 1, 1, 2, 2, 3, 3]
    assert table["adaptation"].tolist() == ["a", "b"] * 4
    text = (tmp_path / RESULTS_FILE).read_text()
    body_lines = {line for c in range(2) for line in table_to_csv(chunks[c]).splitlines()[1:]}
    lines = text.splitlines()
    assert lines[0] == "episode,adaptation,alphabets,leep"
    assert set(lines[1:]) == body_lines and len(lines) == 9
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / RESULTS_FILE), expected)


@pytest.mark.parametrize("case", ["other columns", "line break in a field"])
def test_assemble_falls_back_to_formatting_again(tmp_path, case):
    store = ResultStore(tmp_path, {"suite": "t"})
    first, second = _rows([1], 0), _rows([0], 1)
    if case == "other columns":
        second = second.assign(extra=1.5)
    else:
        second.loc[0, "alphabets"] = "Latin\nGreek"
    store.write_chunk(0, first)
    store.write_chunk(1, second)
    table = store.assemble(KEYS)
    assert table["episode"].tolist() == [0, 0, 1, 1]
    if case == "line break in a field":
        assert "Latin\nGreek" in table["alphabets"].tolist()
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / RESULTS_FILE), table)


def test_assemble_of_an_empty_store(tmp_path):
    store = ResultStore(tmp_path, {"suite": "t"})
    assert store.assemble(KEYS).empty
    assert (tmp_path / RESULTS_FILE).read_text() == "\n"
