"""Scale a study out on Ray: chunks of episodes evaluated by worker processes, on one machine or
many.

:class:`RayExecutor` is an executor for :func:`metaleep.study.runner.run_study` (``executor=``;
``metaleep run --executor ray``). The runner computes every backbone's outputs once, in the
driver; the executor puts the resulting :class:`~metaleep.study.runner.ChunkContext` (data set,
backbones, outputs) into Ray's object store once, starts ``num_workers`` actors that each
deserialise it once (so each worker loads the backbones once), and hands chunk numbers to idle
workers. Finished chunks come back in completion order and the runner stores each at once, so a
study stopped at any point resumes from what is stored.

A chunk's rows depend only on the context and the chunk number (episode seeds are per episode),
so the table is the one the in-process executor produces, whatever the number of workers (the
``seconds_*`` timing columns aside). Each worker runs torch and BLAS with ``num_cpus_per_worker``
threads (1 by default): the numbers are then also those of an in-process run with one thread.

Fault tolerance: a worker process that dies (killed, out of memory, its node lost) fails the
chunk it held; that chunk is given to a fresh worker, up to ``max_retries`` times per chunk. An
exception raised by the study code itself is not retried (it would fail again): it is re-raised
in the driver with its original type.

A private local instance is this process's: when the driver ends normally it is shut down; when
the driver is killed (SIGKILL, out of memory), Ray's agents (``ray::DashboardAgent``,
``ray::RuntimeEnvAgent``) outlived it for about a minute, listening. So each private instance
records the processes it started (pid and start time) in metaleep's cache (``ray/``), and the
next private start ends those of a driver that is gone (:func:`reap_orphans`); a process whose
pid was reused by another program (another start time) is never touched.

Ray is an optional dependency (``pip install metaleep[ray]``): importing this module without it
raises an ``ImportError`` that says so.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections import Counter, deque
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd

try:
    import ray
    from ray import exceptions as ray_errors
except ImportError as _error:  # pragma: no cover - exercised by a test that hides ray
    raise ImportError(
        "metaleep.study.ray_executor needs Ray, an optional dependency of metaleep: "
        "`pip install metaleep[ray]` (or `pip install 'ray[default]'`)."
    ) from _error

from metaleep.study.runner import ChunkContext

__all__ = ["ChunkFailedError", "RayExecutor", "reap_orphans"]

log = logging.getLogger(__name__)

_WORKER_LOST: tuple[type[BaseException], ...] = (
    ray_errors.RayActorError,  # ActorDiedError, ActorUnavailableError
    ray_errors.WorkerCrashedError,
    ray_errors.NodeDiedError,
    ray_errors.OutOfMemoryError,
    ray_errors.ObjectLostError,
    ray_errors.LocalRayletDiedError,
)
"""Failures of the machinery, not of the study code: the chunk is worth another try."""


class ChunkFailedError(RuntimeError):
    """A chunk's worker died on every one of its tries (the message says which and why)."""


class _ChunkWorker:
    """A worker process holding one study's :class:`ChunkContext` (deserialised once)."""

    def __init__(self, context: ChunkContext, threads: int) -> None:
        import torch
        from threadpoolctl import threadpool_limits

        torch.set_num_threads(threads)
        threadpool_limits(threads)
        self.context = context

    def evaluate(self, chunk: int) -> pd.DataFrame:
        """The rows of chunk ``chunk``."""
        return self.context.evaluate(chunk)

    def pid(self) -> int:
        """The worker's process id."""
        return os.getpid()


_RemoteWorker: Any = ray.remote(_ChunkWorker)

_LOCAL_ENV = {
    # Ray advertises (and binds its servers to) the machine's outward address unless its
    # "cluster" mode is off; then it uses 127.0.0.1. Read when `ray` is imported and inherited
    # by the processes Ray starts.
    "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
    # Ray starts workers at niceness 15; in a private instance they are the work itself, and
    # run at the priority of the in-process executor.
    "RAY_worker_niceness": "0",
}


