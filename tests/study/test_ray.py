"""The Ray executor: same table and correlations as in-process whatever the number of workers,
a killed worker's chunk retried, errors of the study code re-raised, the optional import, and
the CLI options.

One private local Ray instance (2 CPUs, 127.0.0.1 only) serves the whole module; every wait on
Ray is bounded (``chunk_timeout``).
"""

from __future__ import annotations

import dataclasses
import importlib
import os
import re
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from typer.testing import CliRunner

from metaleep.study.config import StudyConfig
from metaleep.study.runner import ChunkContext, StudyResult, run_study

TIMEOUT = 120.0  # seconds: the longest any test waits for one chunk


def _drop_timings(table: pd.DataFrame) -> pd.DataFrame:
    return table.drop(columns=[c for c in table.columns if c.startswith("seconds_")])


@pytest.fixture(scope="module")
def data(toy_study):
    return toy_study(12)


FULL = ("maml", "anil", "retrain_head", "prototype")
LIGHT = ("retrain_head", "prototype")  # no learn2learn to import: workers start faster


def _run(
    data, out: Path, executor: Any = None, *, adaptations=LIGHT, analyse: bool = False
) -> StudyResult:
    """The toy study (12 episodes in 4 chunks); ``analyse`` analyses the table and hands the
    analysis to a stand-in for ``write_report`` (its plots take ~10 s) that keeps what the
    report would show."""
    from metaleep.report import page as report

    dataset, suite, backbones = data
    config = StudyConfig(suite="toy", adaptations=adaptations, chunk_size=3, temperature=2.0)

    def keep_report(analysis, out_dir, **kwargs):
        path = Path(out_dir) / "report.pkl"
        shown = {"table": analysis.table, "correlations": analysis.correlations}
        pd.to_pickle({**shown, "verdict": analysis.verdict}, path)
        return path

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(report, "write_report", keep_report)
        return run_study(
            config,
            out_dir=out,
            dataset=dataset,
            suite=suite,
            backbones=backbones,
            analyse=analyse,
            progress=False,
            n_boot=20,
            executor=executor,
        )


@pytest.fixture(scope="module")
def reference(data, tmp_path_factory) -> StudyResult:
    """The full study run in this process (the default executor), analysed."""
    return _run(data, tmp_path_factory.mktemp("in-process"), adaptations=FULL, analyse=True)


@pytest.fixture(scope="module")
def light_reference(data, tmp_path_factory) -> StudyResult:
    """The study with feature-based adaptations only, in this process."""
    return _run(data, tmp_path_factory.mktemp("in-process-light"))


@pytest.fixture(scope="module")
def ray_instance() -> Iterator[Any]:
    """A private local Ray instance with 2 CPUs, started by the executor, for the module."""
    pytest.importorskip("ray", reason="needs the ray extra: pip install metaleep[ray]")
    import ray

    from metaleep.study.ray_executor import RayExecutor

    if ray.is_initialized():  # pragma: no cover - another module left one running
        ray.shutdown()
    with RayExecutor(num_workers=2) as executor:
        yield ray
        assert executor._started_ray
    assert not ray.is_initialized()


# ----------------------------------------------------------------------------- fault injection


@dataclasses.dataclass(eq=False)
class _DyingContext(ChunkContext):
    """Kills its worker process on the first try of chunk ``die_on`` (a marker file records
    the try), or raises ``ValueError`` on it when ``raise_instead``."""

    marker: str = ""
    die_on: int = 1
    raise_instead: bool = False

    def evaluate(self, chunk: int) -> pd.DataFrame:
        if chunk == self.die_on and not os.path.exists(self.marker):
            if self.raise_instead:
                raise ValueError(f"`chunk` must not be {chunk}; got {chunk!r}.")
            Path(self.marker).write_text(str(os.getpid()))
            os._exit(1)
        return super().evaluate(chunk)


