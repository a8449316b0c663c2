// Launchers of the coordinator's CUDA kernels (the GPU backend's ops other than the GEMMs, which
// go through cuBLAS in linear.h). Plain types only, so both nvcc and the host compiler include
// this header. Every launcher enqueues on `stream` and returns at once; launch errors surface
// through cudaGetLastError / the next synchronisation, which the caller checks.
// Activations are f32 row-major; weights bf16 (uint16_t bit patterns) or f32.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

namespace tandem::cuda {

// A read-only matrix [rows x cols] on the device, row-major, bf16 or f32, with an optional bias.
struct DeviceMatrix {
  int64_t rows = 0;
  int64_t cols = 0;
  const uint16_t* bf16 = nullptr;  // exactly one of bf16 / f32 is set
  const float* f32 = nullptr;
  const float* bias = nullptr;     // [rows] or null
};

// out[t] = table[ids[t]] as f32, for t < num_tokens. ids are checked by the caller.
void LaunchEmbedding(const DeviceMatrix& table, const int32_t* ids, int64_t num_tokens,
                     float* out, cudaStream_t stream);

// For each of `rows` rows: out = x / sqrt(mean(x^2) + eps) * weight, over `dim` values; rows
// start every `x_stride` / `out_stride` floats (in place allowed when the strides are equal).
void LaunchRmsNorm(const float* x, int64_t x_stride, const float* weight, int64_t rows,
                   int64_t dim, float eps, float* out, int64_t out_stride, cudaStream_t stream);

// Positions of a step: the kernels that depend on them read the step's first position from
// device memory (`start`, one int32), so one captured CUDA graph serves every decode step.

// Rotary embedding in place. Token t (position *start + t) has `heads` heads of `head_stride`
// floats starting at x + t * row_stride; the first rotary_dim values of a head rotate, as
// adjacent pairs (interleaved) or as the two halves. cos/sin: [positions x rotary_dim / 2],
// the attention factor already applied.
void LaunchRope(float* x, int64_t num_tokens, int64_t row_stride, int64_t heads,
                int64_t head_stride, int64_t rotary_dim, bool interleaved, const int32_t* start,
                const float* cos, const float* sin, cudaStream_t stream);

// gate[i] = silu(gate[i]) * up[i].
void LaunchSiluMul(float* gate, const float* up, int64_t n, cudaStream_t stream);
// x[i] += y[i].
void LaunchAdd(float* x, const float* y, int64_t n, cudaStream_t stream);
// x[t * dim + d] = x[t * dim + d] * sigmoid(gate[t]) + y[t * dim + d]: Qwen2-MoE's gated shared
// expert added onto the routed experts' output `x`.
void LaunchAddSigmoidGated(float* x, const float* y, const float* gate, int64_t num_tokens,
                           int64_t dim, cudaStream_t stream);

// A paged attention cache pool: page p holds positions [p * page_size, (p + 1) * page_size) of
// whichever sequence owns it; `width` floats per position. A sequence's block table maps its
// logical page i to a pool page.
struct CachePool {
  float* data = nullptr;
  int64_t width = 0;
};

// Writes rows [0, num_tokens) of src (row stride src_stride, `width` floats each) to positions
// [*start, *start + num_tokens) of the sequence whose pages are `block_table`.
void LaunchWriteCache(const float* src, int64_t src_stride, int64_t width, int64_t num_tokens,
                      const int32_t* start, CachePool pool, int64_t page_size,
                      const int32_t* block_table, cudaStream_t stream);

// A slice of each cached position: floats [offset + kv_head * head_offset, ... + length).
struct CacheSlice {
  CachePool pool;
  int64_t head_offset = 0;
  int64_t length = 0;  // 0: unused
};

// Causal attention of num_tokens queries at positions [*start, *start + num_tokens) over the
// cache's positions [0, *start + t]. `positions` is the host's *start + num_tokens: it only picks
// how many ways the positions are split (AttentionSplits), so a graph captured at one value
// replays correctly at any other with the same split count. Query (t, h) is q[t * q_row_stride + h * q_head_stride ...]
// with key_a.length + key_b.length values; its key is the concatenation of the two cache slices
// and its value the `value` slice, of kv head h / (heads / kv_heads). Scores are scaled by
// `scale`; out[t * out_row_stride + h * value.length ...].
struct AttentionArgs {
  const float* q = nullptr;
  int64_t q_row_stride = 0, q_head_stride = 0;
  int64_t heads = 0, kv_heads = 0;
  CacheSlice key_a, key_b, value;
  int64_t page_size = 0;
  const int32_t* block_table = nullptr;
  int64_t num_tokens = 0;
  const int32_t* start = nullptr;  // device
  int64_t positions = 0;           // host: *start + num_tokens
  float scale = 1.0f;
  float* out = nullptr;
  int64_t out_row_stride = 0;
  // Scratch for splitting long position ranges across blocks (flash decoding): with room for
  // AttentionScratchFloats(...) floats, few queries over many positions are split into chunks
  // whose partial softmax sums are merged by a second kernel. Null: one block per query.
  float* scratch = nullptr;
  int64_t scratch_floats = 0;
};
// Scratch floats that let LaunchAttention split up to kMaxAttentionSplits ways.
constexpr int64_t kMaxAttentionSplits = 32;
inline int64_t AttentionScratchFloats(int64_t num_tokens, int64_t heads, int64_t value_len) {
  return num_tokens * heads * kMaxAttentionSplits * (value_len + 2);
}
// The largest value slice the kernel holds in registers.
constexpr int64_t kMaxAttentionValueDim = 1024;
// The largest query (key_a + key_b) the kernel stages in shared memory.
constexpr int64_t kMaxAttentionQueryDim = 2048;
// How many ways LaunchAttention splits the positions of `args` (1 without room in the scratch).
int64_t AttentionSplits(const AttentionArgs& args);
void LaunchAttention(const AttentionArgs& args, cudaStream_t stream);

// MoE routing of each token (the same scheme as coordinator/router.h's RouteToken): logits
// [num_tokens x num_experts] -> ids / weights [num_tokens x top_k].
struct RouterArgs {
  int64_t num_experts = 0, top_k = 0;
  bool sigmoid = false;        // scoring: sigmoid, else softmax
  int method = 0;              // 0 greedy, 1 group-limited greedy (V2), 2 noaux_tc (V3)
  int64_t n_group = 1, topk_group = 1;
  bool norm_topk_prob = false;
  double routed_scaling_factor = 1.0;
  const float* score_bias = nullptr;  // [num_experts] or null
};
constexpr int64_t kMaxRouterExperts = 512;
void LaunchRoute(const RouterArgs& args, const float* logits, int64_t num_tokens, int32_t* ids,
                 float* weights, cudaStream_t stream);

}  // namespace tandem::cuda
