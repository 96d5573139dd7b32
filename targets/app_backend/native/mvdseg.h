/* libmvdseg: open a mobilevit-deploy bundle, turn camera frames into label maps.
 *
 * Why a library: an app should not reimplement resizing, normalisation, runtime calls and post-processing per
 * model. The library reads the bundle's metadata.json and reproduces the Python pipeline
 * (mobilevit_deploy.data.preprocess: bilinear resize, (pixel - mean) / std, bilinear logits upsampling,
 * argmax) bit for bit, so an app's label map equals `mvd eval`'s for the same frame.
 *
 * Threads: a handle is used by one thread at a time; open one handle per thread to segment in parallel.
 * Errors: every function returns an mvd_status; nothing aborts. mvd_open writes its message into `err`;
 * the other calls keep theirs for mvd_last_error(handle).
 */
#ifndef MVDSEG_H
#define MVDSEG_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define MVD_API __attribute__((visibility("default")))
#else
#define MVD_API
#endif

/* Frames larger than this on either side are refused (downscale first: camera previews are far smaller). */
#define MVD_MAX_FRAME_SIDE 4096

typedef enum mvd_status {
  MVD_OK = 0,
  MVD_ERR_INVALID_ARGUMENT = 1, /* a NULL pointer, a stride shorter than a row, bad options */
  MVD_ERR_FRAME_SIZE = 2,       /* empty, larger than MVD_MAX_FRAME_SIDE, or odd where NV21 needs even */
  MVD_ERR_BUNDLE_NOT_FOUND = 3, /* no such folder, or no metadata.json in it */
  MVD_ERR_BUNDLE_INVALID = 4,   /* metadata.json unreadable, of another format, or missing fields */
  MVD_ERR_BUNDLE_MODIFIED = 5,  /* the artifact is missing or does not match its sha256 */
  MVD_ERR_BUNDLE_MISMATCH = 6,  /* another runtime/arch/task, or metadata that disagrees with the artifact */
  MVD_ERR_MODEL_LOAD = 7,       /* the runtime could not load the artifact */
  MVD_ERR_INFERENCE = 8,        /* the runtime failed while running */
  MVD_ERR_OUT_OF_MEMORY = 9,
  MVD_ERR_INTERNAL = 10 /* a bug in libmvdseg: please report the message */
} mvd_status;

typedef struct mvd_segmenter mvd_segmenter;

/* Wall-clock milliseconds of one segment call, split where the work changes hands. */
typedef struct mvd_timings {
  double preprocess_ms;  /* frame -> model input (colour conversion, resize, normalise) */
  double inference_ms;   /* the runtime's forward pass */
  double postprocess_ms; /* logits -> label map at frame size (+ colours when asked) */
} mvd_timings;

typedef struct mvd_options {
  int num_threads;      /* runtime threads; 0 keeps the runtime's default. ExecuTorch's pool is per process:
                           the first handle that sets it wins. */
  int verify_checksums; /* 1 (default): check the artifact's sha256 against metadata.json before loading */
} mvd_options;

MVD_API void mvd_default_options(mvd_options* options);

/* Opens the bundle folder (metadata.json + the artifact). On failure *out is NULL and err holds the message. */
MVD_API int mvd_open(const char* bundle_dir, mvd_segmenter** out, char* err, size_t errlen);
MVD_API int mvd_open_with_options(const char* bundle_dir, const mvd_options* options, mvd_segmenter** out, char* err,
                                  size_t errlen);

/* Segments one RGBA8888 frame (`stride` bytes per row, >= 4 * width; alpha ignored).
 * out_labels: width * height class ids, row-major, no padding. out_rgba: NULL, or width * height * 4 bytes that
 * receive the palette colour of each pixel (alpha 255). timings: NULL or filled. */
MVD_API int mvd_segment_rgba(mvd_segmenter* handle, const uint8_t* rgba, int width, int height, int stride,
                             uint8_t* out_labels, uint8_t* out_rgba, mvd_timings* timings);

/* Same for an NV21 frame (Android camera preview): a Y plane of `stride` bytes per row, then the interleaved
 * V/U plane at nv21 + stride * height. Width and height must be even. Colours: BT.601 full range (JFIF). */
MVD_API int mvd_segment_nv21(mvd_segmenter* handle, const uint8_t* nv21, int width, int height, int stride,
                             uint8_t* out_labels, uint8_t* out_rgba, mvd_timings* timings);

/* The message of the handle's last failure ("" after a success); with a NULL handle, this thread's last one. */
MVD_API const char* mvd_last_error(const mvd_segmenter* handle);
MVD_API const char* mvd_status_name(int status);
MVD_API void mvd_close(mvd_segmenter* handle);

/* What the bundle holds (valid until mvd_close). */
MVD_API int mvd_num_classes(const mvd_segmenter* handle);
MVD_API const char* mvd_class_name(const mvd_segmenter* handle, int index);  /* NULL when out of range */
MVD_API int mvd_input_width(const mvd_segmenter* handle);
MVD_API int mvd_input_height(const mvd_segmenter* handle);
MVD_API const char* mvd_runtime(void); /* "executorch" or "tvm": the runtime this build links */

/* The two halves of mvd_segment_rgba around the runtime, exported so tests can check each against PyTorch bit
 * for bit. Errors: see mvd_last_error(NULL). */
/* RGBA frame -> 1 x 3 x input_height x input_width float32 model input (NCHW), resized and normalised like
 * mobilevit_deploy.data.preprocess.Preprocess((input_height, input_width), mean, std). */
MVD_API int mvd_preprocess_rgba(const uint8_t* rgba, int width, int height, int stride, int input_height,
                                int input_width, const float mean[3], const float std[3], float* out_input);
/* Logits (1 x classes x lh x lw float32) -> argmax label map of out_h x out_w, resized like
 * mobilevit_deploy.data.preprocess.logits_to_label. Needs classes <= 256. */
MVD_API int mvd_logits_to_labels(const float* logits, int classes, int lh, int lw, int out_h, int out_w,
                                 uint8_t* out_labels);
/* The resized logits (1 x classes x out_h x out_w float32) that mvd_logits_to_labels takes the argmax of. */
MVD_API int mvd_resize_logits(const float* logits, int classes, int lh, int lw, int out_h, int out_w,
                              float* out_logits);

#ifdef __cplusplus
}
#endif

#endif /* MVDSEG_H */
