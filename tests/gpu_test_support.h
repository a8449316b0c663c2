// Shared by the GPU tests (label `gpu`): the skip on machines without a CUDA device, the expert
// kernel that keeps f32 activations, so comparisons measure the GPU side, not AMX rounding, and
// the parameter of the tests that run every fixture in-process and with worker processes.
#pragma once

#include <filesystem>
#include <ostream>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "kernels/cpu/isa.h"
#include "kernels/cuda/device_info.h"
#include "tests/fixture_paths.h"

namespace tandem::testing {

inline bool HaveGpu() {
  auto gpus = ListCudaDevices();
  return gpus.ok() && !gpus->empty();
}

inline CpuKernel ExactExpertKernel() {
  return CanRunAvx512Bf16(DetectCpuFeatures()) ? CpuKernel::kAvx512 : CpuKernel::kReference;
}

// One fixture model run with `workers` worker processes (0: experts in-process).
struct FixtureWorkersCase {
  std::string dir;
  int workers = 0;
};
inline void PrintTo(const FixtureWorkersCase& c, std::ostream* os) {
  *os << c.dir << " workers=" << c.workers;
}
// Every fixture, with 0 and with 2 workers.
inline std::vector<FixtureWorkersCase> FixtureWorkersCases() {
  std::vector<FixtureWorkersCase> cases;
  for (const std::string& dir : ModelFixtureDirs())
    for (int workers : {0, 2}) cases.push_back({dir, workers});
  return cases;
}
// "<fixture>_workers<N>": readable ctest names.
inline std::string FixtureWorkersCaseName(
    const ::testing::TestParamInfo<FixtureWorkersCase>& info) {
  return std::filesystem::path(info.param.dir).filename().string() + "_workers" +
         std::to_string(info.param.workers);
}

}  // namespace tandem::testing

#define SKIP_WITHOUT_GPU()          \
  if (!::tandem::testing::HaveGpu()) \
  GTEST_SKIP() << "no CUDA device visible on this machine (CPU-only CI)"
