#include "bundle.h"

#include <sys/stat.h>

#include <cmath>
#include <fstream>
#include <sstream>

#include "errors.h"
#include "json.h"
#include "sha256.h"

namespace mvdseg {
namespace {

constexpr const char* kFormat = "mobilevit-deploy bundle";
constexpr int kFormatVersion = 1;
constexpr const char* kRebuild = "rebuild the bundle with `mvd compile`";

[[noreturn]] void invalid(const std::string& meta, const std::string& what) {
  throw SegError(MVD_ERR_BUNDLE_INVALID, meta + " " + what + "; " + kRebuild);
}

// The JSON value at a dotted path ("input.resize.height"), or an error naming the missing field.
const Json& field(const Json& root, const std::string& path, const std::string& meta) {
  const Json* node = &root;
  size_t start = 0;
  while (start <= path.size()) {
    size_t dot = path.find('.', start);
    std::string key = path.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    node = node->find(key);
    if (node == nullptr) invalid(meta, "lacks the field " + path);
    if (dot == std::string::npos) break;
    start = dot + 1;
  }
  return *node;
}

const std::string& text(const Json& root, const std::string& path, const std::string& meta) {
  const Json& v = field(root, path, meta);
  if (!v.is_string()) invalid(meta, "has a non-string " + path);
  return v.string();
}

int64_t integer(const Json& v, const std::string& path, const std::string& meta) {
  if (!v.is_number() || v.number() != std::floor(v.number()) || std::fabs(v.number()) > 1e15) {
    invalid(meta, "has a non-integer " + path);
  }
  return static_cast<int64_t>(v.number());
}

std::vector<int64_t> shape(const Json& root, const std::string& path, const std::string& meta, size_t rank) {
  const Json& v = field(root, path, meta);
  if (!v.is_array() || v.items().size() != rank) {
    invalid(meta, "has a " + path + " that is not a list of " + std::to_string(rank) + " sizes");
  }
  std::vector<int64_t> out;
  for (const Json& d : v.items()) {
    int64_t n = integer(d, path, meta);
    if (n < 1) invalid(meta, "has a non-positive size in " + path);
    out.push_back(n);
  }
  return out;
}

void three_floats(const Json& root, const std::string& path, const std::string& meta, float out[3], bool positive) {
  const Json& v = field(root, path, meta);
  if (!v.is_array() || v.items().size() != 3) invalid(meta, "has a " + path + " that is not 3 numbers");
  for (int i = 0; i < 3; ++i) {
    const Json& x = v.items()[i];
    if (!x.is_number() || (positive && !(x.number() > 0))) {
      invalid(meta, "has a bad value in " + path + (positive ? " (numbers > 0 expected)" : ""));
    }
    out[i] = static_cast<float>(x.number());  // double -> float32 rounding, as torch.tensor([...]) does
  }
}

void expect(const Json& root, const std::string& path, const std::string& meta, const std::string& wanted) {
  if (text(root, path, meta) != wanted) {
    throw SegError(MVD_ERR_BUNDLE_MISMATCH, meta + " says " + path + " = '" + text(root, path, meta) +
                                                "'; libmvdseg reproduces only '" + wanted + "'");
  }
}

bool is_dir(const std::string& path) {
  struct stat st{};
  return stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

long long file_size(const std::string& path) {
  struct stat st{};
  if (stat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) return -1;
  return static_cast<long long>(st.st_size);
}

void check_artifact(const BundleInfo& b, const Json& meta_json, const std::string& rel, const std::string& meta,
                    bool verify_checksums) {
  long long size = file_size(b.artifact);
  if (size < 0) {
    throw SegError(MVD_ERR_BUNDLE_MODIFIED, "bundle " + b.root + " is incomplete: " + rel +
                                                " is missing; copy the whole bundle folder (or " + kRebuild + ")");
  }
  const Json* files = meta_json.find("files");
  const Json* entry = files ? files->find(rel) : nullptr;
  if (entry == nullptr) invalid(meta, "does not list the artifact " + rel + " under files");
  const Json* bytes = entry->find("bytes");
  const Json* digest = entry->find("sha256");
  if (bytes == nullptr || digest == nullptr || !digest->is_string()) {
    invalid(meta, "lacks the size or sha256 of " + rel);
  }
  std::string modified = "bundle " + b.root + " was modified: " + rel +
                         " does not match its checksum; rebuild it with `mvd compile`, or restore the original file";
  if (integer(*bytes, "files." + rel + ".bytes", meta) != size) throw SegError(MVD_ERR_BUNDLE_MODIFIED, modified);
  if (verify_checksums && sha256_file(b.artifact) != digest->string()) {
    throw SegError(MVD_ERR_BUNDLE_MODIFIED, modified);
  }
}

void read_classes(BundleInfo& b, const Json& root, const std::string& meta) {
  const Json& names = field(root, "classes.names", meta);
  const Json& palette = field(root, "classes.palette", meta);
  if (!names.is_array() || !palette.is_array()) invalid(meta, "has classes.names/palette that are not lists");
  if (static_cast<int>(names.items().size()) != b.num_classes ||
      static_cast<int>(palette.items().size()) != b.num_classes) {
    invalid(meta, "has " + std::to_string(names.items().size()) + " class names and " +
                      std::to_string(palette.items().size()) + " colours for " + std::to_string(b.num_classes) +
                      " output classes");
  }
  for (const Json& n : names.items()) {
    if (!n.is_string()) invalid(meta, "has a non-string class name");
    b.class_names.push_back(n.string());
  }
  for (const Json& c : palette.items()) {
    if (!c.is_array() || c.items().size() != 3) invalid(meta, "has a palette entry that is not [r, g, b]");
    std::array<uint8_t, 3> rgb{};
    for (int i = 0; i < 3; ++i) {
      int64_t v = integer(c.items()[i], "classes.palette", meta);
      if (v < 0 || v > 255) invalid(meta, "has a palette value outside 0..255");
      rgb[i] = static_cast<uint8_t>(v);
    }
    b.palette.push_back(rgb);
  }
}

}  // namespace

std::string shape_text(const std::vector<int64_t>& shape) {
  std::string s;
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? "x" : "") + std::to_string(shape[i]);
  return s;
}

BundleInfo read_bundle(const std::string& dir, bool verify_checksums, const std::string& runtime,
                       const std::string& arch) {
  BundleInfo b;
  b.root = dir;
  while (b.root.size() > 1 && b.root.back() == '/') b.root.pop_back();
  if (!is_dir(b.root)) {
    throw SegError(MVD_ERR_BUNDLE_NOT_FOUND,
                   "bundle folder not found: " + b.root + "; pass the folder `mvd compile -o` wrote");
  }
  const std::string meta = b.root + "/metadata.json";
  std::ifstream in(meta, std::ios::binary);
  if (!in) {
    throw SegError(MVD_ERR_BUNDLE_NOT_FOUND, b.root + " is not a bundle: it has no metadata.json; " + kRebuild);
  }
  std::stringstream buffer;
  buffer << in.rdbuf();
  Json root;
  try {
    root = Json::parse(buffer.str());
  } catch (const JsonError& e) {
    invalid(meta, std::string("is not valid JSON (") + e.what() + ")");
  }
  if (!root.is_object()) invalid(meta, "is not a JSON object");
  const Json* format = root.find("format");
  const Json* version = root.find("format_version");
  if (!format || !format->is_string() || format->string() != kFormat || !version || !version->is_number() ||
      version->number() != kFormatVersion) {
    invalid(meta, "is not a mobilevit-deploy bundle of format version " + std::to_string(kFormatVersion));
  }

  b.model = text(root, "model.name", meta);
  const std::string& task = text(root, "model.task", meta);
  if (task != "segmentation") {
    throw SegError(MVD_ERR_BUNDLE_MISMATCH, "bundle " + b.root + " holds a " + task + " model (" + b.model +
                                                "); libmvdseg segments: compile a segmentation model");
  }
  b.runtime = text(root, "target.runtime", meta);
  b.arch = text(root, "target.arch", meta);
  if (b.runtime != runtime) {
    throw SegError(MVD_ERR_BUNDLE_MISMATCH, "bundle " + b.root + " runs on " + b.runtime +
                                                " but this libmvdseg was built for " + runtime +
                                                "; build the app backend from this bundle (build_app_backend)");
  }
  // A .pte is portable; a TVM model library is machine code for the arch it was compiled for.
  if (runtime == "tvm" && b.arch != arch) {
    throw SegError(MVD_ERR_BUNDLE_MISMATCH, "bundle " + b.root + " holds a TVM library compiled for " + b.arch +
                                                " but this libmvdseg is built for " + arch +
                                                "; compile the bundle with --arch " + arch);
  }
  const std::string& rel = text(root, "target.artifact", meta);
  if (rel.empty() || rel.find("..") != std::string::npos || rel[0] == '/') {
    invalid(meta, "names an artifact outside the bundle ('" + rel + "')");
  }
  b.artifact = b.root + "/" + rel;

  expect(root, "input.layout", meta, "NCHW");
  expect(root, "input.dtype", meta, "float32");
  expect(root, "input.color_order", meta, "RGB");
  expect(root, "input.resize.interpolation", meta, "bilinear");
  const Json& keep_ratio = field(root, "input.resize.keep_ratio", meta);
  if (keep_ratio.kind() != Json::Kind::Bool || keep_ratio.boolean()) {
    throw SegError(MVD_ERR_BUNDLE_MISMATCH, meta + " asks for an aspect-keeping resize; libmvdseg reproduces the "
                                                   "fixed-size resize of mvd compile");
  }
  b.input_shape = shape(root, "input.shape", meta, 4);
  b.input_height = static_cast<int>(integer(field(root, "input.resize.height", meta), "input.resize.height", meta));
  b.input_width = static_cast<int>(integer(field(root, "input.resize.width", meta), "input.resize.width", meta));
  if (b.input_shape[0] != 1 || b.input_shape[1] != 3 || b.input_shape[2] != b.input_height ||
      b.input_shape[3] != b.input_width) {
    invalid(meta, "has an input.shape " + shape_text(b.input_shape) + " that disagrees with input.resize (" +
                      std::to_string(b.input_height) + "x" + std::to_string(b.input_width) + ")");
  }
  three_floats(root, "input.mean", meta, b.mean, false);
  three_floats(root, "input.std", meta, b.std, true);

  b.output_shape = shape(root, "output.shape", meta, 4);
  if (b.output_shape[0] != 1) invalid(meta, "has an output batch other than 1");
  if (b.output_shape[1] > 256) {
    throw SegError(MVD_ERR_BUNDLE_MISMATCH, "bundle " + b.root + " has " + std::to_string(b.output_shape[1]) +
                                                " classes; libmvdseg writes 8-bit label maps (at most 256)");
  }
  b.num_classes = static_cast<int>(b.output_shape[1]);
  read_classes(b, root, meta);
  check_artifact(b, root, rel, meta, verify_checksums);
  return b;
}

}  // namespace mvdseg
