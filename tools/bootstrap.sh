#!/usr/bin/env bash
# Install what mobilevit-deploy needs on a fresh machine: the Debian packages of the ARM toolchain (cross compiler,
# qemu user mode, adb) and a virtual environment with the package in editable mode. Running it again is a quick
# no-op unless pyproject.toml, the constraints or this script changed.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=${MVD_VENV:-$ROOT/.venv}
log() { echo "[bootstrap] $*" >&2; }

missing=()
command -v aarch64-linux-gnu-g++ >/dev/null || missing+=(g++-aarch64-linux-gnu)
command -v qemu-aarch64 >/dev/null || missing+=(qemu-user)
command -v adb >/dev/null || missing+=(adb)
command -v javac >/dev/null || missing+=(default-jdk-headless)  # the app backend's MvdSegmenter jar and its JVM test
if ((${#missing[@]})); then
    sudo=""
    [ "$(id -u)" = 0 ] || sudo=sudo
    log "installing Debian packages: ${missing[*]}"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi

python=$(command -v python3.11 || command -v python3)
"$python" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' || {
    echo "mobilevit-deploy needs Python 3.11 (found $("$python" --version))" >&2
    exit 1
}

stamp="$VENV/.mvd-install-stamp"
want=$(cat "$ROOT/pyproject.toml" "$ROOT/tools/constraints.txt" "$ROOT/tools/bootstrap.sh" | sha256sum | cut -d' ' -f1)
if [ ! -x "$VENV/bin/python" ]; then
    log "creating virtual environment $VENV"
    "$python" -m venv "$VENV"
fi
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    pip_quiet() { "$VENV/bin/pip" install -q --disable-pip-version-check "$@" 2> >(grep -v "WARNING: Location" >&2); }
    log "installing torch==2.13.0 (CPU) first, then mobilevit-deploy and its pinned stack"
    pip_quiet -c "$ROOT/tools/constraints.txt" torch==2.13.0
    pip_quiet -c "$ROOT/tools/constraints.txt" -e "$ROOT[dev]"
    if "$VENV/bin/pip" list 2>/dev/null | grep -qi '^nvidia-'; then
        echo "a CUDA package slipped into $VENV; check tools/constraints.txt" >&2
        exit 1
    fi
    echo "$want" >"$stamp"
fi
