#include <mutex>

#include "engine.h"
#include "tvm_session.h"

namespace mvdseg {

std::unique_ptr<Engine> open_engine(const std::string& artifact, int num_threads) {
  // TVM sizes each calling thread's pool from TVM_NUM_THREADS when that pool is first used.
  static std::once_flag threads_requested;
  if (num_threads > 0) std::call_once(threads_requested, [&]() { mvd::request_tvm_threads(num_threads); });
  return std::make_unique<SessionEngine<mvd::TvmSession>>(artifact);
}

const char* engine_runtime() { return "tvm"; }

}  // namespace mvdseg
