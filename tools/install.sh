#!/usr/bin/env bash
# One idempotent install step: a virtual environment with metaleep and everything it needs.
#
#   bash tools/install.sh            # or: make install (make run / make test call it)
#
# Steps (each logged to $VENV/install.log; a failure prints the step, the log's tail and a hint):
#   1. create the virtual environment ($METALEEP_VENV, default .venv) with $PYTHON (default python3)
#   2. torch 2.14.1 + torchvision 0.29.1 (pinned: the releases this project is tested with)
#   3. learn2learn 0.2.0 (only when the extras include `l2l`, as they do by default): PyPI has
#      only an sdist whose pre-generated Cython C does not compile on Python >= 3.11, so the
#      wheel is built from the sdist with Cython >= 3 and cached in $METALEEP_WHEEL_CACHE
#      (default ~/.cache/metaleep/wheels); later installs reuse it. The build drops two declared
#      requirements that learn2learn never imports at import time (gsutil: dataset download
#      helper; qpth: the optional MetaOptNet QP layer). By hand: `pip download --no-deps
#      --no-binary :all: learn2learn==0.2.0`, unpack, delete those two lines of setup.py,
#      `pip install "cython>=3" wheel`, in the unpacked folder `python setup.py build_ext
#      bdist_wheel`, then `pip install dist/*.whl gym`.
#   4. metaleep itself, editable, with the extras in $METALEEP_EXTRAS (default `dev,ray,l2l`:
#      the tests use Ray and compare with learn2learn; metaleep itself runs without both).
# A stamp file records a hash of pyproject.toml and this script: a second run with both unchanged
# does nothing and prints one line.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
venv="${METALEEP_VENV:-.venv}"
python="${PYTHON:-python3}"
cache="${METALEEP_WHEEL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/metaleep/wheels}"
extras="${METALEEP_EXTRAS:-dev,ray,l2l}"
torch_spec=(torch==2.14.1 torchvision==0.29.1)
l2l_version=0.2.0
stamp="$venv/.metaleep-install"
want="$(cat pyproject.toml tools/install.sh | sha256sum | cut -c1-16) extras=$extras"

if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
    echo "metaleep: environment $venv is up to date"
    exit 0
fi

log="$(mktemp -t metaleep-install.XXXXXX.log)"
start=$SECONDS
step() {  # step "what" "hint if it fails" command...
    local what="$1" hint="$2"
    shift 2
    printf 'metaleep install: %-52s' "$what ..."
    local t0=$SECONDS
    if "$@" >>"$log" 2>&1; then
        printf ' done (%ss)\n' $((SECONDS - t0))
    else
        printf ' FAILED\n\n' >&2
        echo "---- last lines of $log ----" >&2
        tail -n 25 "$log" >&2
        echo "----" >&2
        echo "metaleep install failed at: $what" >&2
        echo "what to do: $hint" >&2
        echo "full log: $log" >&2
        exit 1
    fi
}

if ! command -v "$python" >/dev/null 2>&1; then
    echo "metaleep install: '$python' not found; install Python >= 3.10 or set PYTHON=/path/to/python3" >&2
    exit 1
fi
if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 10))'; then
    echo "metaleep install: $python is $("$python" -V 2>&1); metaleep needs Python >= 3.10 (set PYTHON=...)" >&2
    exit 1
fi

if [[ ! -x "$venv/bin/python" ]]; then
    step "create virtual environment $venv" \
        "check that the venv module is available ('apt-get install python3-venv' on Debian)" \
        "$python" -m venv "$venv"
fi
pip=("$venv/bin/python" -m pip --disable-pip-version-check)
step "upgrade pip, setuptools, wheel" "check access to the Python package index" \
    "${pip[@]}" install -q --upgrade pip setuptools wheel

have_torch="$("$venv/bin/python" -c 'import torch, torchvision; print(torch.__version__.split("+")[0], torchvision.__version__.split("+")[0])' 2>/dev/null || true)"
if [[ "$have_torch" != "2.14.1 0.29.1" ]]; then
    step "install ${torch_spec[*]}" \
        "check disk space (torch needs several GB) and access to the package index" \
        "${pip[@]}" install -q "${torch_spec[@]}"
fi

build_l2l_wheel() {
    local work
    work="$(mktemp -d)"
    "${pip[@]}" download -q --no-deps --no-binary learn2learn "learn2learn==$l2l_version" -d "$work"
    tar -xzf "$work/learn2learn-$l2l_version.tar.gz" -C "$work"
    local src="$work/learn2learn-$l2l_version"
    sed -i -e "/'gsutil',/d" -e "/'qpth>=0.0.15',/d" "$src/setup.py"
    "${pip[@]}" install -q "cython>=3" wheel setuptools
    local python_abs
    python_abs="$(cd "$venv" && pwd)/bin/python"  # METALEEP_VENV may be relative or absolute
    (cd "$src" && "$python_abs" setup.py -q build_ext bdist_wheel)
    mkdir -p "$cache"
    cp "$src"/dist/learn2learn-*.whl "$cache/"
    rm -rf "$work"
}
with_l2l=0
[[ ",$extras," == *",l2l,"* ]] && with_l2l=1
if ((with_l2l)); then
    py_tag="$("$venv/bin/python" -c 'import sys; print(f"cp{sys.version_info[0]}{sys.version_info[1]}")')"
    wheel="$(ls "$cache"/learn2learn-$l2l_version-"$py_tag"-*.whl 2>/dev/null | head -n1 || true)"
    if [[ -z "$wheel" ]]; then
        step "build learn2learn $l2l_version wheel (Cython >= 3)" \
            "the build needs a C compiler and the Python headers ('apt-get install gcc python3-dev')" \
            build_l2l_wheel
        wheel="$(ls "$cache"/learn2learn-$l2l_version-"$py_tag"-*.whl | head -n1)"
    fi
    if ! "$venv/bin/python" -c "import importlib.metadata as m; assert m.version('learn2learn') == '$l2l_version'" 2>/dev/null; then
        step "install learn2learn from cached $(basename "$wheel")" \
            "delete $cache and run again to rebuild the wheel" \
            "${pip[@]}" install -q "$wheel"
    fi
fi

step "install metaleep[$extras] (editable)" \
    "read the log above: a dependency could not be installed" \
    "${pip[@]}" install -q -e ".[$extras]"
if ((with_l2l)); then
    step "check: import metaleep, learn2learn" \
        "the environment is inconsistent; delete $venv and run again" \
        "$venv/bin/python" -c "import metaleep, learn2learn; print(metaleep.__version__, learn2learn.__version__)"
else
    step "check: import metaleep" \
        "the environment is inconsistent; delete $venv and run again" \
        "$venv/bin/python" -c "import metaleep; print(metaleep.__version__)"
fi

echo "$want" >"$stamp"
rm -f "$log"
echo "metaleep: environment ready in $venv ($((SECONDS - start))s)"
