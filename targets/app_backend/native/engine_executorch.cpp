#include <mutex>

#include "engine.h"
#include "executorch_session.h"

namespace mvdseg {

std::unique_ptr<Engine> open_engine(const std::string& artifact, int num_threads) {
  // The pool is process-wide and may only be resized before programs are loaded: the first request wins.
  static std::once_flag pool_configured;
  if (num_threads > 0) std::call_once(pool_configured, [&]() { mvd::set_executorch_threads(num_threads); });
  return std::make_unique<SessionEngine<mvd::ExecutorchSession>>(artifact);
}

const char* engine_runtime() { return "executorch"; }

}  // namespace mvdseg
