// Shared pieces of the ExecuTorch and TVM runners: the one command-line contract, .npy float32 I/O, timing,
// peak RSS and the single JSON line on stdout. Header-only so each runner is one translation unit and the
// build stays a single compiler call per runner.
#pragma once

#include <sys/resource.h>

#include <chrono>
#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <iostream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace mvd {

// An error that ends the runner with a message on stderr and this exit code (no JSON line).
// 2 = bad command line or input file, 3 = model could not be loaded, 4 = inference failed.
struct RunnerError : std::runtime_error {
  int code;
  RunnerError(const std::string& msg, int exit_code) : std::runtime_error(msg), code(exit_code) {}
};

struct Args {
  std::string model, input, output;
  int warmup = 1, iters = 10, threads = 1;
};

inline int parse_int(const std::string& flag, const std::string& value, int min_value) {
  char* end = nullptr;
  long v = std::strtol(value.c_str(), &end, 10);
  if (value.empty() || *end != '\0' || v < min_value || v > 1000000) {
    throw RunnerError(flag + " expects an integer >= " + std::to_string(min_value) + ", got '" + value + "'", 2);
  }
  return static_cast<int>(v);
}

inline Args parse_args(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    std::string flag = argv[i];
    if (flag == "--help" || flag == "-h") {
      throw RunnerError(
          "usage: runner --model PATH --input FILE.npy --output FILE.npy [--warmup N] [--iters N] [--threads N]", 2);
    }
    if (i + 1 >= argc) throw RunnerError("missing value after " + flag, 2);
    std::string value = argv[++i];
    if (flag == "--model") a.model = value;
    else if (flag == "--input") a.input = value;
    else if (flag == "--output") a.output = value;
    else if (flag == "--warmup") a.warmup = parse_int(flag, value, 0);
    else if (flag == "--iters") a.iters = parse_int(flag, value, 1);
    else if (flag == "--threads") a.threads = parse_int(flag, value, 1);
    else throw RunnerError("unknown argument " + flag, 2);
  }
  if (a.model.empty() || a.input.empty() || a.output.empty()) {
    throw RunnerError("--model, --input and --output are required", 2);
  }
  std::ifstream probe(a.model, std::ios::binary);
  if (!probe) throw RunnerError("model file not found or unreadable: " + a.model, 2);
  return a;
}

// ---------------------------------------------------------------------------------------------------------
// .npy (format 1.0 written; 1.x/2.x headers read), float32 little-endian C-order only.

struct NpyArray {
  std::vector<int64_t> shape;
  std::vector<float> data;
};

