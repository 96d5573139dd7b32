/* mvdseg_driver: the smallest C program over libmvdseg, to run a bundle on a device or under qemu without Java.
 *
 *   mvdseg_driver BUNDLE FRAME WIDTH HEIGHT OUT_LABELS [--nv21] [--threads N] [--colors OUT_RGBA]
 *
 * FRAME holds raw RGBA8888 (WIDTH*HEIGHT*4 bytes) or, with --nv21, NV21 (WIDTH*HEIGHT*3/2 bytes), rows packed.
 * OUT_LABELS receives WIDTH*HEIGHT class ids (one byte each). Prints one JSON line (classes and timings);
 * on failure prints "mvdseg_driver: <STATUS>: <message>" on stderr and exits with the status code.
 * Written in C (compiled with -x c) so it also proves mvdseg.h is plain C.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mvdseg.h"

static int fail(int status, const char* message) {
  fprintf(stderr, "mvdseg_driver: %s: %s\n", mvd_status_name(status), message);
  return status;
}

static unsigned char* read_file(const char* path, size_t expected, char* err, size_t errlen) {
  FILE* f = fopen(path, "rb");
  if (f == NULL) {
    snprintf(err, errlen, "cannot open the frame file %s", path);
    return NULL;
  }
  unsigned char* data = (unsigned char*)malloc(expected + 1);
  size_t got = data ? fread(data, 1, expected + 1, f) : 0;
  fclose(f);
  if (data == NULL || got != expected) {
    snprintf(err, errlen, "%s holds %zu bytes, expected %zu for the given size and format", path, got, expected);
    free(data);
    return NULL;
  }
  return data;
}

static int write_file(const char* path, const unsigned char* data, size_t size) {
  FILE* f = fopen(path, "wb");
  if (f == NULL) return 0;
  size_t put = fwrite(data, 1, size, f);
  return fclose(f) == 0 && put == size;
}

int main(int argc, char** argv) {
  if (argc < 6) {
    return fail(MVD_ERR_INVALID_ARGUMENT,
                "usage: mvdseg_driver BUNDLE FRAME WIDTH HEIGHT OUT_LABELS [--nv21] [--threads N] "
                "[--colors OUT_RGBA]");
  }
  const char* colors_path = NULL;
  int nv21 = 0;
  mvd_options options;
  mvd_default_options(&options);
  for (int i = 6; i < argc; ++i) {
    if (strcmp(argv[i], "--nv21") == 0) nv21 = 1;
    else if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc) options.num_threads = atoi(argv[++i]);
    else if (strcmp(argv[i], "--colors") == 0 && i + 1 < argc) colors_path = argv[++i];
    else return fail(MVD_ERR_INVALID_ARGUMENT, "unknown or incomplete option");
  }
  int width = atoi(argv[3]), height = atoi(argv[4]);
  if (width < 1 || height < 1 || width > MVD_MAX_FRAME_SIDE || height > MVD_MAX_FRAME_SIDE) {
    return fail(MVD_ERR_FRAME_SIZE, "WIDTH and HEIGHT must be 1..4096");
  }
  size_t pixels = (size_t)width * (size_t)height;
  char err[512];
  unsigned char* frame = read_file(argv[2], nv21 ? pixels * 3 / 2 : pixels * 4, err, sizeof err);
  if (frame == NULL) return fail(MVD_ERR_INVALID_ARGUMENT, err);

  mvd_segmenter* seg = NULL;
  int status = mvd_open_with_options(argv[1], &options, &seg, err, sizeof err);
  if (status != MVD_OK) {
    free(frame);
    return fail(status, err);
  }
  unsigned char* labels = (unsigned char*)malloc(pixels);
  unsigned char* colors = colors_path ? (unsigned char*)malloc(pixels * 4) : NULL;
  mvd_timings t = {0, 0, 0};
  if (labels == NULL || (colors_path && colors == NULL)) {
    status = MVD_ERR_OUT_OF_MEMORY;
  } else if (nv21) {
    status = mvd_segment_nv21(seg, frame, width, height, width, labels, colors, &t);
  } else {
    status = mvd_segment_rgba(seg, frame, width, height, width * 4, labels, colors, &t);
  }
  if (status != MVD_OK) {
    snprintf(err, sizeof err, "%s", status == MVD_ERR_OUT_OF_MEMORY ? "out of memory" : mvd_last_error(seg));
  } else if (!write_file(argv[5], labels, pixels) || (colors && !write_file(colors_path, colors, pixels * 4))) {
    status = MVD_ERR_INVALID_ARGUMENT;
    snprintf(err, sizeof err, "cannot write %s", argv[5]);
  } else {
    printf("{\"runtime\": \"%s\", \"classes\": %d, \"width\": %d, \"height\": %d, \"preprocess_ms\": %.3f, "
           "\"inference_ms\": %.3f, \"postprocess_ms\": %.3f}\n",
           mvd_runtime(), mvd_num_classes(seg), width, height, t.preprocess_ms, t.inference_ms, t.postprocess_ms);
  }
  mvd_close(seg);
  free(frame);
  free(labels);
  free(colors);
  return status == MVD_OK ? 0 : fail(status, err);
}