class _Injecting:
    """An executor that wraps the context in :class:`_DyingContext` and delegates."""

    def __init__(self, inner: Any, **fault: Any) -> None:
        self.inner = inner
        self.fault = fault

    def map_chunks(
        self, context: ChunkContext, chunks: Sequence[int]
    ) -> Iterator[tuple[int, pd.DataFrame]]:
        fields = {f.name: getattr(context, f.name) for f in dataclasses.fields(ChunkContext)}
        return self.inner.map_chunks(_DyingContext(**fields, **self.fault), chunks)


@pytest.fixture(scope="module")
def by_value(ray_instance):
    """Ship this test module's classes to the workers by value (pytest's module name is not
    importable there)."""
    module = sys.modules[__name__]
    ray_instance.cloudpickle.register_pickle_by_value(module)
    yield
    ray_instance.cloudpickle.unregister_pickle_by_value(module)


# ----------------------------------------------------------------------------- tests


def test_local_instance_listens_on_loopback_only(ray_instance):
    nodes = ray_instance.nodes()
    assert [node["NodeManagerAddress"] for node in nodes] == ["127.0.0.1"]
    assert ray_instance.cluster_resources()["CPU"] == 2
    assert ray_instance.get_runtime_context().gcs_address.startswith("127.0.0.1:")


@pytest.mark.slow
def test_same_table_and_correlations_as_in_process(ray_instance, data, reference, tmp_path):
    from metaleep.study.ray_executor import RayExecutor

    executor = RayExecutor(num_workers=2, chunk_timeout=TIMEOUT)
    result = _run(data, tmp_path, executor, adaptations=FULL, analyse=True)
    assert executor.workers_started == 2 and executor.retries == 0
    assert ray_instance.is_initialized()  # the module's instance is not shut down
    pd.testing.assert_frame_equal(_drop_timings(result.table), _drop_timings(reference.table))
    assert result.correlations is not None and reference.correlations is not None
    pd.testing.assert_frame_equal(result.correlations, reference.correlations)
    assert result.report is not None and reference.report is not None
    shown, expected = pd.read_pickle(result.report), pd.read_pickle(reference.report)
    pd.testing.assert_frame_equal(shown["correlations"], expected["correlations"])
    pd.testing.assert_frame_equal(shown["verdict"], expected["verdict"])
    pd.testing.assert_frame_equal(_drop_timings(shown["table"]), _drop_timings(expected["table"]))
    stored = sorted(p.name for p in (tmp_path / "results").glob("chunk-*.csv"))
    assert stored == [f"chunk-{c:05d}.csv" for c in range(4)]


@pytest.mark.slow
def test_killed_worker_chunk_is_retried(ray_instance, by_value, data, light_reference, tmp_path):
    """One worker, killed (os._exit) on the first try of chunk 2: a fresh worker redoes it."""
    from metaleep.study.ray_executor import RayExecutor

    marker = tmp_path / "killed-once"
    executor = RayExecutor(num_workers=1, max_retries=2, chunk_timeout=TIMEOUT)
    result = _run(data, tmp_path / "study", _Injecting(executor, marker=str(marker), die_on=2))
    assert marker.exists() and int(marker.read_text()) != os.getpid()  # died in a worker
    assert executor.retries == 1
    assert executor.workers_started == 2  # one, and one to replace the killed one
    pd.testing.assert_frame_equal(_drop_timings(result.table), _drop_timings(light_reference.table))
    assert not result.table.duplicated(["episode", "backbone", "dummy", "adaptation"]).any()


@pytest.mark.slow
def test_chunk_whose_worker_keeps_dying_fails_the_study(ray_instance, by_value, data, tmp_path):
    """With ``max_retries=0`` the first death is final: ChunkFailedError, nothing stored."""
    from metaleep.study.ray_executor import ChunkFailedError, RayExecutor

    executor = RayExecutor(num_workers=1, max_retries=0, chunk_timeout=TIMEOUT)
    fault = _Injecting(executor, marker=str(tmp_path / "killed"), die_on=0)
    message = "chunk 0: its worker died on each of 1 tries (last: ActorDiedError)"
    with pytest.raises(ChunkFailedError, match=f"^{re.escape(message)}"):
        _run(data, tmp_path / "study", fault)
    assert executor.retries == 0 and executor.workers_started == 1
    assert not list((tmp_path / "study" / "results").glob("chunk-*.csv"))


