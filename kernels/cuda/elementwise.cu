// Row-wise and elementwise coordinator kernels: embedding, RMSNorm, RoPE, SiLU-mul, adds, the
// paged-cache writer. Contracts in coordinator_kernels.h.
#include <cuda_bf16.h>

#include "kernels/cuda/coordinator_kernels.h"

namespace tandem::cuda {
namespace {

constexpr int kThreads = 256;

__device__ inline float Bf16ToFloat(uint16_t bits) {
  return __uint_as_float(static_cast<uint32_t>(bits) << 16);
}

int64_t Blocks(int64_t n, int threads = kThreads) { return (n + threads - 1) / threads; }

// Sum of `v` over the block (every thread gets the result); `scratch` holds one value per warp.
template <typename T>
__device__ T BlockSum(T v, T* scratch) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  __syncthreads();  // scratch may still be read by a previous call
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  T total = 0;
  for (int w = 0; w < static_cast<int>(blockDim.x / 32); ++w) total += scratch[w];
  return total;
}

__global__ void EmbeddingKernel(DeviceMatrix table, const int32_t* ids, float* out) {
  const int64_t t = blockIdx.x, row = ids[t], cols = table.cols;
  for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) {
    out[t * cols + c] = table.bf16 ? Bf16ToFloat(table.bf16[row * cols + c])
                                   : table.f32[row * cols + c];
  }
}

// One block per row; the sum of squares in double, as the CPU engine computes it.
__global__ void RmsNormKernel(const float* x, int64_t x_stride, const float* weight, int64_t dim,
                              float eps, float* out, int64_t out_stride) {
  __shared__ double scratch[32];
  const float* row = x + blockIdx.x * x_stride;
  double sum_sq = 0;
  for (int64_t i = threadIdx.x; i < dim; i += blockDim.x) sum_sq += double(row[i]) * row[i];
  sum_sq = BlockSum(sum_sq, scratch);
  const float inv = static_cast<float>(1.0 / sqrt(sum_sq / dim + double(eps)));
  float* o = out + blockIdx.x * out_stride;
  for (int64_t i = threadIdx.x; i < dim; i += blockDim.x) o[i] = row[i] * inv * weight[i];
}

// One block per (token, head); threads over the rotary pairs.
__global__ void RopeKernel(float* x, int64_t row_stride, int64_t head_stride, int64_t half,
                           bool interleaved, const int32_t* start_at, const float* cos,
                           const float* sin) {
  const int64_t t = blockIdx.x, h = blockIdx.y, start = *start_at;
  float* head = x + t * row_stride + h * head_stride;
  const float* c = cos + (start + t) * half;
  const float* s = sin + (start + t) * half;
  for (int64_t i = threadIdx.x; i < half; i += blockDim.x) {
    float* a = interleaved ? head + 2 * i : head + i;
    float* b = interleaved ? head + 2 * i + 1 : head + i + half;
    const float a0 = *a, b0 = *b;
    *a = a0 * c[i] - b0 * s[i];
    *b = b0 * c[i] + a0 * s[i];
  }
}

__global__ void SiluMulKernel(float* gate, const float* up, int64_t n) {
  const int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (i < n) {
    const float g = gate[i];
    gate[i] = g / (1.0f + expf(-g)) * up[i];
  }
}

__global__ void AddKernel(float* x, const float* y, int64_t n) {
  const int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (i < n) x[i] += y[i];
}

__global__ void AddSigmoidGatedKernel(float* x, const float* y, const float* gate, int64_t dim,
                                      int64_t n) {
  const int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (i < n) x[i] += y[i] * (1.0f / (1.0f + expf(-gate[i / dim])));
}

__global__ void WriteCacheKernel(const float* src, int64_t src_stride, int64_t width,
                                 const int32_t* start, CachePool pool, int64_t page_size,
                                 const int32_t* block_table) {
  const int64_t t = blockIdx.x, pos = *start + t;
  float* dst = pool.data + (int64_t(block_table[pos / page_size]) * page_size + pos % page_size) *
                               pool.width;
  for (int64_t i = threadIdx.x; i < width; i += blockDim.x) dst[i] = src[t * src_stride + i];
}

}  // namespace

void LaunchEmbedding(const DeviceMatrix& table, const int32_t* ids, int64_t num_tokens,
                     float* out, cudaStream_t stream) {
  EmbeddingKernel<<<num_tokens, kThreads, 0, stream>>>(table, ids, out);
}

void LaunchRmsNorm(const float* x, int64_t x_stride, const float* weight, int64_t rows,
                   int64_t dim, float eps, float* out, int64_t out_stride, cudaStream_t stream) {
  RmsNormKernel<<<rows, kThreads, 0, stream>>>(x, x_stride, weight, dim, eps, out, out_stride);
}

void LaunchRope(float* x, int64_t num_tokens, int64_t row_stride, int64_t heads,
                int64_t head_stride, int64_t rotary_dim, bool interleaved, const int32_t* start,
                const float* cos, const float* sin, cudaStream_t stream) {
  const dim3 grid(num_tokens, heads);
  RopeKernel<<<grid, 64, 0, stream>>>(x, row_stride, head_stride, rotary_dim / 2, interleaved,
                                      start, cos, sin);
}

void LaunchSiluMul(float* gate, const float* up, int64_t n, cudaStream_t stream) {
  SiluMulKernel<<<Blocks(n), kThreads, 0, stream>>>(gate, up, n);
}

void LaunchAdd(float* x, const float* y, int64_t n, cudaStream_t stream) {
  AddKernel<<<Blocks(n), kThreads, 0, stream>>>(x, y, n);
}

void LaunchAddSigmoidGated(float* x, const float* y, const float* gate, int64_t num_tokens,
                           int64_t dim, cudaStream_t stream) {
  const int64_t n = num_tokens * dim;
  AddSigmoidGatedKernel<<<Blocks(n), kThreads, 0, stream>>>(x, y, gate, dim, n);
}

void LaunchWriteCache(const float* src, int64_t src_stride, int64_t width, int64_t num_tokens,
                      const int32_t* start, CachePool pool, int64_t page_size,
                      const int32_t* block_table, cudaStream_t stream) {
  WriteCacheKernel<<<num_tokens, 128, 0, stream>>>(src, src_stride, width, start, pool, page_size,
                                                   block_table);
}

}  // namespace tandem::cuda
