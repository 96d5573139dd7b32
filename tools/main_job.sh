#!/usr/bin/env bash
# The main job on its built-in default: list the model zoo, export TopFormer-Tiny to a verified ONNX file, compile
# it for ARM (aarch64, Cortex-A76 profile) with both ExecuTorch and TVM, and verify each bundle by running the real
# aarch64 code under qemu. Installs what it needs first (tools/bootstrap.sh). Outputs go to ${MVD_OUT:-out/}.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bash "$ROOT/tools/bootstrap.sh"
MVD="${MVD_VENV:-$ROOT/.venv}/bin/mvd"
OUT=${MVD_OUT:-$ROOT/out}
"$MVD" models
"$MVD" export topformer_tiny -o "$OUT/topformer_tiny.onnx"
for target in executorch tvm; do
    "$MVD" compile topformer_tiny --target "$target" --arch aarch64 -o "$OUT/topformer_tiny-$target-aarch64"
    "$MVD" verify "$OUT/topformer_tiny-$target-aarch64"
done
