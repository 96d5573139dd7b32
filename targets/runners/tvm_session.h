// One loaded TVM Relax VM model library (.so from export_library) and its "main": the code path the runner times
// and libmvdseg (targets/app_backend) calls per camera frame. Failures throw mvd::RunnerError with the runner's
// exit codes (3 = the library cannot be loaded, 4 = inference failed).
#pragma once

#include <dlpack/dlpack.h>
#include <tvm/ffi/container/array.h>
#include <tvm/ffi/container/tensor.h>
#include <tvm/ffi/error.h>
#include <tvm/ffi/extra/module.h>
#include <tvm/ffi/function.h>

#include <cstdlib>
#include <optional>
#include <string>
#include <vector>

#include "common.h"

namespace mvd {

namespace tvm_detail {

namespace ffi = tvm::ffi;

// Owns the input buffer of the tensor handed to the VM; 64-byte aligned as TVM kernels expect.
struct AlignedCPUAlloc {
  void AllocData(DLTensor* t) {
    size_t bytes = (ffi::GetDataSize(*t) + 63) / 64 * 64;
    t->data = std::aligned_alloc(64, bytes > 0 ? bytes : 64);
    if (t->data == nullptr) throw RunnerError("out of memory for the input tensor", 4);
  }
  void FreeData(DLTensor* t) { std::free(t->data); }
};

inline ffi::Function member(const ffi::Module& m, const char* name, int code) {
  auto f = m->GetFunction(name, /*query_imports=*/true);
  if (!f.has_value()) throw RunnerError(std::string("model library has no function ") + name, code);
  return *f;
}

}  // namespace tvm_detail

inline tvm::ffi::Function tvm_global(const char* name) {
  auto f = tvm::ffi::Function::GetGlobal(name);
  if (!f.has_value()) throw RunnerError(std::string("TVM runtime has no global function ") + name, 3);
  return *f;
}

// TVM's pool reads TVM_NUM_THREADS when it is first created (lazily, on first use): call before loading.
inline void request_tvm_threads(int threads) { setenv("TVM_NUM_THREADS", std::to_string(threads).c_str(), 1); }

// Applies the count to the calling thread's pool (affinity mode 1 = big cores) and returns what the pool uses.
inline int apply_tvm_threads(int threads) {
  tvm_global("runtime.config_threadpool")(1, threads);
  return tvm_global("runtime.NumThreads")().cast<int>();
}

class TvmSession {
 public:
  explicit TvmSession(const std::string& path) {
    namespace ffi = tvm::ffi;
    // tvm-ffi resolves a bare name through the library search path: give it a path with a slash.
    std::string p = path.find('/') == std::string::npos ? "./" + path : path;
    try {
      ffi::Module lib = ffi::Module::LoadFromFile(p);
      auto vm = tvm_detail::member(lib, "vm_load_executable", 3)().cast<ffi::Module>();
      // (device type, device id, allocator) per device; allocator 2 = pooled.
      tvm_detail::member(vm, "vm_initialization", 3)(static_cast<int>(kDLCPU), 0, 2);
      main_ = tvm_detail::member(vm, "main", 3);  // the function keeps its VM module alive
    } catch (const ffi::Error& e) {
      throw RunnerError("cannot load TVM model " + path + ": " + e.what(), 3);
    }
  }

  // Input 0's shape: a Relax VM library does not declare it before running (empty), the VM checks it then.
  std::vector<int64_t> declared_input_shape() const { return {}; }

  // The float32 input buffer of `shape`, owned by the session; fill it, then call run().
  float* input(const std::vector<int64_t>& shape) {
    namespace ffi = tvm::ffi;
    if (shape != input_shape_ || !input_.has_value()) {
      input_shape_ = shape;
      input_ = ffi::Tensor::FromNDAlloc(tvm_detail::AlignedCPUAlloc(), ffi::ShapeView(shape.data(), shape.size()),
                                        DLDataType{kDLFloat, 32, 1}, DLDevice{kDLCPU, 0});
    }
    return static_cast<float*>(input_->data_ptr());
  }

  SessionOutput run() {
    namespace ffi = tvm::ffi;
    if (!input_.has_value()) throw RunnerError("no input was set before running the TVM model", 4);
    try {
      out_ = main_(*input_);
    } catch (const ffi::Error& e) {
      throw RunnerError(std::string("main failed: ") + e.what(), 4);
    }
    std::optional<ffi::Tensor> y = out_.try_cast<ffi::Tensor>();
    if (!y.has_value()) {
      auto tuple = out_.try_cast<ffi::Array<ffi::Any>>();
      if (tuple.has_value() && !tuple->empty()) y = (*tuple)[0].try_cast<ffi::Tensor>();
    }
    if (!y.has_value()) throw RunnerError("main did not return a tensor (or a tuple starting with one)", 4);
    output_ = *y;
    DLDataType dt = output_->dtype();
    if (dt.code != kDLFloat || dt.bits != 32 || dt.lanes != 1) throw RunnerError("output 0 is not float32", 4);
    if (output_->device().device_type != kDLCPU || !output_->IsContiguous()) {
      throw RunnerError("output 0 is not a contiguous CPU tensor", 4);
    }
    SessionOutput result;
    result.data = reinterpret_cast<const float*>(static_cast<const char*>(output_->data_ptr()) +
                                                 output_->byte_offset());
    for (int64_t d : output_->shape()) result.shape.push_back(d);
    return result;
  }

 private:
  tvm::ffi::Function main_;
  std::vector<int64_t> input_shape_;
  std::optional<tvm::ffi::Tensor> input_;
  std::optional<tvm::ffi::Tensor> output_;
  tvm::ffi::Any out_;
};

}  // namespace mvd