@contextmanager
def _private_instance_settings() -> Iterator[None]:
    """Settings of a Ray instance started inside this block: listening on the loopback
    interface only (127.0.0.1), workers at normal priority."""
    from ray._private import ray_constants

    saved_env = {key: os.environ.get(key) for key in _LOCAL_ENV}
    saved_flag = getattr(ray_constants, "ENABLE_RAY_CLUSTER", None)
    os.environ.update(_LOCAL_ENV)
    ray_constants.ENABLE_RAY_CLUSTER = False
    try:
        yield
    finally:
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        if saved_flag is not None:
            ray_constants.ENABLE_RAY_CLUSTER = saved_flag


# ----------------------------------------------------------------------------- orphans


def _records_dir() -> Path:
    from metaleep._io import cache_dir

    return cache_dir("ray")


def _started(process: Any) -> float | None:
    try:
        return float(process.create_time())
    except Exception:  # psutil.Error: gone or not ours to see
        return None


def _record_instance() -> None:
    """Record this driver and the processes its private Ray instance runs (its children whose
    command line is Ray's: the driver's other children are none of this record's business)."""
    import psutil

    me = psutil.Process()
    children = []
    for child in me.children(recursive=True):
        started = _started(child)
        try:
            command = " ".join(child.cmdline()).lower()
        except psutil.Error:
            continue
        if started is not None and ("ray" in command or "gcs_server" in command):
            children.append({"pid": child.pid, "started": started})
    record = {"driver": me.pid, "started": _started(me), "processes": children}
    from metaleep._io import atomic_write_bytes

    atomic_write_bytes(_records_dir() / f"driver-{me.pid}.json", json.dumps(record).encode())


def _forget_instance() -> None:
    (_records_dir() / f"driver-{os.getpid()}.json").unlink(missing_ok=True)


def reap_orphans() -> int:
    """End the Ray processes that private instances of drivers now gone left running.

    Reads the records in the cache's ``ray/`` folder; for each driver that no longer runs (its
    pid gone, or taken by a process started at another time), terminates each recorded process
    still running with its recorded start time (SIGTERM, then SIGKILL after 3 s) and removes
    the record. Returns how many processes it ended.

    Examples
    --------
    >>> reap_orphans() >= 0
    True
    """
    import psutil

    ended = 0
    for path in sorted(_records_dir().glob("driver-*.json")):
        try:
            record = json.loads(path.read_text())
            driver, started = int(record["driver"]), record.get("started")
            processes = [(int(p["pid"]), float(p["started"])) for p in record["processes"]]
        except (OSError, ValueError, KeyError, TypeError, RecursionError):
            path.unlink(missing_ok=True)  # a record of ours that cannot be read: nothing to do
            continue
        try:
            alive = _started(psutil.Process(driver)) == started
        except psutil.Error:
            alive = False
        if alive:
            continue
        victims = []
        for pid, when in processes:
            try:
                process = psutil.Process(pid)
            except psutil.Error:
                continue
            if _started(process) == when:
                victims.append(process)
        for process in victims:
            try:
                process.terminate()
            except psutil.Error:
                pass
        _, still = psutil.wait_procs(victims, timeout=3)
        for process in still:
            try:
                process.kill()
            except psutil.Error:
                pass
        psutil.wait_procs(still, timeout=3)
        if victims:
            log.info("ended %d Ray processes of driver %d, which is gone", len(victims), driver)
        ended += len(victims)
        path.unlink(missing_ok=True)
    return ended


def _positive_int(value: object, name: str, expected: str = "a positive integer") -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"`{name}` must be {expected}; got {value!r}.")
    if value < 1:
        raise ValueError(f"`{name}` must be {expected}; got {value!r}.")
    return value


