// TVM runner: loads a Relax VM model library (.so from export_library) through tvm-ffi, runs "main" on one
// float32 .npy input and writes the (first) output. Contract and JSON line: see common.h.
#include <cstring>

#include "common.h"
#include "tvm_session.h"

#ifndef MVD_TVM_VERSION
#define MVD_TVM_VERSION "unknown"
#endif

namespace {

mvd::Result run(const mvd::Args& args) {
  mvd::NpyArray input = mvd::read_npy(args.input);
  mvd::request_tvm_threads(args.threads);

  mvd::Result r;
  r.runtime = "tvm";
  r.runtime_version = MVD_TVM_VERSION;

  double t0 = mvd::now_us();
  mvd::TvmSession session(args.model);
  r.load_ms = (mvd::now_us() - t0) / 1000.0;
  r.threads = mvd::apply_tvm_threads(args.threads);

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
  return mvd::run_main("tvm_runner", [&]() { return run(mvd::parse_args(argc, argv)); });
}
