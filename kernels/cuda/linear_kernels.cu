#include <cuda_bf16.h>

#include "kernels/cuda/linear_kernels.h"

namespace tandem::cuda {
namespace {

constexpr int kWarpsPerBlock = 8;

__device__ inline float Bf16ToFloat(uint16_t bits) {
  return __uint_as_float(static_cast<uint32_t>(bits) << 16);
}

// One warp per output row; the row streams through in 16-byte loads when the shape allows it.
template <int kTokens>
__global__ void GemvKernel(const float* x, DeviceMatrix w, float* y) {
  const int64_t n = blockIdx.x * int64_t(kWarpsPerBlock) + threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  if (n >= w.rows) return;
  const int64_t k_len = w.cols;
  float acc[kTokens] = {};
  if (w.bf16) {
    const uint16_t* row = w.bf16 + n * k_len;
    int64_t k0 = 0;
    if (k_len % 8 == 0) {
      const uint4* row8 = reinterpret_cast<const uint4*>(row);
      for (int64_t c = lane; c < k_len / 8; c += 32) {
        const uint4 packed = row8[c];
        const uint32_t words[4] = {packed.x, packed.y, packed.z, packed.w};
        float wv[8];
#pragma unroll
        for (int i = 0; i < 4; ++i) {
          wv[2 * i] = __uint_as_float(words[i] << 16);
          wv[2 * i + 1] = __uint_as_float(words[i] & 0xffff0000u);
        }
#pragma unroll
        for (int t = 0; t < kTokens; ++t) {
          const float4* xv = reinterpret_cast<const float4*>(x + t * k_len + c * 8);
          const float4 a = xv[0], b = xv[1];
          acc[t] += wv[0] * a.x + wv[1] * a.y + wv[2] * a.z + wv[3] * a.w + wv[4] * b.x +
                    wv[5] * b.y + wv[6] * b.z + wv[7] * b.w;
        }
      }
      k0 = k_len;
    }
    for (int64_t k = k0 + lane; k < k_len; k += 32) {
      const float wk = Bf16ToFloat(row[k]);
#pragma unroll
      for (int t = 0; t < kTokens; ++t) acc[t] += wk * x[t * k_len + k];
    }
  } else {
    const float* row = w.f32 + n * k_len;
    for (int64_t k = lane; k < k_len; k += 32) {
      const float wk = row[k];
#pragma unroll
      for (int t = 0; t < kTokens; ++t) acc[t] += wk * x[t * k_len + k];
    }
  }
#pragma unroll
  for (int t = 0; t < kTokens; ++t) {
    float v = acc[t];
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    if (lane == 0) y[t * w.rows + n] = v + (w.bias ? w.bias[n] : 0.0f);
  }
}

__global__ void SplitToBf16Kernel(const float* x, int64_t n, __nv_bfloat16* out) {
  const int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (i >= n) return;
  const __nv_bfloat16 hi = __float2bfloat16_rn(x[i]);
  out[i] = hi;
  out[n + i] = __float2bfloat16_rn(x[i] - __bfloat162float(hi));
}

__global__ void CombineSplitKernel(const float* c, int64_t num_tokens, int64_t n_cols,
                                   const float* bias, float* y) {
  const int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (i >= num_tokens * n_cols) return;
  y[i] = c[i] + c[num_tokens * n_cols + i] + (bias ? bias[i % n_cols] : 0.0f);
}

__global__ void AddBiasKernel(float* y, int64_t n, int64_t n_cols, const float* bias) {
  const int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (i < n) y[i] += bias[i % n_cols];
}

int64_t Blocks(int64_t n) { return (n + 255) / 256; }

}  // namespace

void LaunchGemv(const float* x, int64_t num_tokens, const DeviceMatrix& w, float* y,
                cudaStream_t stream) {
  const int64_t blocks = (w.rows + kWarpsPerBlock - 1) / kWarpsPerBlock;
  const int threads = kWarpsPerBlock * 32;
  switch (num_tokens) {
    case 1: GemvKernel<1><<<blocks, threads, 0, stream>>>(x, w, y); break;
    case 2: GemvKernel<2><<<blocks, threads, 0, stream>>>(x, w, y); break;
    case 3: GemvKernel<3><<<blocks, threads, 0, stream>>>(x, w, y); break;
    default: GemvKernel<4><<<blocks, threads, 0, stream>>>(x, w, y); break;
  }
}

void LaunchSplitToBf16(const float* x, int64_t n, uint16_t* out, cudaStream_t stream) {
  SplitToBf16Kernel<<<Blocks(n), 256, 0, stream>>>(x, n, reinterpret_cast<__nv_bfloat16*>(out));
}

void LaunchCombineSplit(const float* c, int64_t num_tokens, int64_t n_cols, const float* bias,
                        float* y, cudaStream_t stream) {
  CombineSplitKernel<<<Blocks(num_tokens * n_cols), 256, 0, stream>>>(c, num_tokens, n_cols, bias,
                                                                      y);
}

void LaunchAddBias(float* y, int64_t num_tokens, int64_t n_cols, const float* bias,
                   cudaStream_t stream) {
  AddBiasKernel<<<Blocks(num_tokens * n_cols), 256, 0, stream>>>(y, num_tokens * n_cols, n_cols,
                                                                 bias);
}

}  // namespace tandem::cuda
