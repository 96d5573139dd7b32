// ExecuTorch runner: loads a .pte with the Module API, runs method "forward" on one float32 .npy input and
// writes output 0. Contract and JSON line: see common.h and targets/runner_build.py.
#include <cstring>

#include "common.h"
#include "executorch_session.h"

#ifndef MVD_EXECUTORCH_VERSION
#define MVD_EXECUTORCH_VERSION "unknown"
#endif

namespace {

mvd::Result run(const mvd::Args& args) {
  mvd::NpyArray input = mvd::read_npy(args.input);

  mvd::Result r;
  r.runtime = "executorch";
  r.runtime_version = MVD_EXECUTORCH_VERSION;
  r.threads = mvd::set_executorch_threads(args.threads);  // before the program is loaded

  double t0 = mvd::now_us();
  mvd::ExecutorchSession session(args.model);
  r.load_ms = (mvd::now_us() - t0) / 1000.0;

  std::memcpy(session.input(input.shape), input.data.data(), input.data.size() * sizeof(float));
  for (int i = 0; i < args.warmup; ++i) session.run();
  mvd::SessionOutput out;
  for (int i = 0; i < args.iters; ++i) {
    double s = mvd::now_us();
    out = session.run();
    r.iter_us.push_back(mvd::now_us() - s);
  }
  r.output_shape = out.shape;
  mvd::write_npy(args.output, r.output_shape, out.data);
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  return mvd::run_main("executorch_runner", [&]() { return run(mvd::parse_args(argc, argv)); });
}
