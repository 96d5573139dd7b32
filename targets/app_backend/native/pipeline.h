// Frame -> model input and logits -> label map, reproducing mobilevit_deploy.data.preprocess bit for bit.
//
// Preprocess resizes with torch.nn.functional.interpolate(mode="bilinear", align_corners=False) and
// logits_to_label resizes logits the same way before the argmax. PyTorch's CPU kernel (ATen
// UpSampleKernel.cpp, torch 2.13, x86 builds) picks one of two loops and each has its own order of float
// operations; the compiler fuses some multiply-adds. To get identical bits this file spells out, with explicit
// fma() and -ffp-contract=off everywhere else:
//   source index   s = fma(scale, o + 0.5f, -0.5f), clamped at 0; i0 = floor(s); l1 = s - i0; l0 = 1 - l1
//   "generic" loop (NCHW): t0 = fma(v00, lw0, v01 * lw1), t1 = fma(v10, lw0, v11 * lw1), y = fma(t0, lh0, t1 * lh1)
//   channels-last loop: w00 = lh0 * lw0 ... (products), then per channel
//       in 8-lane vector blocks  y = fma(v00, w00, fma(v01, w01, fma(v11, w11, v10 * w10)))
//       in the scalar tail       y = fma(v11, w11, fma(v10, w10, fma(v00, w00, v01 * w01)))
//   the channels-last loop runs when out_h + out_w <= 128, or for 3 channels when PyTorch has one thread
//   (mvd's default and the tests'); otherwise the generic loop.
// Images (3 channels) therefore always take the scalar channels-last formula; logits of C classes take the
// generic loop except for tiny frames. tests/targets/test_app_backend_pipeline.py checks every case against
// PyTorch itself.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace mvdseg {

// PyTorch's source indices and weights along one axis for resizing `in` samples to `out`.
struct Axis {
  std::vector<int64_t> i0, i1;
  std::vector<float> l0, l1;
};
Axis linear_axis(int64_t in, int64_t out);

// An RGBA8888 frame; alpha is ignored.
struct RgbaFrame {
  const uint8_t* data;
  int width, height, stride;
  void pixel(int y, int x, float rgb[3]) const {
    const uint8_t* p = data + static_cast<size_t>(y) * stride + static_cast<size_t>(x) * 4;
    rgb[0] = p[0], rgb[1] = p[1], rgb[2] = p[2];
  }
};

// NV21 (Y plane, then interleaved V/U at half resolution) converted per pixel with BT.601 full-range integer
// arithmetic (16-bit fixed point, one rounding); targets/app_backend/frames.py is the Python reference.
struct Nv21Frame {
  const uint8_t* data;
  int width, height, stride;
  void pixel(int y, int x, float rgb[3]) const;
};

// Frame -> 1x3xHxW float32 model input: bilinear resize to (out_h, out_w), then (x - mean) / std.
template <class Frame>
void preprocess(const Frame& frame, int out_h, int out_w, const float mean[3], const float std[3], float* out);

// 1xCxhxw logits -> out_h x out_w argmax labels (first maximum wins, as torch.argmax). In the generic loop only
// the classes that can still win a source cell are resized there (a conservative bound; the labels are those of
// the full computation). `scratch` is reused between calls to avoid allocations per frame.
void logits_to_labels(const float* logits, int classes, int lh, int lw, int out_h, int out_w, uint8_t* labels,
                      std::vector<float>& scratch);

// 1xCxhxw logits -> 1xCxout_hxout_w float32, bit for bit what logits_to_labels takes the argmax of.
void resize_logits(const float* logits, int classes, int lh, int lw, int out_h, int out_w, float* out);

// Label map -> RGBA colours from the bundle palette (alpha 255).
void colorize(const uint8_t* labels, size_t count, const std::vector<std::array<uint8_t, 3>>& palette, uint8_t* rgba);

}  // namespace mvdseg
