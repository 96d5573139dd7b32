// One loaded ExecuTorch program and its "forward" method: the code path the runner times and libmvdseg
// (targets/app_backend) calls per camera frame. Failures throw mvd::RunnerError with the runner's exit codes
// (3 = the program cannot be loaded, 4 = inference failed).
#pragma once

#include <executorch/extension/module/module.h>
#include <executorch/extension/tensor/tensor.h>

#include <string>
#include <vector>

#include "common.h"

// The wheel ships libexecutorch_threadpool.so but not threadpool.h; these members are all we need, declared
// with the exact signatures the library exports (nm -DC libexecutorch_threadpool.so).
namespace executorch::extension::threadpool {
class ThreadPool final {
 public:
  size_t get_thread_count() const;
  bool _unsafe_reset_threadpool(uint32_t num_threads);
};
ThreadPool* get_threadpool();
}  // namespace executorch::extension::threadpool

namespace mvd {

inline std::string executorch_error(executorch::runtime::Error e) {
  return "error code " + std::to_string(static_cast<int>(e));
}

// Resizes ExecuTorch's process-wide thread pool and returns the count in use. Call it before any program is
// loaded: XNNPACK takes the pool when its delegate initialises.
inline int set_executorch_threads(int threads) {
  auto* pool = executorch::extension::threadpool::get_threadpool();
  if (pool == nullptr || !pool->_unsafe_reset_threadpool(static_cast<uint32_t>(threads))) {
    throw RunnerError("could not set the ExecuTorch thread pool to " + std::to_string(threads), 4);
  }
  return static_cast<int>(pool->get_thread_count());
}

class ExecutorchSession {
 public:
  explicit ExecutorchSession(const std::string& path) : path_(path), module_(path, Module::LoadMode::File) {
    executorch::runtime::Error e = module_.load();
    if (e != executorch::runtime::Error::Ok) {
      throw RunnerError("cannot load program " + path + " (" + executorch_error(e) + ")", 3);
    }
    e = module_.load_method("forward");
    if (e != executorch::runtime::Error::Ok) {
      throw RunnerError("cannot load method 'forward' of " + path + " (" + executorch_error(e) + ")", 3);
    }
  }

  // Input 0's shape as the program declares it (empty if the program does not say).
  std::vector<int64_t> declared_input_shape() {
    std::vector<int64_t> shape;
    auto meta = module_.method_meta("forward");
    if (!meta.ok() || meta->num_inputs() < 1) return shape;
    auto info = meta->input_tensor_meta(0);
    if (!info.ok()) return shape;
    for (int32_t d : info->sizes()) shape.push_back(d);
    return shape;
  }

  // The float32 input buffer of `shape`, owned by the session; fill it, then call run().
  float* input(const std::vector<int64_t>& shape) {
    if (shape != input_shape_ || !input_tensor_) {
      input_shape_ = shape;
      input_data_.assign(static_cast<size_t>(numel(shape)), 0.0f);
      std::vector<executorch::aten::SizesType> sizes(shape.begin(), shape.end());
      input_tensor_ = executorch::extension::from_blob(input_data_.data(), sizes,
                                                       executorch::aten::ScalarType::Float);
    }
    return input_data_.data();
  }

  SessionOutput run() {
    if (!input_tensor_) throw RunnerError("no input was set before running " + path_, 4);
    auto out = module_.forward(input_tensor_);
    if (!out.ok()) throw RunnerError("forward failed (" + executorch_error(out.error()) + ")", 4);
    outputs_ = std::move(out.get());
    if (outputs_.empty() || !outputs_[0].isTensor()) throw RunnerError("output 0 is not a tensor", 4);
    const auto& t = outputs_[0].toTensor();
    if (t.scalar_type() != executorch::aten::ScalarType::Float) {
      throw RunnerError("output 0 is not float32 (scalar type " + std::to_string(static_cast<int>(t.scalar_type())) +
                            ")", 4);
    }
    SessionOutput result;
    result.data = t.const_data_ptr<float>();
    for (auto d : t.sizes()) result.shape.push_back(d);
    return result;
  }

 private:
  using Module = executorch::extension::Module;
  std::string path_;
  Module module_;
  std::vector<int64_t> input_shape_;
  std::vector<float> input_data_;
  executorch::extension::TensorPtr input_tensor_;
  std::vector<executorch::runtime::EValue> outputs_;
};

}  // namespace mvd
