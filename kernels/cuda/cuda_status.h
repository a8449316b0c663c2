// CUDA runtime and cuBLAS results as absl::Status, for the GPU backend's host code (never
// included by .cu files, which return plain CUDA types).
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include <string_view>

#include "common/status.h"

namespace tandem::cuda {

inline absl::Status CudaStatus(cudaError_t err, const char* what) {
  if (err == cudaSuccess) return absl::OkStatus();
  return absl::InternalError(absl::StrCat(what, ": CUDA error ", cudaGetErrorName(err), " (",
                                          cudaGetErrorString(err), ")"));
}

inline absl::Status CublasStatus(cublasStatus_t err, const char* what) {
  if (err == CUBLAS_STATUS_SUCCESS) return absl::OkStatus();
  return absl::InternalError(absl::StrCat(what, ": cuBLAS error ", cublasGetStatusName(err), " (",
                                          cublasGetStatusString(err), ")"));
}

// The error of the last kernel launch on this thread, if any.
inline absl::Status LaunchStatus(const char* what) {
  return CudaStatus(cudaGetLastError(), what);
}

}  // namespace tandem::cuda

#define TANDEM_CUDA_RETURN_IF_ERROR(expr, what) \
  TANDEM_RETURN_IF_ERROR(::tandem::cuda::CudaStatus((expr), (what)))
#define TANDEM_CUBLAS_RETURN_IF_ERROR(expr, what) \
  TANDEM_RETURN_IF_ERROR(::tandem::cuda::CublasStatus((expr), (what)))
