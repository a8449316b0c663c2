#include <cuda_runtime.h>

#include "kernels/cuda/device_info.h"

namespace tandem {

absl::StatusOr<std::vector<CudaDeviceInfo>> ListCudaDevices() {
  std::vector<CudaDeviceInfo> devices;
  int count = 0;
  cudaError_t err = cudaGetDeviceCount(&count);
  if (err == cudaErrorNoDevice || err == cudaErrorInsufficientDriver) {
    cudaGetLastError();  // clear the sticky error
    return devices;
  }
  if (err != cudaSuccess) return absl::InternalError(cudaGetErrorString(err));
  for (int i = 0; i < count; ++i) {
    cudaDeviceProp prop;
    err = cudaGetDeviceProperties(&prop, i);
    if (err != cudaSuccess) return absl::InternalError(cudaGetErrorString(err));
    devices.push_back({i, prop.name, prop.major, prop.minor, prop.totalGlobalMem});
  }
  return devices;
}

}  // namespace tandem
