"""Post-training quantization for ViTs (uniform, log2, AdaLog, shift-uniform-log2): grows with issue 7."""
