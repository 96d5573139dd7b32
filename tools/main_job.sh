#!/usr/bin/env bash
# The main job on its built-in default: list the model zoo, then export TopFormer-Tiny to a verified ONNX file.
# Installs what it needs first (tools/bootstrap.sh). Outputs go to ${MVD_OUT:-out/}.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bash "$ROOT/tools/bootstrap.sh"
MVD="${MVD_VENV:-$ROOT/.venv}/bin/mvd"
OUT=${MVD_OUT:-$ROOT/out}
"$MVD" models
"$MVD" export topformer_tiny -o "$OUT/topformer_tiny.onnx"
