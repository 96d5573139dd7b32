// TVM runner: loads a Relax VM model library (.so from export_library) through tvm-ffi, runs "main" on one
// float32 .npy input and writes the (first) output. Contract and JSON line: see common.h.
#include <dlpack/dlpack.h>
#include <tvm/ffi/container/array.h>
#include <tvm/ffi/container/tensor.h>
#include <tvm/ffi/error.h>
#include <tvm/ffi/extra/module.h>
#include <tvm/ffi/function.h>

#include "common.h"

#ifndef MVD_TVM_VERSION
#define MVD_TVM_VERSION "unknown"
#endif

namespace {

namespace ffi = tvm::ffi;

// Owns the input buffer of the tensor handed to the VM; 64-byte aligned as TVM kernels expect.
struct AlignedCPUAlloc {
  void AllocData(DLTensor* t) {
    size_t bytes = (ffi::GetDataSize(*t) + 63) / 64 * 64;
    t->data = std::aligned_alloc(64, bytes > 0 ? bytes : 64);
    if (t->data == nullptr) throw mvd::RunnerError("out of memory for the input tensor", 4);
  }
  void FreeData(DLTensor* t) { std::free(t->data); }
};

ffi::Function global(const char* name) {
  auto f = ffi::Function::GetGlobal(name);
  if (!f.has_value()) throw mvd::RunnerError(std::string("TVM runtime has no global function ") + name, 3);
  return *f;
}

ffi::Function member(const ffi::Module& m, const char* name, int code) {
  auto f = m->GetFunction(name, /*query_imports=*/true);
  if (!f.has_value()) throw mvd::RunnerError(std::string("model library has no function ") + name, code);
  return *f;
}

mvd::Result run(const mvd::Args& args) {
  mvd::NpyArray input = mvd::read_npy(args.input);
  // TVM's pool reads TVM_NUM_THREADS when it is first created (lazily, on first use): set it before load.
  setenv("TVM_NUM_THREADS", std::to_string(args.threads).c_str(), 1);

  mvd::Result r;
  r.runtime = "tvm";
  r.runtime_version = MVD_TVM_VERSION;

  // tvm-ffi resolves a bare name through the library search path: give it a path with a slash.
  std::string path = args.model.find('/') == std::string::npos ? "./" + args.model : args.model;
  double t0 = mvd::now_us();
  ffi::Function main_fn;
  try {
    ffi::Module lib = ffi::Module::LoadFromFile(path);
    auto vm = member(lib, "vm_load_executable", 3)().cast<ffi::Module>();
    // (device type, device id, allocator) per device; allocator 2 = pooled.
    member(vm, "vm_initialization", 3)(static_cast<int>(kDLCPU), 0, 2);
    main_fn = member(vm, "main", 3);  // the function keeps its VM module alive
  } catch (const ffi::Error& e) {
    throw mvd::RunnerError("cannot load TVM model " + args.model + ": " + e.what(), 3);
  }
  r.load_ms = (mvd::now_us() - t0) / 1000.0;
  // Apply the same count explicitly (affinity mode 1 = big cores) and read back what the pool uses.
  global("runtime.config_threadpool")(1, args.threads);
  r.threads = global("runtime.NumThreads")().cast<int>();

  std::vector<int64_t> shape = input.shape;
  ffi::Tensor x = ffi::Tensor::FromNDAlloc(AlignedCPUAlloc(), ffi::ShapeView(shape.data(), shape.size()),
                                           DLDataType{kDLFloat, 32, 1}, DLDevice{kDLCPU, 0});
  std::memcpy(x.data_ptr(), input.data.data(), input.data.size() * sizeof(float));

  ffi::Any out;
  auto run_once = [&]() {
    try {
      out = main_fn(x);
    } catch (const ffi::Error& e) {
      throw mvd::RunnerError(std::string("main failed: ") + e.what(), 4);
    }
  };
  for (int i = 0; i < args.warmup; ++i) run_once();
  for (int i = 0; i < args.iters; ++i) {
    double s = mvd::now_us();
    run_once();
    r.iter_us.push_back(mvd::now_us() - s);
  }

  std::optional<ffi::Tensor> y = out.try_cast<ffi::Tensor>();
  if (!y.has_value()) {
    auto tuple = out.try_cast<ffi::Array<ffi::Any>>();
    if (tuple.has_value() && !tuple->empty()) y = (*tuple)[0].try_cast<ffi::Tensor>();
  }
  if (!y.has_value()) throw mvd::RunnerError("main did not return a tensor (or a tuple starting with one)", 4);
  ffi::Tensor t = *y;
  DLDataType dt = t.dtype();
  if (dt.code != kDLFloat || dt.bits != 32 || dt.lanes != 1) {
    throw mvd::RunnerError("output 0 is not float32", 4);
  }
  if (t.device().device_type != kDLCPU || !t.IsContiguous()) {
    throw mvd::RunnerError("output 0 is not a contiguous CPU tensor", 4);
  }
  for (int64_t d : t.shape()) r.output_shape.push_back(d);
  mvd::write_npy(args.output, r.output_shape,
                 reinterpret_cast<const float*>(static_cast<const char*>(t.data_ptr()) + t.byte_offset()));
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  return mvd::run_main("tvm_runner", [&]() { return run(mvd::parse_args(argc, argv)); });
}
