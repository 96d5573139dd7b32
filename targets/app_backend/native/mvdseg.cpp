// The C API boundary: argument checks, the per-frame pipeline, and the one place where every exception becomes a
// status code and a message (nothing escapes into a JNI or C caller).
#include "mvdseg.h"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <memory>
#include <new>
#include <string>
#include <vector>

#include "bundle.h"
#include "engine.h"
#include "errors.h"
#include "pipeline.h"

#ifndef MVD_APP_ARCH
#define MVD_APP_ARCH "host"
#endif

struct mvd_segmenter {
  mvdseg::BundleInfo bundle;
  std::unique_ptr<mvdseg::Engine> engine;
  std::vector<float> scratch;
  std::string last_error;
};

namespace {

using mvdseg::SegError;

thread_local std::string g_thread_error;  // messages of calls made without a usable handle

double now_ms() {
  using clock = std::chrono::steady_clock;
  return std::chrono::duration<double, std::milli>(clock::now().time_since_epoch()).count();
}

void copy_message(const std::string& message, char* err, size_t errlen) {
  if (err == nullptr || errlen == 0) return;
  size_t n = std::min(message.size(), errlen - 1);
  std::memcpy(err, message.data(), n);
  err[n] = '\0';
}

// Runs `body`; any exception becomes a status, with its message stored in `message`.
template <class F>
int guarded(std::string& message, F&& body) {
  try {
    body();
    message.clear();
    return MVD_OK;
  } catch (const SegError& e) {
    message = e.what();
    return e.status;
  } catch (const mvd::RunnerError& e) {
    message = e.what();
    return e.code == 3 ? MVD_ERR_MODEL_LOAD : MVD_ERR_INFERENCE;
  } catch (const std::bad_alloc&) {
    message = "out of memory";
    return MVD_ERR_OUT_OF_MEMORY;
  } catch (const std::exception& e) {
    message = std::string("internal error in libmvdseg: ") + e.what();
    return MVD_ERR_INTERNAL;
  } catch (...) {
    message = "internal error in libmvdseg: unknown exception";
    return MVD_ERR_INTERNAL;
  }
}

std::string size_text(int width, int height) { return std::to_string(width) + "x" + std::to_string(height); }

void check_frame(const void* frame, int width, int height, int stride, int min_stride, const uint8_t* labels,
                 bool even) {
  if (frame == nullptr) throw SegError(MVD_ERR_INVALID_ARGUMENT, "the frame pointer is NULL");
  if (labels == nullptr) throw SegError(MVD_ERR_INVALID_ARGUMENT, "out_labels is NULL; pass width*height bytes");
  if (width < 1 || height < 1) {
    throw SegError(MVD_ERR_FRAME_SIZE, "frame " + size_text(width, height) + " is empty; pass its real size");
  }
  if (width > MVD_MAX_FRAME_SIDE || height > MVD_MAX_FRAME_SIDE) {
    throw SegError(MVD_ERR_FRAME_SIZE, "frame " + size_text(width, height) + " is larger than " +
                                           std::to_string(MVD_MAX_FRAME_SIDE) + " on a side; downscale it first");
  }
  if (even && (width % 2 != 0 || height % 2 != 0)) {
    throw SegError(MVD_ERR_FRAME_SIZE, "NV21 frame " + size_text(width, height) +
                                           " has an odd side; NV21 subsamples colour 2x2, so both sides must be even");
  }
  if (stride < min_stride) {
    throw SegError(MVD_ERR_INVALID_ARGUMENT, "stride " + std::to_string(stride) + " is shorter than a row of the " +
                                                 size_text(width, height) + " frame (" + std::to_string(min_stride) +
                                                 " bytes); pass the buffer's bytes per row");
  }
}

mvd_segmenter& usable(mvd_segmenter* handle) {
  if (handle == nullptr) throw SegError(MVD_ERR_INVALID_ARGUMENT, "the segmenter handle is NULL; call mvd_open first");
  return *handle;
}

template <class Frame>
void segment(mvd_segmenter& h, const Frame& frame, uint8_t* labels, uint8_t* rgba, mvd_timings* timings) {
  const auto& b = h.bundle;
  double t0 = now_ms();
  mvdseg::preprocess(frame, b.input_height, b.input_width, b.mean, b.std, h.engine->input(b.input_shape));
  double t1 = now_ms();
  mvd::SessionOutput out = h.engine->run();
  double t2 = now_ms();
  if (out.shape != b.output_shape) {
    throw SegError(MVD_ERR_BUNDLE_MISMATCH, b.artifact + " returned " + mvdseg::shape_text(out.shape) +
                                                " logits but metadata.json says " +
                                                mvdseg::shape_text(b.output_shape) + "; rebuild the bundle");
  }
  mvdseg::logits_to_labels(out.data, b.num_classes, static_cast<int>(b.output_shape[2]),
                           static_cast<int>(b.output_shape[3]), frame.height, frame.width, labels, h.scratch);
  if (rgba != nullptr) {
    mvdseg::colorize(labels, static_cast<size_t>(frame.width) * frame.height, b.palette, rgba);
  }
  double t3 = now_ms();
  if (timings != nullptr) *timings = {t1 - t0, t2 - t1, t3 - t2};
}

void check_logits(const float* logits, const void* out, int classes, int lh, int lw, int out_h, int out_w) {
  if (logits == nullptr || out == nullptr) throw SegError(MVD_ERR_INVALID_ARGUMENT, "a pointer is NULL");
  if (classes < 1 || classes > 256 || lh < 1 || lw < 1) {
    throw SegError(MVD_ERR_INVALID_ARGUMENT, "logits need 1..256 classes and a non-empty map");
  }
  uint8_t unused = 0;
  check_frame(logits, out_w, out_h, out_w, out_w, &unused, false);
}

}  // namespace

