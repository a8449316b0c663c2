// Shared by the serving tests: the qwen3_moe fixture (it has a tokenizer and a chat template) on
// the CPU engine, with the exact f32 expert kernel so batched and single runs agree bit for bit.
#pragma once

#include "coordinator/loaded_model.h"
#include "kernels/cpu/isa.h"
#include "tests/fixture_paths.h"

namespace tandem::testing {

// `worker_addrs`: workers started elsewhere (then `workers` is ignored).
inline absl::StatusOr<LoadedModel> LoadServingFixture(
    int64_t max_model_len, int workers = 0, const std::vector<std::string>& worker_addrs = {}) {
  LoadOptions options;
  options.device = Device::kCpu;
  options.workers = workers;
  options.worker_addrs = worker_addrs;
  options.max_model_len = max_model_len;
  options.cpu_kernel =
      CanRunAvx512Bf16(DetectCpuFeatures()) ? CpuKernel::kAvx512 : CpuKernel::kReference;
  return LoadModel(FixturesDir() + "/qwen3_moe", options);
}

}  // namespace tandem::testing
