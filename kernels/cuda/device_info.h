// Which CUDA devices this process can use. Callable from any thread.
#pragma once

#include <string>
#include <vector>

#include "common/status.h"

namespace tandem {

struct CudaDeviceInfo {
  int index = 0;
  std::string name;
  int compute_capability_major = 0;
  int compute_capability_minor = 0;
  size_t total_memory_bytes = 0;
};

// The visible devices; an empty list when the driver reports none. An error only when the CUDA
// runtime itself fails in an unexpected way (its message is passed on).
absl::StatusOr<std::vector<CudaDeviceInfo>> ListCudaDevices();

}  // namespace tandem