@pytest.mark.slow
def test_error_in_study_code_is_raised_with_its_type_not_retried(
    ray_instance, by_value, data, tmp_path
):
    from metaleep.study.ray_executor import RayExecutor

    executor = RayExecutor(num_workers=1, max_retries=3, chunk_timeout=TIMEOUT)
    fault = _Injecting(executor, marker=str(tmp_path / "never"), die_on=1, raise_instead=True)
    with pytest.raises(ValueError, match=r"^`chunk` must not be 1; got 1\.$"):
        _run(data, tmp_path / "study", fault)
    assert executor.retries == 0
    # chunk 0 finished before chunk 1 failed: it is stored, and a rerun resumes from it
    stored = sorted(p.name for p in (tmp_path / "study" / "results").glob("chunk-*.csv"))
    assert stored == ["chunk-00000.csv"]


def test_import_without_ray_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now raises ImportError
    monkeypatch.delitem(sys.modules, "metaleep.study.ray_executor", raising=False)
    with pytest.raises(ImportError, match=r"pip install metaleep\[ray\]"):
        importlib.import_module("metaleep.study.ray_executor")


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        (
            {"num_workers": 0},
            ValueError,
            "`num_workers` must be a positive integer or None; got 0.",
        ),
        ({"num_workers": "2"}, TypeError, "`num_workers` must be a positive integer or None"),
        ({"num_cpus_per_worker": 0}, ValueError, "`num_cpus_per_worker` must be a positive"),
        ({"max_retries": -1}, ValueError, "`max_retries` must be a non-negative integer; got -1."),
        ({"chunk_timeout": 0}, ValueError, "`chunk_timeout` must be > 0 or None; got 0."),
        ({"address": ""}, ValueError, "`address` must be None, 'auto'"),
    ],
)
def test_bad_arguments(kwargs, error, message):
    pytest.importorskip("ray")
    from metaleep.study.ray_executor import RayExecutor

    with pytest.raises(error, match="^" + message.replace("(", r"\(").replace(")", r"\)")):
        RayExecutor(**kwargs)


# ----------------------------------------------------------------------------- CLI


@pytest.fixture
def captured_run(monkeypatch):
    """Replace run_study by a recorder (the CLI's executor options are what is tested)."""
    from metaleep.study import runner

    seen: dict[str, Any] = {}

    def record(config, **kwargs):
        seen.update(kwargs)
        raise ValueError("`stop` must be reached; got it.")

    monkeypatch.setattr(runner, "run_study", record)
    return seen


def test_cli_ray_options_build_the_executor(captured_run):
    pytest.importorskip("ray")
    from metaleep.cli import app
    from metaleep.study.ray_executor import RayExecutor

    args = ["run", "--executor", "ray", "--ray-address", "auto", "--workers", "3"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2 and "`stop` must be reached" in result.output
    executor = captured_run["executor"]
    assert isinstance(executor, RayExecutor)
    assert (executor.address, executor.num_workers) == ("auto", 3)
    result = CliRunner().invoke(app, ["run"])
    assert captured_run["executor"] is None  # in-process by default


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--executor", "spark"], "`--executor` must be local or ray; got 'spark'."),
        (["--workers", "2"], "`--ray-address` and `--workers` must be used with --executor ray"),
        (["--ray-address", "auto"], "with --ray-address."),
        (["--executor", "ray", "--workers", "-1"], "`--workers` must be >= 0; got -1."),
    ],
)
def test_cli_rejects_bad_executor_options(captured_run, args, message):
    from metaleep.cli import app

    result = CliRunner().invoke(app, ["run", *args])
    assert result.exit_code == 2
    assert message in result.output
    assert captured_run == {}  # refused before the study started
