"""Run every ``benchmarks/bench_*.py`` (``make bench``), each in its own interpreter.

Each script's ``main(argv)`` is called with ``["--quick"]`` in quick mode and ``[]`` otherwise;
a fresh interpreter per script keeps one benchmark's settings (thread counts, allocator
options, imported libraries) out of the next one's timings. Scripts run in name order; the
exit status is 1 when any of them fails (an exception or a non-zero integer from ``main``).

    python benchmarks/run_all.py            # full runs (minutes each)
    python benchmarks/run_all.py --quick    # smoke runs
    python benchmarks/run_all.py --only study --only metrics

bench_new_metrics.py (the metrics after LEEP vs their public references) runs with the others.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

HERE = Path(__file__).resolve().parent

_CALL = (
    "import sys; sys.path.insert(0, {here!r}); import {module} as bench; "
    "code = bench.main({argv!r}); sys.exit(code if isinstance(code, int) else 0)"
)


def scripts(only: Sequence[str] = ()) -> list[Path]:
    """The ``bench_*.py`` scripts, in name order; ``only`` keeps those named (``study`` or
    ``bench_study``)."""
    found = sorted(HERE.glob("bench_*.py"))
    if not only:
        return found
    wanted = {name.removeprefix("bench_").removesuffix(".py") for name in only}
    unknown = wanted - {path.stem.removeprefix("bench_") for path in found}
    if unknown:
        names = ", ".join(path.stem.removeprefix("bench_") for path in found)
        raise ValueError(f"`--only` must name benchmarks among {names}; got {sorted(unknown)}.")
    return [path for path in found if path.stem.removeprefix("bench_") in wanted]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="pass --quick to every benchmark")
    parser.add_argument(
        "--only", action="append", default=[], help="run only this benchmark (repeatable)"
    )
    args = parser.parse_args(argv)
    try:
        chosen = scripts(args.only)
    except ValueError as error:
        parser.error(str(error))
    bench_argv = ["--quick"] if args.quick else []
    results: list[tuple[str, int, float]] = []
    for path in chosen:
        print(f"\n=== {path.name} {' '.join(bench_argv)}".rstrip(), flush=True)
        start = time.perf_counter()
        code = _CALL.format(here=str(HERE), module=path.stem, argv=bench_argv)
        status = subprocess.run([sys.executable, "-c", code], check=False).returncode
        results.append((path.name, status, time.perf_counter() - start))
    print("\n=== summary")
    for name, status, seconds in results:
        print(f"{name:24s} {'ok' if status == 0 else f'FAILED ({status})':12s} {seconds:7.1f} s")
    return 1 if any(status != 0 for _, status, _ in results) else 0


if __name__ == "__main__":
    sys.exit(main())
