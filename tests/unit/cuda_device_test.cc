// Runs only in builds with TANDEM_CUDA=ON; skips (with the reason) where no GPU is visible.
#include "gtest/gtest.h"
#include "kernels/cuda/device_info.h"

namespace tandem {
namespace {

TEST(CudaDevices, ListsTheGpusOfThisMachine) {
  auto devices = ListCudaDevices();
  ASSERT_TRUE(devices.ok()) << devices.status();
  if (devices->empty()) GTEST_SKIP() << "no CUDA device visible on this machine (CPU-only CI)";
  for (const CudaDeviceInfo& d : *devices) {
    EXPECT_FALSE(d.name.empty());
    EXPECT_GE(d.compute_capability_major, 7);
    EXPECT_GT(d.total_memory_bytes, 0u);
  }
}

}  // namespace
}  // namespace tandem
