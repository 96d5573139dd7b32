// The runtime behind a handle: one ExecuTorch program or one TVM VM, reached through the same session classes
// the C++ runners use (targets/runners/*_session.h). Each build of libmvdseg links exactly one runtime and
// compiles exactly one of engine_executorch.cpp / engine_tvm.cpp.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "common.h"  // mvd::SessionOutput, mvd::RunnerError (exit code 3 = load, 4 = inference)

namespace mvdseg {

class Engine {
 public:
  virtual ~Engine() = default;
  // Input 0's shape as the artifact declares it; empty when the runtime cannot tell before running.
  virtual std::vector<int64_t> declared_input_shape() = 0;
  // The input buffer of `shape`, owned by the engine; fill it, then run().
  virtual float* input(const std::vector<int64_t>& shape) = 0;
  virtual mvd::SessionOutput run() = 0;
};

// An Engine over one of the runners' session classes (mvd::ExecutorchSession, mvd::TvmSession).
template <class Session>
class SessionEngine final : public Engine {
 public:
  explicit SessionEngine(const std::string& artifact) : session_(artifact) {}
  std::vector<int64_t> declared_input_shape() override { return session_.declared_input_shape(); }
  float* input(const std::vector<int64_t>& shape) override { return session_.input(shape); }
  mvd::SessionOutput run() override { return session_.run(); }

 private:
  Session session_;
};

// Loads the artifact; num_threads > 0 asks the runtime for that many threads (see mvd_options).
std::unique_ptr<Engine> open_engine(const std::string& artifact, int num_threads);

// "executorch" or "tvm".
const char* engine_runtime();

}  // namespace mvdseg
