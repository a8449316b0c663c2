// Dense products of the GPU backend: y[T x N] = x[T x K] * W^T (+ bias), W a DeviceMatrix in bf16
// or f32, x and y f32 on the device. Decode-sized inputs (T <= kGemvMaxTokens) stream the weights
// through a GEMV kernel with f32 activations. Larger ones go through cuBLAS: f32 weights with
// cublasSgemm (full f32; no TF32), bf16 weights with one bf16 tensor-core GEMM over the
// activations split into two bf16 halves (x = hi + lo, 16 mantissa bits: rounding the activations
// to plain bf16 moves these models' logits by 2.5-5e-2, measured on the fixtures), so both paths
// stay within f32-activation accuracy. All work is enqueued on the stream given at creation.
// One engine thread per instance.
#pragma once

#include <cublas_v2.h>

#include <memory>

#include "kernels/cuda/coordinator_kernels.h"
#include "kernels/cuda/device_buffer.h"

namespace tandem::cuda {

class CudaLinear {
 public:
  static absl::StatusOr<std::unique_ptr<CudaLinear>> Create(cudaStream_t stream);
  ~CudaLinear();
  CudaLinear(const CudaLinear&) = delete;
  CudaLinear& operator=(const CudaLinear&) = delete;

  absl::Status Run(const float* x, int64_t num_tokens, const DeviceMatrix& w, float* y);
  // Sizes the split-activation buffers for products up to [num_tokens x k] -> [num_tokens x n].
  absl::Status Reserve(int64_t num_tokens, int64_t k, int64_t n);

  // For each of `batch` problems b: C_b[M x N] = A_b[M x K] * B_b[K x N] (row-major f32, full
  // precision), with row strides lda / ldb / ldc and per-problem offsets stride_a / _b / _c;
  // `transpose_b`: B_b is stored as [N x K] (row stride ldb). MLA's per-head absorbed products.
  absl::Status BatchedF32(int64_t m, int64_t n, int64_t k, const float* a, int64_t lda,
                          int64_t stride_a, const float* b, int64_t ldb, int64_t stride_b,
                          bool transpose_b, float* c, int64_t ldc, int64_t stride_c,
                          int64_t batch);

 private:
  CudaLinear(cublasHandle_t handle, cudaStream_t stream) : handle_(handle), stream_(stream) {}

  cublasHandle_t handle_;
  cudaStream_t stream_;
  DeviceBuffer<uint16_t> split_;   // [2T x K] bf16 halves of x
  DeviceBuffer<float> split_out_;  // [2T x N]
  DeviceBuffer<uint8_t> workspace_;
};

}  // namespace tandem::cuda
