// Causal attention over a paged cache, one kernel for GQA (key and value: a kv head's slice of
// the key / value pools) and for absorbed MLA (key: the latent plus the rope key, value: the
// latent). One block per (token, head); each warp walks a strided subset of the visible
// positions with an online softmax, and the warps' partial sums are merged at the end. Contract
// in coordinator_kernels.h.
#include <cmath>

#include "kernels/cuda/coordinator_kernels.h"

namespace tandem::cuda {
namespace {

constexpr int kWarps = 8;
constexpr int kValuesPerLane = static_cast<int>(kMaxAttentionValueDim / 32);

__device__ inline const float* PositionRow(const CacheSlice& s, const int32_t* table,
                                           int64_t page_size, int64_t pos, int64_t kv_head) {
  const int64_t slot = int64_t(table[pos / page_size]) * page_size + pos % page_size;
  return s.pool.data + slot * s.pool.width + kv_head * s.head_offset;
}

__device__ inline float WarpSum(float v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

__global__ void __launch_bounds__(kWarps * 32) AttentionKernel(AttentionArgs a) {
  extern __shared__ float shared[];
  const int64_t t = blockIdx.x, h = blockIdx.y;
  const int64_t group = a.heads / a.kv_heads, kv_head = h / group;
  const int64_t len_a = a.key_a.length, len_b = a.key_b.length, qlen = len_a + len_b;
  const int64_t vlen = a.value.length;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  // Shared memory: the query, then per warp its running max, sum and value accumulator.
  float* q = shared;
  float* warp_max = q + qlen;
  float* warp_sum = warp_max + kWarps;
  float* warp_acc = warp_sum + kWarps;  // [kWarps x vlen]
  const float* qsrc = a.q + t * a.q_row_stride + h * a.q_head_stride;
  for (int64_t i = threadIdx.x; i < qlen; i += blockDim.x) q[i] = qsrc[i];
  __syncthreads();

  float m = -INFINITY, l = 0.0f, acc[kValuesPerLane];
#pragma unroll
  for (int j = 0; j < kValuesPerLane; ++j) acc[j] = 0.0f;
  const int64_t visible = a.start + t + 1;
  for (int64_t pos = warp; pos < visible; pos += kWarps) {
    const float* ka = PositionRow(a.key_a, a.block_table, a.page_size, pos, kv_head);
    float dot = 0.0f;
    for (int64_t i = lane; i < len_a; i += 32) dot += q[i] * ka[i];
    if (len_b > 0) {
      const float* kb = PositionRow(a.key_b, a.block_table, a.page_size, pos, kv_head);
      for (int64_t i = lane; i < len_b; i += 32) dot += q[len_a + i] * kb[i];
    }
    const float score = WarpSum(dot) * a.scale;
    const float m_new = fmaxf(m, score);
    const float correction = expf(m - m_new), p = expf(score - m_new);
    l = l * correction + p;
    const float* v = PositionRow(a.value, a.block_table, a.page_size, pos, kv_head);
#pragma unroll
    for (int j = 0; j < kValuesPerLane; ++j) {
      const int64_t i = j * 32 + lane;
      if (i < vlen) acc[j] = acc[j] * correction + p * v[i];
    }
    m = m_new;
  }
  if (lane == 0) {
    warp_max[warp] = m;
    warp_sum[warp] = l;
  }
#pragma unroll
  for (int j = 0; j < kValuesPerLane; ++j) {
    const int64_t i = j * 32 + lane;
    if (i < vlen) warp_acc[warp * vlen + i] = acc[j];
  }
  __syncthreads();
  float total_max = -INFINITY;
  for (int w = 0; w < kWarps; ++w) total_max = fmaxf(total_max, warp_max[w]);
  float total_sum = 0.0f, weight[kWarps];
  for (int w = 0; w < kWarps; ++w) {
    weight[w] = warp_sum[w] > 0.0f ? expf(warp_max[w] - total_max) : 0.0f;
    total_sum += warp_sum[w] * weight[w];
  }
  float* out = a.out + t * a.out_row_stride + h * vlen;
  for (int64_t i = threadIdx.x; i < vlen; i += blockDim.x) {
    float v = 0.0f;
    for (int w = 0; w < kWarps; ++w) v += warp_acc[w * vlen + i] * weight[w];
    out[i] = v / total_sum;
  }
}

}  // namespace

void LaunchAttention(const AttentionArgs& args, cudaStream_t stream) {
  const int64_t qlen = args.key_a.length + args.key_b.length;
  const size_t shared_bytes = (qlen + 2 * kWarps + kWarps * args.value.length) * sizeof(float);
  const dim3 grid(args.num_tokens, args.heads);
  AttentionKernel<<<grid, kWarps * 32, shared_bytes, stream>>>(args);
}

}  // namespace tandem::cuda
