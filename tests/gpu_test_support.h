// Shared by the GPU tests (label `gpu`): the skip on machines without a CUDA device, and the
// expert kernel that keeps f32 activations, so comparisons measure the GPU side, not AMX rounding.
#pragma once

#include "gtest/gtest.h"
#include "kernels/cpu/isa.h"
#include "kernels/cuda/device_info.h"

namespace tandem::testing {

inline bool HaveGpu() {
  auto gpus = ListCudaDevices();
  return gpus.ok() && !gpus->empty();
}

inline CpuKernel ExactExpertKernel() {
  return CanRunAvx512Bf16(DetectCpuFeatures()) ? CpuKernel::kAvx512 : CpuKernel::kReference;
}

}  // namespace tandem::testing

#define SKIP_WITHOUT_GPU()          \
  if (!::tandem::testing::HaveGpu()) \
  GTEST_SKIP() << "no CUDA device visible on this machine (CPU-only CI)"