class RayExecutor:
    """Evaluate a study's chunks on Ray workers (an executor for :func:`run_study`).

    Parameters
    ----------
    address:
        Where the Ray cluster is. ``None``: use the Ray connection this process already has
        (``ray.init`` called before), else start a private local instance, listening on
        127.0.0.1 only, with ``num_workers * num_cpus_per_worker`` CPUs (all the machine's
        when ``num_workers`` is None), and shut it down after the study. ``"auto"``: connect
        to the cluster this machine belongs to (``ray start`` run here, or ``RAY_ADDRESS``).
        ``"ray://host:10001"``: connect through Ray Client; ``"host:6379"``: connect as a
        driver on a cluster node. A connection this executor makes is closed after the study;
        the cluster itself is left running.
    num_workers:
        Worker processes (Ray actors); default as many as the cluster's CPUs allow
        (``CPU // num_cpus_per_worker``), and never more than there are chunks to do.
    num_cpus_per_worker:
        CPUs reserved by each worker, and its torch / BLAS thread count.
    max_retries:
        How many times a chunk whose worker died is given to a fresh worker before the study
        fails with :class:`ChunkFailedError` (finished chunks are stored: rerun to resume).
    chunk_timeout:
        Seconds to wait for the next chunk to finish before failing with ``TimeoutError``
        (``None``: wait as long as it takes).
    runtime_env:
        Ray runtime environment for the workers (e.g. ``{"pip": ["metaleep"]}`` on a cluster
        where metaleep is not installed); passed to ``ray.init``.

    Attributes
    ----------
    retries:
        Chunks given to a fresh worker after a worker died (over every study run so far).
    workers_started:
        Worker processes started (the replacements of dead workers included).

    Examples
    --------
    >>> executor = RayExecutor(num_workers=2)
    >>> executor
    RayExecutor(address=None, num_workers=2, num_cpus_per_worker=1, max_retries=3)

    ``run_study(config, executor=executor)`` then evaluates the chunks on 2 local workers, in a
    Ray instance started for that study and shut down after it. To run several studies on one
    instance (or one connection), use the executor as a context manager::

        with RayExecutor("auto") as executor:
            for config in configs:
                run_study(config, executor=executor)
    """

    def __init__(
        self,
        address: str | None = None,
        *,
        num_workers: int | None = None,
        num_cpus_per_worker: int = 1,
        max_retries: int = 3,
        chunk_timeout: float | None = None,
        runtime_env: Mapping[str, Any] | None = None,
    ) -> None:
        if address is not None and (not isinstance(address, str) or not address):
            error = TypeError if not isinstance(address, str) else ValueError
            raise error(
                f"`address` must be None, 'auto', 'ray://host:port' or 'host:port'; got "
                f"{address!r}."
            )
        self.address = address
        self.num_workers = (
            None
            if num_workers is None
            else _positive_int(num_workers, "num_workers", "a positive integer or None")
        )
        self.num_cpus_per_worker = _positive_int(num_cpus_per_worker, "num_cpus_per_worker")
        if isinstance(max_retries, bool) or not isinstance(max_retries, int):
            raise TypeError(f"`max_retries` must be a non-negative integer; got {max_retries!r}.")
        if max_retries < 0:
            raise ValueError(f"`max_retries` must be a non-negative integer; got {max_retries!r}.")
        self.max_retries = max_retries
        if chunk_timeout is not None and not chunk_timeout > 0:
            raise ValueError(f"`chunk_timeout` must be > 0 or None; got {chunk_timeout!r}.")
        self.chunk_timeout = chunk_timeout
        self.runtime_env = dict(runtime_env) if runtime_env is not None else None
        self.retries = 0
        self.workers_started = 0
        self._started_ray = False
        self._private = False

    def __enter__(self) -> RayExecutor:
        """Connect (or start the local instance) now, for several studies in a row."""
        self._started_ray = self._connect() or self._started_ray
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Shut down the Ray instance (or connection) that :meth:`__enter__` started."""
        if self._started_ray:
            self._started_ray = False
            _shutdown()

    def __repr__(self) -> str:
        return (
            f"RayExecutor(address={self.address!r}, num_workers={self.num_workers!r}, "
            f"num_cpus_per_worker={self.num_cpus_per_worker}, max_retries={self.max_retries})"
        )

    # ------------------------------------------------------------------ connection

    def _connect(self) -> bool:
        """Make sure this process is connected to Ray; True if this call did it."""
        if ray.is_initialized():
            if self.address is not None:
                log.info("Ray is already initialised in this process; using that connection")
            return False
        options: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
        if self.runtime_env is not None:
            options["runtime_env"] = self.runtime_env
        if self.address is None:
            cpus = (
                self.num_workers * self.num_cpus_per_worker
                if self.num_workers is not None
                else os.cpu_count() or 1
            )
            reap_orphans()
            log.info("starting a local Ray instance (127.0.0.1) with %d CPUs", cpus)
            with _private_instance_settings():
                ray.init(address="local", num_cpus=cpus, **options)
            self._private = True
            _record_instance()
        else:
            log.info("connecting to the Ray cluster at %s", self.address)
            ray.init(address=self.address, **options)
        return True

    def _worker_count(self, chunks: int) -> int:
        if self.num_workers is not None:
            return min(self.num_workers, chunks)
        cpus = float(ray.cluster_resources().get("CPU", 1.0))
        return max(1, min(int(cpus // self.num_cpus_per_worker), chunks))

    def _start_worker(self, context_ref: Any) -> Any:
        self.workers_started += 1
        return _RemoteWorker.options(
            num_cpus=self.num_cpus_per_worker,
            max_restarts=0,
            max_task_retries=0,
            scheduling_strategy="SPREAD",
        ).remote(context_ref, self.num_cpus_per_worker)

    # ------------------------------------------------------------------ the executor protocol

    def map_chunks(
        self, context: ChunkContext, chunks: Sequence[int]
    ) -> Iterator[tuple[int, pd.DataFrame]]:
        """Evaluate ``chunks`` on Ray workers; yield ``(chunk, rows)`` as each finishes.

        Raises
        ------
        ChunkFailedError
            A chunk's worker died more than ``max_retries`` times.
        TimeoutError
            No chunk finished within ``chunk_timeout`` seconds.
        Exception
            An exception raised by the study code in a worker, with its original type.
        """
        todo = deque(int(c) for c in chunks)
        if not todo:
            return
        started_ray = self._connect()
        workers: list[Any] = []
        running: dict[Any, tuple[int, Any]] = {}
        tries: Counter[int] = Counter()
        try:
            context_ref = ray.put(context)
            count = self._worker_count(len(todo))
            workers = [self._start_worker(context_ref) for _ in range(count)]
            if self._private:
                _record_instance()  # the workers (and agents started since) too
            log.info("evaluating %d chunks on %d Ray workers", len(todo), len(workers))

            def submit(worker: Any) -> None:
                chunk = todo.popleft()
                tries[chunk] += 1
                running[worker.evaluate.remote(chunk)] = (chunk, worker)

            for worker in workers:
                if todo:
                    submit(worker)
            while running:
                ready, _ = ray.wait(list(running), num_returns=1, timeout=self.chunk_timeout)
                if not ready:
                    waiting = sorted(chunk for chunk, _ in running.values())
                    raise TimeoutError(
                        f"no chunk finished within chunk_timeout={self.chunk_timeout} s "
                        f"(chunks {waiting} running); finished chunks are stored: rerun to "
                        "resume, with a larger chunk_timeout if chunks are slow."
                    )
                ref = ready[0]
                chunk, worker = running.pop(ref)
                try:
                    rows = ray.get(ref, timeout=self.chunk_timeout)
                except _WORKER_LOST as error:
                    if tries[chunk] > self.max_retries:
                        raise ChunkFailedError(
                            f"chunk {chunk}: its worker died on each of {tries[chunk]} tries "
                            f"(last: {type(error).__name__}); finished chunks are stored. Look "
                            "for the cause in the Ray logs (/tmp/ray/session_latest/logs), e.g. "
                            "memory, then rerun to resume."
                        ) from error
                    self.retries += 1
                    log.warning(
                        "chunk %d: worker lost (%s); retrying on a fresh worker (try %d of %d)",
                        chunk,
                        type(error).__name__,
                        tries[chunk] + 1,
                        self.max_retries + 1,
                    )
                    ray.kill(worker, no_restart=True)
                    workers.remove(worker)
                    worker = self._start_worker(context_ref)
                    workers.append(worker)
                    todo.appendleft(chunk)
                    submit(worker)
                    continue
                except ray_errors.RayTaskError as error:
                    # The study code raised: the original exception, the remote traceback
                    # chained to it.
                    cause = getattr(error, "cause", None)
                    if isinstance(cause, Exception):
                        raise cause from error
                    raise
                if todo:
                    submit(worker)
                yield chunk, rows
        finally:
            for worker in workers:
                ray.kill(worker, no_restart=True)
            running.clear()
            if started_ray:
                _shutdown()


def _shutdown() -> None:
    start = time.perf_counter()
    ray.shutdown()
    _forget_instance()
    log.info("Ray shut down in %.1f s", time.perf_counter() - start)