inline int64_t numel(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

// Value of `key` in the header dict, as the raw text up to the next top-level comma or closing brace.
inline std::string npy_field(const std::string& header, const std::string& key, const std::string& path) {
  size_t k = header.find("'" + key + "'");
  if (k == std::string::npos) throw RunnerError(path + ": .npy header has no '" + key + "' field", 2);
  size_t colon = header.find(':', k);
  if (colon == std::string::npos) throw RunnerError(path + ": malformed .npy header", 2);
  size_t start = colon + 1;
  while (start < header.size() && header[start] == ' ') ++start;
  size_t end = start;
  if (end < header.size() && header[end] == '(') {
    end = header.find(')', end);
    if (end == std::string::npos) throw RunnerError(path + ": malformed shape in .npy header", 2);
    ++end;
  } else {
    while (end < header.size() && header[end] != ',' && header[end] != '}') ++end;
  }
  return header.substr(start, end - start);
}

inline NpyArray read_npy(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw RunnerError("input file not found or unreadable: " + path, 2);
  char magic[8];
  if (!f.read(magic, 8) || std::memcmp(magic, "\x93NUMPY", 6) != 0) {
    throw RunnerError(path + ": not a .npy file (bad magic)", 2);
  }
  const int major = static_cast<unsigned char>(magic[6]);
  uint32_t header_len = 0;
  if (major == 1) {
    unsigned char b[2];
    if (!f.read(reinterpret_cast<char*>(b), 2)) throw RunnerError(path + ": truncated .npy header", 2);
    header_len = b[0] | (b[1] << 8);
  } else if (major == 2 || major == 3) {
    unsigned char b[4];
    if (!f.read(reinterpret_cast<char*>(b), 4)) throw RunnerError(path + ": truncated .npy header", 2);
    header_len = b[0] | (b[1] << 8) | (b[2] << 16) | (static_cast<uint32_t>(b[3]) << 24);
  } else {
    throw RunnerError(path + ": unsupported .npy format version " + std::to_string(major), 2);
  }
  if (header_len > (1u << 20)) throw RunnerError(path + ": .npy header too large", 2);
  std::string header(header_len, '\0');
  if (!f.read(&header[0], header_len)) throw RunnerError(path + ": truncated .npy header", 2);

  std::string descr = npy_field(header, "descr", path);
  if (descr != "'<f4'") {
    throw RunnerError(path + ": dtype " + descr + " is not supported, the runner takes float32 ('<f4') only", 2);
  }
  if (npy_field(header, "fortran_order", path) != "False") {
    throw RunnerError(path + ": Fortran-order arrays are not supported, save a C-contiguous array", 2);
  }
  std::string shape_text = npy_field(header, "shape", path);
  NpyArray arr;
  std::string inner = shape_text.substr(1, shape_text.size() - 2);
  std::stringstream ss(inner);
  std::string item;
  while (std::getline(ss, item, ',')) {
    size_t s = item.find_first_not_of(' ');
    if (s == std::string::npos) continue;
    char* end = nullptr;
    long long d = std::strtoll(item.c_str() + s, &end, 10);
    if (d < 0 || (*end != '\0' && *end != ' ' && *end != 'L')) {
      throw RunnerError(path + ": malformed shape " + shape_text + " in .npy header", 2);
    }
    arr.shape.push_back(d);
  }
  const int64_t n = numel(arr.shape);
  arr.data.resize(static_cast<size_t>(n));
  if (n > 0 && !f.read(reinterpret_cast<char*>(arr.data.data()), n * static_cast<int64_t>(sizeof(float)))) {
    throw RunnerError(path + ": file holds fewer values than its shape " + shape_text + " says", 2);
  }
  return arr;
}

inline std::string shape_tuple(const std::vector<int64_t>& shape) {
  std::string s = "(";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + (shape.size() == 1 ? ",)" : ")");
}

inline void write_npy(const std::string& path, const std::vector<int64_t>& shape, const float* data) {
  std::string header = "{'descr': '<f4', 'fortran_order': False, 'shape': " + shape_tuple(shape) + ", }";
  const size_t preamble = 10;  // magic(6) + version(2) + header length(2)
  size_t total = preamble + header.size() + 1;
  header.append((64 - total % 64) % 64, ' ');
  header += '\n';
  if (header.size() > 65535) throw RunnerError("output shape too long for a .npy 1.0 header", 4);
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  if (!f) throw RunnerError("cannot write output file: " + path, 4);
  const unsigned char len[2] = {static_cast<unsigned char>(header.size() & 0xff),
                                static_cast<unsigned char>(header.size() >> 8)};
  f.write("\x93NUMPY\x01\x00", 8);
  f.write(reinterpret_cast<const char*>(len), 2);
  f.write(header.data(), static_cast<std::streamsize>(header.size()));
  f.write(reinterpret_cast<const char*>(data), numel(shape) * static_cast<std::streamsize>(sizeof(float)));
  if (!f) throw RunnerError("failed while writing output file: " + path, 4);
}

// ---------------------------------------------------------------------------------------------------------
// Timing, memory and the result line.

inline double now_us() {
  using clock = std::chrono::steady_clock;
  return std::chrono::duration<double, std::micro>(clock::now().time_since_epoch()).count();
}

// Peak resident set in kB: VmHWM when /proc is there, else getrusage (kB on Linux).
inline long peak_rss_kb() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmHWM:", 0) == 0) return std::strtol(line.c_str() + 6, nullptr, 10);
  }
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_maxrss;
}

inline std::string json_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\', out += c;
    else if (static_cast<unsigned char>(c) < 0x20) out += ' ';
    else out += c;
  }
  return out;
}

// Output 0 of a session's last run (executorch_session.h, tvm_session.h): float32 data owned by the session,
// valid until the next run.
struct SessionOutput {
  const float* data = nullptr;
  std::vector<int64_t> shape;
};

struct Result {
  std::string runtime, runtime_version;
  int threads = 0;
  double load_ms = 0;
  std::vector<double> iter_us;
  std::vector<int64_t> output_shape;
};

inline std::string to_json(const Result& r) {
  std::ostringstream o;
  o.setf(std::ios::fixed);
  o.precision(3);
  o << "{\"runtime\": \"" << json_escape(r.runtime) << "\", \"runtime_version\": \"" << json_escape(r.runtime_version)
    << "\", \"threads\": " << r.threads << ", \"load_ms\": " << r.load_ms << ", \"iter_us\": [";
  for (size_t i = 0; i < r.iter_us.size(); ++i) o << (i ? ", " : "") << r.iter_us[i];
  o << "], \"peak_rss_kb\": " << peak_rss_kb() << ", \"output_shape\": [";
  for (size_t i = 0; i < r.output_shape.size(); ++i) o << (i ? ", " : "") << r.output_shape[i];
  o << "], \"output_dtype\": \"float32\"}";
  return o.str();
}

// Runs `body`, turning every failure into a stderr message and an exit code, and a success into one JSON line.
inline int run_main(const char* name, const std::function<Result()>& body) {
  try {
    Result r = body();
    std::cout << to_json(r) << std::endl;
    return 0;
  } catch (const RunnerError& e) {
    std::cerr << name << ": error: " << e.what() << std::endl;
    return e.code;
  } catch (const std::exception& e) {
    std::cerr << name << ": error: " << e.what() << std::endl;
    return 4;
  }
}

}  // namespace mvd