extern "C" {

void mvd_default_options(mvd_options* options) {
  if (options != nullptr) *options = {0, 1};
}

int mvd_open(const char* bundle_dir, mvd_segmenter** out, char* err, size_t errlen) {
  return mvd_open_with_options(bundle_dir, nullptr, out, err, errlen);
}

int mvd_open_with_options(const char* bundle_dir, const mvd_options* options, mvd_segmenter** out, char* err,
                          size_t errlen) {
  if (out != nullptr) *out = nullptr;
  int status = guarded(g_thread_error, [&]() {
    if (out == nullptr) throw SegError(MVD_ERR_INVALID_ARGUMENT, "out is NULL; pass the address of a handle");
    if (bundle_dir == nullptr) throw SegError(MVD_ERR_INVALID_ARGUMENT, "bundle_dir is NULL");
    mvd_options opts;
    mvd_default_options(&opts);
    if (options != nullptr) opts = *options;
    if (opts.num_threads < 0 || opts.num_threads > 256) {
      throw SegError(MVD_ERR_INVALID_ARGUMENT, "num_threads " + std::to_string(opts.num_threads) +
                                                   " is out of range; use 0 (runtime default) to 256");
    }
    auto handle = std::make_unique<mvd_segmenter>();
    handle->bundle = mvdseg::read_bundle(bundle_dir, opts.verify_checksums != 0, mvdseg::engine_runtime(),
                                         MVD_APP_ARCH);
    handle->engine = mvdseg::open_engine(handle->bundle.artifact, opts.num_threads);
    std::vector<int64_t> declared = handle->engine->declared_input_shape();
    if (!declared.empty() && declared != handle->bundle.input_shape) {
      throw SegError(MVD_ERR_BUNDLE_MISMATCH, handle->bundle.root + "/metadata.json says the input is " +
                                                  mvdseg::shape_text(handle->bundle.input_shape) + " but " +
                                                  handle->bundle.artifact + " expects " +
                                                  mvdseg::shape_text(declared) + "; rebuild the bundle");
    }
    *out = handle.release();
  });
  copy_message(g_thread_error, err, errlen);
  return status;
}

int mvd_segment_rgba(mvd_segmenter* handle, const uint8_t* rgba, int width, int height, int stride,
                     uint8_t* out_labels, uint8_t* out_rgba, mvd_timings* timings) {
  std::string& message = handle ? handle->last_error : g_thread_error;
  return guarded(message, [&]() {
    mvd_segmenter& h = usable(handle);
    check_frame(rgba, width, height, stride, 4 * width, out_labels, false);
    segment(h, mvdseg::RgbaFrame{rgba, width, height, stride}, out_labels, out_rgba, timings);
  });
}

int mvd_segment_nv21(mvd_segmenter* handle, const uint8_t* nv21, int width, int height, int stride,
                     uint8_t* out_labels, uint8_t* out_rgba, mvd_timings* timings) {
  std::string& message = handle ? handle->last_error : g_thread_error;
  return guarded(message, [&]() {
    mvd_segmenter& h = usable(handle);
    check_frame(nv21, width, height, stride, width, out_labels, true);
    segment(h, mvdseg::Nv21Frame{nv21, width, height, stride}, out_labels, out_rgba, timings);
  });
}

int mvd_preprocess_rgba(const uint8_t* rgba, int width, int height, int stride, int input_height, int input_width,
                        const float mean[3], const float std[3], float* out_input) {
  return guarded(g_thread_error, [&]() {
    if (out_input == nullptr || mean == nullptr || std == nullptr) {
      throw SegError(MVD_ERR_INVALID_ARGUMENT, "out_input, mean and std must not be NULL");
    }
    if (input_height < 1 || input_width < 1 || input_height > MVD_MAX_FRAME_SIDE || input_width > MVD_MAX_FRAME_SIDE) {
      throw SegError(MVD_ERR_INVALID_ARGUMENT, "the model input size must be 1..4096 on a side");
    }
    uint8_t unused = 0;
    check_frame(rgba, width, height, stride, 4 * width, &unused, false);
    mvdseg::preprocess(mvdseg::RgbaFrame{rgba, width, height, stride}, input_height, input_width, mean, std,
                       out_input);
  });
}

int mvd_logits_to_labels(const float* logits, int classes, int lh, int lw, int out_h, int out_w,
                         uint8_t* out_labels) {
  return guarded(g_thread_error, [&]() {
    check_logits(logits, out_labels, classes, lh, lw, out_h, out_w);
    std::vector<float> scratch;
    mvdseg::logits_to_labels(logits, classes, lh, lw, out_h, out_w, out_labels, scratch);
  });
}

int mvd_resize_logits(const float* logits, int classes, int lh, int lw, int out_h, int out_w, float* out_logits) {
  return guarded(g_thread_error, [&]() {
    check_logits(logits, out_logits, classes, lh, lw, out_h, out_w);
    mvdseg::resize_logits(logits, classes, lh, lw, out_h, out_w, out_logits);
  });
}

const char* mvd_last_error(const mvd_segmenter* handle) {
  return handle ? handle->last_error.c_str() : g_thread_error.c_str();
}

const char* mvd_status_name(int status) {
  switch (status) {
    case MVD_OK: return "MVD_OK";
    case MVD_ERR_INVALID_ARGUMENT: return "MVD_ERR_INVALID_ARGUMENT";
    case MVD_ERR_FRAME_SIZE: return "MVD_ERR_FRAME_SIZE";
    case MVD_ERR_BUNDLE_NOT_FOUND: return "MVD_ERR_BUNDLE_NOT_FOUND";
    case MVD_ERR_BUNDLE_INVALID: return "MVD_ERR_BUNDLE_INVALID";
    case MVD_ERR_BUNDLE_MODIFIED: return "MVD_ERR_BUNDLE_MODIFIED";
    case MVD_ERR_BUNDLE_MISMATCH: return "MVD_ERR_BUNDLE_MISMATCH";
    case MVD_ERR_MODEL_LOAD: return "MVD_ERR_MODEL_LOAD";
    case MVD_ERR_INFERENCE: return "MVD_ERR_INFERENCE";
    case MVD_ERR_OUT_OF_MEMORY: return "MVD_ERR_OUT_OF_MEMORY";
    case MVD_ERR_INTERNAL: return "MVD_ERR_INTERNAL";
    default: return "MVD_ERR_UNKNOWN";
  }
}

void mvd_close(mvd_segmenter* handle) { delete handle; }

int mvd_num_classes(const mvd_segmenter* handle) { return handle ? handle->bundle.num_classes : 0; }

const char* mvd_class_name(const mvd_segmenter* handle, int index) {
  if (handle == nullptr || index < 0 || index >= handle->bundle.num_classes) return nullptr;
  return handle->bundle.class_names[index].c_str();
}

int mvd_input_width(const mvd_segmenter* handle) { return handle ? handle->bundle.input_width : 0; }

int mvd_input_height(const mvd_segmenter* handle) { return handle ? handle->bundle.input_height : 0; }

const char* mvd_runtime(void) { return mvdseg::engine_runtime(); }

}  // extern "C"
