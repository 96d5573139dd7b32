#!/usr/bin/env bash
# The main job on its built-in default, on a fresh machine: start the emulated phone (an adb device backed by
# qemu-aarch64), compile TopFormer-Tiny for ARM (aarch64, Cortex-A76 profile) with ExecuTorch and with TVM, verify
# both bundles, profile both over the real adb, and print the comparison table. Installs what it needs first.
# Outputs go to ${MVD_OUT:-out/}; MVD_INPUT_SIZE (default 512) and MVD_RUNS (default 3) make it shorter or longer.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bash "$ROOT/tools/bootstrap.sh"
BIN="${MVD_VENV:-$ROOT/.venv}/bin"
MVD="$BIN/mvd"
OUT=${MVD_OUT:-$ROOT/out}
SIZE=${MVD_INPUT_SIZE:-512}
mkdir -p "$OUT"

"$MVD" models
"$MVD" export topformer_tiny --input-size "$SIZE" -o "$OUT/topformer_tiny.onnx"
bundles=()
for target in executorch tvm; do
    bundle="$OUT/topformer_tiny-$target-aarch64"
    "$MVD" compile topformer_tiny --target "$target" --arch aarch64 --input-size "$SIZE" -o "$bundle"
    "$MVD" verify "$bundle"
    bundles+=("$bundle")
done

# A private adb server (its own port, its own HOME for the adb key) so nothing touches the user's adb setup.
free_port() { "$BIN/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
PHONE_PORT=$(free_port)
export ANDROID_ADB_SERVER_PORT=$(free_port)
ADB_HOME=$(mktemp -d)
SERIAL="127.0.0.1:$PHONE_PORT"
"$MVD" device emulate --port "$PHONE_PORT" --root "$OUT/emulated-phone" --cpu cortex-a76 &
PHONE_PID=$!
cleanup() {
    HOME="$ADB_HOME" adb -P "$ANDROID_ADB_SERVER_PORT" kill-server >/dev/null 2>&1 || true
    kill "$PHONE_PID" 2>/dev/null || true
    wait "$PHONE_PID" 2>/dev/null || true
    rm -rf "$ADB_HOME"
}
trap cleanup EXIT
for _ in $(seq 50); do
    HOME="$ADB_HOME" adb connect "$SERIAL" >/dev/null 2>&1 || true
    [ "$(HOME="$ADB_HOME" adb -s "$SERIAL" get-state 2>/dev/null)" = device ] && break
    sleep 0.2
done
HOME="$ADB_HOME" "$MVD" devices
HOME="$ADB_HOME" "$MVD" profile "${bundles[@]}" --device "$SERIAL" --warmup 1 --runs "${MVD_RUNS:-3}" --threads 1 \
    --json "$OUT/profile.json"
echo "[main job] done: bundles and profile.json in $OUT (timings under qemu say nothing about a phone; outputs do)"
