// Shared by the serving tests: the qwen3_moe fixture (it has a tokenizer and a chat template) on
// the CPU engine, with the exact f32 expert kernel so batched and single runs agree bit for bit.
#pragma once

#include "coordinator/loaded_model.h"
#include "kernels/cpu/isa.h"
#include "tests/fixture_paths.h"

namespace tandem::testing {

inline absl::StatusOr<LoadedModel> LoadServingFixture(int64_t max_model_len, int workers = 0) {
  LoadOptions options;
  options.device = Device::kCpu;
  options.workers = workers;
  options.max_model_len = max_model_len;
  options.cpu_kernel =
      CanRunAvx512Bf16(DetectCpuFeatures()) ? CpuKernel::kAvx512 : CpuKernel::kReference;
  return LoadModel(FixturesDir() + "/qwen3_moe", options);
}

}  // namespace tandem::testing
