"""Code generation per target (ONNX Runtime, TVM, ExecuTorch), runners and devices: grows with issues 4 and 5."""
