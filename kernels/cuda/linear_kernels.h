// Kernels behind CudaLinear (linear.h). Plain types: included by nvcc and the host compiler.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "kernels/cuda/coordinator_kernels.h"

namespace tandem::cuda {

// Up to this many tokens a product runs as a weight-streaming GEMV with f32 activations.
constexpr int64_t kGemvMaxTokens = 4;

// y[t * N + n] = sum_k x[t * K + k] * W[n, k] (+ bias[n]) for t < num_tokens <= kGemvMaxTokens.
void LaunchGemv(const float* x, int64_t num_tokens, const DeviceMatrix& w, float* y,
                cudaStream_t stream);

// Splits each f32 value into two bf16 values whose sum carries 16 mantissa bits:
// out[i] = bf16(x[i]), out[n + i] = bf16(x[i] - out[i]).
void LaunchSplitToBf16(const float* x, int64_t n, uint16_t* out, cudaStream_t stream);

// y[t * N + n] = c[t * N + n] + c[(T + t) * N + n] (+ bias[n]): the two halves of a split product.
void LaunchCombineSplit(const float* c, int64_t num_tokens, int64_t n_cols, const float* bias,
                        float* y, cudaStream_t stream);

// y[t * N + n] += bias[n].
void LaunchAddBias(float* y, int64_t num_tokens, int64_t n_cols, const float* bias,
                   cudaStream_t stream);

}  // namespace tandem::cuda
