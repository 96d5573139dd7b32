// ExecuTorch runner: loads a .pte with the Module API, runs method "forward" on one float32 .npy input and
// writes output 0. Contract and JSON line: see common.h and targets/runner_build.py.
#include <executorch/extension/module/module.h>
#include <executorch/extension/tensor/tensor.h>

#include "common.h"

// The wheel ships libexecutorch_threadpool.so but not threadpool.h; these two members are all the runner
// needs, declared with the exact signatures the library exports (nm -DC libexecutorch_threadpool.so).
namespace executorch::extension::threadpool {
class ThreadPool final {
 public:
  size_t get_thread_count() const;
  bool _unsafe_reset_threadpool(uint32_t num_threads);
};
ThreadPool* get_threadpool();
}  // namespace executorch::extension::threadpool

#ifndef MVD_EXECUTORCH_VERSION
#define MVD_EXECUTORCH_VERSION "unknown"
#endif

namespace {

using executorch::extension::Module;
using executorch::runtime::Error;

std::string err(Error e) { return "error code " + std::to_string(static_cast<int>(e)); }

mvd::Result run(const mvd::Args& args) {
  mvd::NpyArray input = mvd::read_npy(args.input);

  // Before the program is loaded: XNNPACK takes the pool when its delegate initialises.
  auto* pool = executorch::extension::threadpool::get_threadpool();
  if (pool == nullptr || !pool->_unsafe_reset_threadpool(static_cast<uint32_t>(args.threads))) {
    throw mvd::RunnerError("could not set the ExecuTorch thread pool to " + std::to_string(args.threads), 4);
  }

  mvd::Result r;
  r.runtime = "executorch";
  r.runtime_version = MVD_EXECUTORCH_VERSION;
  r.threads = static_cast<int>(pool->get_thread_count());

  double t0 = mvd::now_us();
  Module module(args.model, Module::LoadMode::File);
  Error e = module.load();
  if (e != Error::Ok) throw mvd::RunnerError("cannot load program " + args.model + " (" + err(e) + ")", 3);
  e = module.load_method("forward");
  if (e != Error::Ok) {
    throw mvd::RunnerError("cannot load method 'forward' of " + args.model + " (" + err(e) + ")", 3);
  }
  r.load_ms = (mvd::now_us() - t0) / 1000.0;

  std::vector<executorch::aten::SizesType> sizes(input.shape.begin(), input.shape.end());
  auto tensor = executorch::extension::from_blob(input.data.data(), sizes, executorch::aten::ScalarType::Float);

  auto run_once = [&]() {
    auto out = module.forward(tensor);
    if (!out.ok()) throw mvd::RunnerError("forward failed (" + err(out.error()) + ")", 4);
    return std::move(out.get());
  };
  for (int i = 0; i < args.warmup; ++i) run_once();
  std::vector<executorch::runtime::EValue> outputs;
  for (int i = 0; i < args.iters; ++i) {
    double s = mvd::now_us();
    outputs = run_once();
    r.iter_us.push_back(mvd::now_us() - s);
  }
  if (outputs.empty() || !outputs[0].isTensor()) throw mvd::RunnerError("output 0 is not a tensor", 4);
  const auto& out = outputs[0].toTensor();
  if (out.scalar_type() != executorch::aten::ScalarType::Float) {
    throw mvd::RunnerError("output 0 is not float32 (scalar type " +
                               std::to_string(static_cast<int>(out.scalar_type())) + ")", 4);
  }
  for (auto d : out.sizes()) r.output_shape.push_back(d);
  mvd::write_npy(args.output, r.output_shape, out.const_data_ptr<float>());
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  return mvd::run_main("executorch_runner", [&]() { return run(mvd::parse_args(argc, argv)); });
}
