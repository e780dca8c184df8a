#!/usr/bin/env bash
# The prepared GPU check: CUDA tests and the benchmarks on a CUDA machine, in one short run.
#
# Meant for a lent GPU machine that has Python, torch (CUDA), numpy, scipy, pandas,
# scikit-learn, numba, typer, tqdm, threadpoolctl, matplotlib, Cython and pytest, but no
# network. It needs a bundle folder ($BUNDLE, default .whl) prepared beforehand on a machine
# with the package index:
#
#   mkdir -p .whl && cd .whl
#   pip download --no-deps --no-binary :all: learn2learn==0.2.0 -d .    # sdist, built there
#   pip wheel --no-deps gym==0.26.2 gym_notices==0.1.0 -w .              # pure-Python wheels
#   cp -r ~/.cache/metaleep cache && rm -rf cache/wheels                 # glyphs + backbones
#
# then, on the GPU machine, from the repository root: `bash benchmarks/gpu_check.sh`.
# Logs and JSON results go to $OUT (default /tmp/gpu-check). STEPS="install tests study" runs
# only the steps named (a rerun); SCALE_NAIVE_MAX (default 100) caps the naive study's size in
# the growth table (at 1,000 the step outran its 150 s on an H100). Each step has its own time
# limit, so that one hung step does not take the others' time; the exit status is the number
# of failed steps. On an H100 (2026-11-26) install, tests, study and scale took 24, 29, 123
# and 92 s, adaptation and metrics 30 and 6 s: about 5 minutes, plus the machine's start.
set -uo pipefail

py="$(command -v "${PY:-python3}")" && [[ $py == */* ]] && py="$(realpath -s "$py")"
device="${DEVICE:-cuda}"
bundle="${BUNDLE:-.whl}"
out="${OUT:-/tmp/gpu-check}"
site="${SITE:-/tmp/gpu-check-site}"
mkdir -p "$out" "$site"
export PYTHONUNBUFFERED=1 MPLBACKEND=Agg
export METALEEP_CACHE_DIR="${METALEEP_CACHE_DIR:-$PWD/$bundle/cache}"
export py bundle site
failed=0

step() {  # step NAME SECONDS COMMAND...: run with a time limit, log to $out/NAME.log
    local name="$1" limit="$2" t0=$SECONDS
    shift 2
    if [[ -n "${STEPS:-}" && " $STEPS " != *" $name "* ]]; then
        echo "== $name: skipped (STEPS=$STEPS)"
        return 0
    fi
    echo "== $name (limit ${limit}s)"
    if [[ $(type -t "$1") == function ]]; then  # timeout runs programs, not shell functions
        set -- bash -c "$(declare -f "$1"); $*"
    fi
    timeout "$limit" "$@" 2>&1 | tee "$out/$name.log"
    local rc=${PIPESTATUS[0]}
    echo "== $name: exit $rc after $((SECONDS - t0))s"
    [[ $rc == 0 ]] || failed=$((failed + 1))
}

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1 || true
"$py" -c 'import sys, torch, numpy, numba, Cython; print(sys.version.split()[0], "torch",
torch.__version__, "cuda", torch.version.cuda, "numpy", numpy.__version__, "numba",
numba.__version__, "Cython", Cython.__version__, "| devices:", torch.cuda.device_count())'

install_deps() {
    "$py" -m pip install -q --no-index --no-deps --no-compile --target "$site" \
        "$bundle"/gym-*.whl "$bundle"/gym_notices-*.whl || return 1
    local work
    work="$(mktemp -d)"
    tar -xzf "$bundle"/learn2learn-0.2.0.tar.gz -C "$work" || return 1
    # build_ext re-cythonizes the .pyx files (the shipped C does not compile on Python >= 3.11)
    (cd "$work/learn2learn-0.2.0" && "$py" setup.py -q build_ext bdist_wheel) || return 1
    "$py" -m pip install -q --no-index --no-deps --no-compile --target "$site" \
        "$work"/learn2learn-0.2.0/dist/*.whl || return 1
    rm -rf "$site/tests"  # learn2learn's wheel ships a top-level `tests` package
}
step install 120 install_deps
export PYTHONPATH="$site:$PWD${PYTHONPATH:+:$PYTHONPATH}"
"$py" -c 'import learn2learn, metaleep; print("learn2learn", learn2learn.__version__,
"metaleep", metaleep.__version__)' 2>&1 | grep -v Warn

# In order of importance, so that a run cut short keeps the first results.
# CUDA tests: metrics on CUDA vs CPU, adaptation on CUDA vs the CPU loop, a study on CUDA.
step tests 120 "$py" -m pytest -q -p no:cacheprovider -rs -o addopts="" \
    tests/metrics/test_common.py tests/study/test_adaptation.py tests/study/test_runner.py \
    -k "cuda or gpu"

# The whole study, naive vs metaleep, both on the GPU: 600 episodes, both plans.
step study 150 "$py" benchmarks/bench_study.py --device "$device" --threads 1 --repeats 1 \
    --scale none --skip-memory --json "$out/study.json"

# Batched adaptation (learn2learn loop vs vmap over episodes) on the GPU.
step adaptation 60 "$py" benchmarks/bench_adaptation.py --device "$device" --threads 1 \
    --json "$out/adaptation.json"

# How the study's time grows: 100 episodes (both sides), 1,000 and 10,000 (metaleep; both
# sides up to SCALE_NAIVE_MAX).
step scale 150 "$py" benchmarks/bench_study.py --device "$device" --threads 1 --repeats 1 \
    --episodes 100 --scale 1000,10000 --naive-max "${SCALE_NAIVE_MAX:-100}" --skip-memory \
    --json "$out/scale.json"

step metrics 60 "$py" benchmarks/bench_metrics.py --device "$device" --quick

echo "gpu check: $failed failed step(s); logs in $out"
exit "$failed"
