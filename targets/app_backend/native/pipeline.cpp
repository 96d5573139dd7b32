// Compiled with -ffp-contract=off: every fused multiply-add below is an explicit std::fma, placed where PyTorch's
// compiled kernel has one (see pipeline.h).
#include "pipeline.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

namespace mvdseg {
namespace {

constexpr int kTorchVectorLanes = 8;     // at::vec::Vectorized<float>::size() in the kernel PyTorch runs on x86
constexpr int kChannelsLastMaxSum = 128;  // _use_channels_last_kernel_2d: output_h + output_w <= 128

inline uint8_t clamp_u8(int v) { return static_cast<uint8_t>(v < 0 ? 0 : (v > 255 ? 255 : v)); }

// Scalar tail of the channels-last loop: ((v00*w00 + v01*w01) + v10*w10) + v11*w11 as GCC fused it.
inline float blend_scalar(float v00, float v01, float v10, float v11, float w00, float w01, float w10, float w11) {
  return std::fma(v11, w11, std::fma(v10, w10, std::fma(v00, w00, v01 * w01)));
}

// Vector blocks of the channels-last loop: v00*w00 + (v01*w01 + (v10*w10 + v11*w11)) as GCC fused it.
inline float blend_vector(float v00, float v01, float v10, float v11, float w00, float w01, float w10, float w11) {
  return std::fma(v00, w00, std::fma(v01, w01, std::fma(v11, w11, v10 * w10)));
}

// First maximum over the classes of one output row (`rows` = classes x width, class-major), as torch.argmax.
void argmax_row(const float* rows, int classes, int width, float* best, int32_t* index, uint8_t* labels) {
  for (int x = 0; x < width; ++x) best[x] = rows[x], index[x] = 0;
  for (int c = 1; c < classes; ++c) {
    const float* r = rows + static_cast<size_t>(c) * width;
    for (int x = 0; x < width; ++x) {
      const bool take = r[x] > best[x] || (r[x] != r[x] && best[x] == best[x]);
      best[x] = take ? r[x] : best[x];
      index[x] = take ? c : index[x];
    }
  }
  for (int x = 0; x < width; ++x) labels[x] = static_cast<uint8_t>(index[x]);
}

// Calls emit(y, rows) for every output row y, `rows` holding the resized logits of that row (classes x out_w,
// class-major), computed the way PyTorch computes them (see pipeline.h). scratch: 3 rows of classes x out_w.
template <class Emit>
void resized_logit_rows(const float* logits, int classes, int lh, int lw, int out_h, int out_w,
                        std::vector<float>& scratch, Emit&& emit) {
  const size_t plane = static_cast<size_t>(lh) * lw, row = static_cast<size_t>(classes) * out_w;
  scratch.resize(3 * row);
  float* out = scratch.data() + 2 * row;
  if (out_h == lh && out_w == lw) {  // logits_to_label skips the resize
    for (int y = 0; y < out_h; ++y) {
      for (int c = 0; c < classes; ++c) {
        std::copy_n(logits + c * plane + static_cast<size_t>(y) * lw, out_w, out + static_cast<size_t>(c) * out_w);
      }
      emit(y, out);
    }
    return;
  }
  const Axis ah = linear_axis(lh, out_h), aw = linear_axis(lw, out_w);
  if (out_h + out_w <= kChannelsLastMaxSum || classes == 3) {  // PyTorch's channels-last loop
    const int vector_end = classes - classes % kTorchVectorLanes;
    for (int y = 0; y < out_h; ++y) {
      for (int x = 0; x < out_w; ++x) {
        const float w00 = ah.l0[y] * aw.l0[x], w01 = ah.l0[y] * aw.l1[x];
        const float w10 = ah.l1[y] * aw.l0[x], w11 = ah.l1[y] * aw.l1[x];
        const size_t p00 = ah.i0[y] * lw + aw.i0[x], p01 = ah.i0[y] * lw + aw.i1[x];
        const size_t p10 = ah.i1[y] * lw + aw.i0[x], p11 = ah.i1[y] * lw + aw.i1[x];
        for (int c = 0; c < classes; ++c) {
          const float* s = logits + static_cast<size_t>(c) * plane;
          out[static_cast<size_t>(c) * out_w + x] =
              c < vector_end ? blend_vector(s[p00], s[p01], s[p10], s[p11], w00, w01, w10, w11)
                             : blend_scalar(s[p00], s[p01], s[p10], s[p11], w00, w01, w10, w11);
        }
      }
      emit(y, out);
    }
    return;
  }
  // PyTorch's generic loop: y = fma(t0, lh0, t1 * lh1) over the horizontally blended source rows t0, t1; each
  // source row is blended once (two cached) and the vertical blend runs along x.
  float* rows[2] = {scratch.data(), scratch.data() + row};
  int64_t tag[2] = {-1, -1};
  auto source_row = [&](int64_t h, int64_t keep) -> const float* {
    for (int s = 0; s < 2; ++s) {
      if (tag[s] == h) return rows[s];
    }
    const int slot = tag[0] == keep ? 1 : 0;
    for (int c = 0; c < classes; ++c) {
      const float* src = logits + static_cast<size_t>(c) * plane + static_cast<size_t>(h) * lw;
      float* dst = rows[slot] + static_cast<size_t>(c) * out_w;
      for (int x = 0; x < out_w; ++x) dst[x] = std::fma(src[aw.i0[x]], aw.l0[x], src[aw.i1[x]] * aw.l1[x]);
    }
    tag[slot] = h;
    return rows[slot];
  };
  for (int y = 0; y < out_h; ++y) {
    const float* t0 = source_row(ah.i0[y], ah.i1[y]);
    const float* t1 = source_row(ah.i1[y], ah.i0[y]);
    const float wh0 = ah.l0[y], wh1 = ah.l1[y];
    for (size_t i = 0; i < row; ++i) out[i] = std::fma(t0[i], wh0, t1[i] * wh1);
    emit(y, out);
  }
}

// The generic loop's argmax, evaluating at each pixel only the classes that can win there. A resized value is a
// convex blend of the 4 source logits around the pixel (weights in [0, 1] summing to 1, up to a few ulps), so a
// class whose largest corner is below the best smallest corner of any class, by more than a rounding margin, can
// never be the maximum in that cell. The classes that remain are computed with exactly the generic loop's
// operations, so the label map is the one of the full computation. Needs finite logits (the caller checks).
void argmax_generic_pruned(const float* logits, int classes, int lh, int lw, int out_h, int out_w, uint8_t* labels) {
  const Axis ah = linear_axis(lh, out_h), aw = linear_axis(lw, out_w);
  const size_t plane = static_cast<size_t>(lh) * lw;
  // Candidates of the cell whose top-left source sample is (h, w): offsets into `candidates`, per cell.
  std::vector<uint32_t> start(plane + 1, 0);
  std::vector<uint8_t> candidates;
  candidates.reserve(plane * 4);
  std::vector<float> hi(classes);
  for (int h = 0; h < lh; ++h) {
    const int h1 = h < lh - 1 ? h + 1 : h;
    for (int w = 0; w < lw; ++w) {
      const int w1 = w < lw - 1 ? w + 1 : w;
      float best_low = -std::numeric_limits<float>::infinity(), magnitude = 0;
      for (int c = 0; c < classes; ++c) {
        const float* s = logits + static_cast<size_t>(c) * plane;
        const float a = s[h * lw + w], b = s[h * lw + w1], d = s[h1 * lw + w], e = s[h1 * lw + w1];
        const float low = std::min(std::min(a, b), std::min(d, e));
        hi[c] = std::max(std::max(a, b), std::max(d, e));
        best_low = std::max(best_low, low);
        magnitude = std::max(magnitude, std::max(std::fabs(hi[c]), std::fabs(low)));
      }
      const float threshold = best_low - (magnitude * 1e-5f + 1e-30f);
      for (int c = 0; c < classes; ++c) {
        if (hi[c] >= threshold) candidates.push_back(static_cast<uint8_t>(c));
      }
      start[static_cast<size_t>(h) * lw + w + 1] = static_cast<uint32_t>(candidates.size());
    }
  }
  // Output columns come in runs that share their source columns (c0, c1): one cell per run and row.
  std::vector<int> run_end(out_w);
  for (int x = out_w - 1; x >= 0; --x) {
    run_end[x] = (x + 1 < out_w && aw.i0[x + 1] == aw.i0[x]) ? run_end[x + 1] : x + 1;
  }
  std::vector<float> best(out_w);
  std::vector<int32_t> index(out_w);
  const float* l0 = aw.l0.data();
  const float* l1 = aw.l1.data();
  for (int y = 0; y < out_h; ++y) {
    const size_t r0 = static_cast<size_t>(ah.i0[y]) * lw, r1 = static_cast<size_t>(ah.i1[y]) * lw;
    const float wh0 = ah.l0[y], wh1 = ah.l1[y];
    for (int x = 0; x < out_w; x = run_end[x]) {
      const int end = run_end[x];
      const size_t c0 = aw.i0[x], c1 = aw.i1[x], cell = r0 + c0;
      for (uint32_t k = start[cell]; k < start[cell + 1]; ++k) {
        const int c = candidates[k];
        const float* s = logits + static_cast<size_t>(c) * plane;
        const float a = s[r0 + c0], b = s[r0 + c1], d = s[r1 + c0], e = s[r1 + c1];
        const bool first = k == start[cell];
        for (int i = x; i < end; ++i) {
          const float t0 = std::fma(a, l0[i], b * l1[i]);
          const float t1 = std::fma(d, l0[i], e * l1[i]);
          const float v = std::fma(t0, wh0, t1 * wh1);
          const bool take = first || v > best[i];  // ascending classes: the first maximum wins
          best[i] = take ? v : best[i];
          index[i] = take ? c : index[i];
        }
      }
    }
    uint8_t* out = labels + static_cast<size_t>(y) * out_w;
    for (int x = 0; x < out_w; ++x) out[x] = static_cast<uint8_t>(index[x]);
  }
}

}  // namespace

Axis linear_axis(int64_t in, int64_t out) {
  Axis a;
  a.i0.resize(out), a.i1.resize(out), a.l0.resize(out), a.l1.resize(out);
  if (in == out) {  // compute_source_index_and_lambda: "scale_factor = 1, simply copy"
    for (int64_t o = 0; o < out; ++o) a.i0[o] = a.i1[o] = o, a.l0[o] = 1.0f, a.l1[o] = 0.0f;
    return a;
  }
  const float scale = static_cast<float>(in) / static_cast<float>(out);
  for (int64_t o = 0; o < out; ++o) {
    float s = std::fma(scale, static_cast<float>(o) + 0.5f, -0.5f);
    if (s < 0.0f) s = 0.0f;
    const int64_t i0 = std::min(static_cast<int64_t>(std::floor(s)), in - 1);
    const float l1 = std::min(std::max(s - static_cast<float>(i0), 0.0f), 1.0f);
    a.i0[o] = i0;
    a.i1[o] = i0 + (i0 < in - 1 ? 1 : 0);
    a.l1[o] = l1;
    a.l0[o] = 1.0f - l1;
  }
  return a;
}

void Nv21Frame::pixel(int y, int x, float rgb[3]) const {
  const int luma = data[static_cast<size_t>(y) * stride + x];
  const uint8_t* vu = data + static_cast<size_t>(stride) * height + static_cast<size_t>(y / 2) * stride + (x & ~1);
  const int v = vu[0] - 128, u = vu[1] - 128;
  const int base = luma * 65536 + 32768;
  rgb[0] = clamp_u8((base + 91881 * v) >> 16);
  rgb[1] = clamp_u8((base - 22554 * u - 46802 * v) >> 16);
  rgb[2] = clamp_u8((base + 116130 * u) >> 16);
}

template <class Frame>
void preprocess(const Frame& frame, int out_h, int out_w, const float mean[3], const float std[3], float* out) {
  const size_t plane = static_cast<size_t>(out_h) * out_w;
  float a[3], b[3], c[3], d[3];
  if (frame.height == out_h && frame.width == out_w) {  // Preprocess skips the resize
    for (int y = 0; y < out_h; ++y) {
      for (int x = 0; x < out_w; ++x) {
        frame.pixel(y, x, a);
        for (int ch = 0; ch < 3; ++ch) out[ch * plane + y * out_w + x] = (a[ch] - mean[ch]) / std[ch];
      }
    }
    return;
  }
  // 3 channels: PyTorch's channels-last loop, all in its scalar tail (see pipeline.h).
  const Axis ah = linear_axis(frame.height, out_h), aw = linear_axis(frame.width, out_w);
  for (int y = 0; y < out_h; ++y) {
    for (int x = 0; x < out_w; ++x) {
      frame.pixel(static_cast<int>(ah.i0[y]), static_cast<int>(aw.i0[x]), a);
      frame.pixel(static_cast<int>(ah.i0[y]), static_cast<int>(aw.i1[x]), b);
      frame.pixel(static_cast<int>(ah.i1[y]), static_cast<int>(aw.i0[x]), c);
      frame.pixel(static_cast<int>(ah.i1[y]), static_cast<int>(aw.i1[x]), d);
      const float w00 = ah.l0[y] * aw.l0[x], w01 = ah.l0[y] * aw.l1[x];
      const float w10 = ah.l1[y] * aw.l0[x], w11 = ah.l1[y] * aw.l1[x];
      for (int ch = 0; ch < 3; ++ch) {
        const float v = blend_scalar(a[ch], b[ch], c[ch], d[ch], w00, w01, w10, w11);
        out[ch * plane + static_cast<size_t>(y) * out_w + x] = (v - mean[ch]) / std[ch];
      }
    }
  }
}

template void preprocess<RgbaFrame>(const RgbaFrame&, int, int, const float*, const float*, float*);
template void preprocess<Nv21Frame>(const Nv21Frame&, int, int, const float*, const float*, float*);

void logits_to_labels(const float* logits, int classes, int lh, int lw, int out_h, int out_w, uint8_t* labels,
                      std::vector<float>& scratch) {
  const bool generic_loop = !(out_h == lh && out_w == lw) && out_h + out_w > kChannelsLastMaxSum && classes != 3;
  const size_t count = static_cast<size_t>(classes) * lh * lw;
  if (generic_loop && std::all_of(logits, logits + count, [](float v) { return std::isfinite(v); })) {
    argmax_generic_pruned(logits, classes, lh, lw, out_h, out_w, labels);
    return;
  }
  std::vector<float> best(out_w);
  std::vector<int32_t> index(out_w);
  resized_logit_rows(logits, classes, lh, lw, out_h, out_w, scratch, [&](int y, const float* rows) {
    argmax_row(rows, classes, out_w, best.data(), index.data(), labels + static_cast<size_t>(y) * out_w);
  });
}

void resize_logits(const float* logits, int classes, int lh, int lw, int out_h, int out_w, float* out) {
  std::vector<float> scratch;
  const size_t plane = static_cast<size_t>(out_h) * out_w;
  resized_logit_rows(logits, classes, lh, lw, out_h, out_w, scratch, [&](int y, const float* rows) {
    for (int c = 0; c < classes; ++c) {
      std::copy_n(rows + static_cast<size_t>(c) * out_w, out_w, out + c * plane + static_cast<size_t>(y) * out_w);
    }
  });
}

void colorize(const uint8_t* labels, size_t count, const std::vector<std::array<uint8_t, 3>>& palette,
              uint8_t* rgba) {
  uint32_t colours[256] = {};  // each entry the 4 RGBA bytes in memory order, copied per pixel
  for (size_t c = 0; c < palette.size() && c < 256; ++c) {
    const uint8_t bytes[4] = {palette[c][0], palette[c][1], palette[c][2], 255};
    std::memcpy(&colours[c], bytes, 4);
  }
  for (size_t i = 0; i < count; ++i) std::memcpy(rgba + 4 * i, &colours[labels[i]], 4);
}

}  // namespace mvdseg
