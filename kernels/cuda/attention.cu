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

// Block (t, h, split): the positions of chunk `split` (all of them when gridDim.z == 1). With one
// split it writes the output; with more, its partial max, sum and unnormalised values to
// a.scratch at [((t * heads + h) * splits + split) * (vlen + 2)], for MergeSplitsKernel.
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
  const int64_t start = *a.start, visible = start + t + 1;
  const int64_t chunk = (start + a.num_tokens + gridDim.z - 1) / gridDim.z;
  const int64_t first = blockIdx.z * chunk;
  const int64_t last = min(visible, first + chunk);
  for (int64_t pos = first + warp; pos < last; pos += kWarps) {
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
  if (gridDim.z == 1) {
    float* out = a.out + t * a.out_row_stride + h * vlen;
    for (int64_t i = threadIdx.x; i < vlen; i += blockDim.x) {
      float v = 0.0f;
      for (int w = 0; w < kWarps; ++w) v += warp_acc[w * vlen + i] * weight[w];
      out[i] = v / total_sum;
    }
    return;
  }
  float* part = a.scratch + ((t * a.heads + h) * gridDim.z + blockIdx.z) * (vlen + 2);
  if (threadIdx.x == 0) {
    part[0] = total_max;  // -inf for a chunk past this query's last position
    part[1] = total_sum;
  }
  for (int64_t i = threadIdx.x; i < vlen; i += blockDim.x) {
    float v = 0.0f;
    for (int w = 0; w < kWarps; ++w) v += warp_acc[w * vlen + i] * weight[w];
    part[2 + i] = v;
  }
}

// Block (t, h): merges the splits' partial sums of query (t, h) into the output.
__global__ void MergeSplitsKernel(AttentionArgs a, int splits) {
  const int64_t t = blockIdx.x, h = blockIdx.y, vlen = a.value.length;
  const float* parts = a.scratch + (t * a.heads + h) * splits * (vlen + 2);
  float total_max = -INFINITY;
  for (int s = 0; s < splits; ++s) total_max = fmaxf(total_max, parts[s * (vlen + 2)]);
  float total_sum = 0.0f;
  for (int s = 0; s < splits; ++s) {
    const float* p = parts + s * (vlen + 2);
    if (p[1] > 0.0f) total_sum += p[1] * expf(p[0] - total_max);
  }
  float* out = a.out + t * a.out_row_stride + h * vlen;
  for (int64_t i = threadIdx.x; i < vlen; i += blockDim.x) {
    float v = 0.0f;
    for (int s = 0; s < splits; ++s) {
      const float* p = parts + s * (vlen + 2);
      if (p[1] > 0.0f) v += p[2 + i] * expf(p[0] - total_max);
    }
    out[i] = v / total_sum;
  }
}

}  // namespace

int64_t AttentionSplits(const AttentionArgs& args) {
  // Split the positions when the queries alone would leave most multiprocessors idle and each
  // chunk still gets >= 256 positions (a chunk per ~2 warps' worth of work would cost more in
  // merging than it saves).
  const int64_t blocks = args.num_tokens * args.heads;
  int64_t splits = 1;
  if (args.scratch != nullptr &&
      args.scratch_floats >= AttentionScratchFloats(args.num_tokens, args.heads,
                                                    args.value.length)) {
    while (splits < kMaxAttentionSplits && blocks * splits < 264 &&
           args.positions / (splits * 2) >= 256)
      splits *= 2;
  }
  return splits;
}

void LaunchAttention(const AttentionArgs& args, cudaStream_t stream) {
  const int64_t qlen = args.key_a.length + args.key_b.length;
  const size_t shared_bytes = (qlen + 2 * kWarps + kWarps * args.value.length) * sizeof(float);
  const int64_t splits = AttentionSplits(args);
  const dim3 grid(args.num_tokens, args.heads, splits);
  AttentionKernel<<<grid, kWarps * 32, shared_bytes, stream>>>(args);
  if (splits > 1) {
    MergeSplitsKernel<<<dim3(args.num_tokens, args.heads), 128, 0, stream>>>(
        args, static_cast<int>(splits));
  }
}

}  // namespace tandem::cuda
