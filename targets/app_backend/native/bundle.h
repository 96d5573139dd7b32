// What libmvdseg needs from a bundle's metadata.json, read and checked once at open: the same checks as
// mobilevit_deploy/bundle/reader.py (format, required sections, the artifact's size and sha256), plus the ones an
// app needs (the runtime and arch this library was built for, a segmentation task, a preprocessing it reproduces).
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

namespace mvdseg {

struct BundleInfo {
  std::string root;
  std::string model;
  std::string runtime;   // "executorch" | "tvm"
  std::string arch;      // what the bundle was compiled for
  std::string artifact;  // path of the model file
  std::vector<int64_t> input_shape;   // 1 x 3 x H x W
  int input_height = 0, input_width = 0;
  float mean[3] = {0, 0, 0};  // float32, as torch.tensor(mean) holds them
  float std[3] = {1, 1, 1};
  std::vector<int64_t> output_shape;  // 1 x classes x h x w
  int num_classes = 0;
  std::vector<std::string> class_names;
  std::vector<std::array<uint8_t, 3>> palette;
};

// Reads `dir`/metadata.json. Throws SegError (BUNDLE_NOT_FOUND, BUNDLE_INVALID, BUNDLE_MODIFIED, BUNDLE_MISMATCH)
// naming the problem and the fix. `runtime` and `arch` are this library's.
BundleInfo read_bundle(const std::string& dir, bool verify_checksums, const std::string& runtime,
                       const std::string& arch);

std::string shape_text(const std::vector<int64_t>& shape);  // "1x3x64x64"

}  // namespace mvdseg
