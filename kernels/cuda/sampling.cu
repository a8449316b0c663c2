// Kernels of LaunchSampleToken (sampling_kernels.h). The rule numbers below are those of
// coordinator/sampler.h.
#include <cub/device/device_radix_sort.cuh>

#include <cfloat>
#include <climits>

#include "kernels/cuda/sampling_kernels.h"

namespace tandem::cuda {
namespace {

constexpr int kThreads = 1024;  // one block does the argmax and the draw

// Rule 1, in two passes so an id that occurs twice in the history is penalised once: every
// occurrence reads the original logit before any writes it back.
__global__ void GatherPenalized(const float* logits, int64_t vocab, const int32_t* history,
                                int64_t n, double penalty, float* penalized) {
  const int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (i >= n) return;
  const int32_t id = history[i];
  if (id < 0 || id >= vocab) return;
  const float l = logits[id];
  penalized[i] = l > 0 ? static_cast<float>(l / penalty) : static_cast<float>(l * penalty);
}

__global__ void ScatterPenalized(float* logits, int64_t vocab, const int32_t* history, int64_t n,
                                 const float* penalized) {
  const int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (i >= n) return;
  const int32_t id = history[i];
  if (id >= 0 && id < vocab) logits[id] = penalized[i];
}

// Whether (value b, id b) beats (value a, id a): larger, or equal with the lower id (rule 2).
__device__ bool Beats(float a, int32_t a_id, float b, int32_t b_id) {
  if (a_id < 0) return b_id >= 0;
  if (b_id < 0) return false;
  return b > a || (b == a && b_id < a_id);
}

// Rule 2: the largest logit, the lowest id among equal ones.
__global__ void Argmax(const float* logits, int64_t vocab, int32_t* token) {
  __shared__ float best[kThreads];
  __shared__ int32_t best_id[kThreads];
  float v = -FLT_MAX;
  int32_t id = -1;
  for (int64_t i = threadIdx.x; i < vocab; i += kThreads) {
    if (Beats(v, id, logits[i], static_cast<int32_t>(i))) {
      v = logits[i];
      id = static_cast<int32_t>(i);
    }
  }
  best[threadIdx.x] = v;
  best_id[threadIdx.x] = id;
  __syncthreads();
  for (int stride = kThreads / 2; stride > 0; stride /= 2) {
    if (threadIdx.x < stride &&
        Beats(best[threadIdx.x], best_id[threadIdx.x], best[threadIdx.x + stride],
              best_id[threadIdx.x + stride])) {
      best[threadIdx.x] = best[threadIdx.x + stride];
      best_id[threadIdx.x] = best_id[threadIdx.x + stride];
    }
    __syncthreads();
  }
  if (threadIdx.x == 0) *token = best_id[0];
}

// Sort keys for rule 3: -0 becomes +0 so the radix sort ranks them equal, ids in order so the
// stable sort keeps equal logits lowest id first.
__global__ void SortKeys(const float* logits, int64_t vocab, float* keys, int32_t* ids) {
  const int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (i >= vocab) return;
  const float l = logits[i];
  keys[i] = l == 0.0f ? 0.0f : l;
  ids[i] = static_cast<int32_t>(i);
}

// Rules 3-7 over the sorted candidates, in one block: thread t owns a contiguous chunk of them,
// so the running sums C_i are a block scan of the chunks' sums plus a walk within the chunk.
__global__ void DrawSorted(const float* keys, const int32_t* ids, SampleKernelArgs a, double* mass,
                           int32_t* token) {
  __shared__ double scan[kThreads];
  __shared__ int cut_p, cut_m, chosen;
  __shared__ double kept_total;
  const int64_t top_k = a.top_k > 0 && a.top_k < a.vocab ? a.top_k : a.vocab;
  const int64_t chunk = (top_k + kThreads - 1) / kThreads;
  const int64_t begin = threadIdx.x * chunk;
  const int64_t end = begin + chunk < top_k ? begin + chunk : top_k;
  const double best = keys[0];
  double local = 0;
  for (int64_t i = begin; i < end; ++i) {  // rule 4
    mass[i] = exp((static_cast<double>(keys[i]) - best) / a.temperature);
    local += mass[i];
  }
  scan[threadIdx.x] = local;
  if (threadIdx.x == 0) {
    cut_p = static_cast<int>(top_k);
    cut_m = static_cast<int>(top_k);
  }
  __syncthreads();
  for (int stride = 1; stride < kThreads; stride *= 2) {  // inclusive scan of the chunk sums
    const double add = threadIdx.x >= stride ? scan[threadIdx.x - stride] : 0.0;
    __syncthreads();
    scan[threadIdx.x] += add;
    __syncthreads();
  }
  const double before = scan[threadIdx.x] - local;  // C of the element before the chunk
  if (a.top_p < 1.0) {  // rule 5
    const double nucleus = a.top_p * scan[kThreads - 1];
    double c = before;
    for (int64_t i = begin; i < end; ++i) {
      c += mass[i];
      if (c >= nucleus) {
        atomicMin(&cut_p, static_cast<int>(i + 1));
        break;
      }
    }
  }
  if (a.min_p > 0) {  // rule 6: the masses fall along the order, so the first below min_p cuts
    for (int64_t i = begin > 1 ? begin : 1; i < end; ++i) {
      if (mass[i] < a.min_p) {
        atomicMin(&cut_m, static_cast<int>(i));
        break;
      }
    }
  }
  __syncthreads();
  const int64_t keep = cut_p < cut_m ? cut_p : cut_m;
  if (threadIdx.x == 0) chosen = static_cast<int>(keep - 1);
  double c = before;
  for (int64_t i = begin; i < end; ++i) {  // C of the last kept candidate
    c += mass[i];
    if (i == keep - 1) kept_total = c;
  }
  __syncthreads();
  const double target = a.u * kept_total;  // rule 7
  c = before;
  for (int64_t i = begin; i < end && i < keep; ++i) {
    c += mass[i];
    if (c > target) {
      atomicMin(&chosen, static_cast<int>(i));
      break;
    }
  }
  __syncthreads();
  if (threadIdx.x == 0) *token = ids[chosen];
}

int Blocks(int64_t n, int threads) { return static_cast<int>((n + threads - 1) / threads); }

}  // namespace

size_t SampleSortTempBytes(int64_t vocab) {
  size_t bytes = 0;
  cub::DeviceRadixSort::SortPairsDescending(nullptr, bytes, static_cast<const float*>(nullptr),
                                            static_cast<float*>(nullptr),
                                            static_cast<const int32_t*>(nullptr),
                                            static_cast<int32_t*>(nullptr), vocab);
  return bytes;
}

cudaError_t LaunchSampleToken(const SampleKernelArgs& a, const SampleWorkspace& w,
                              cudaStream_t stream) {
  if (a.repetition_penalty != 1.0 && a.history_len > 0) {
    GatherPenalized<<<Blocks(a.history_len, 256), 256, 0, stream>>>(
        w.logits, a.vocab, a.history, a.history_len, a.repetition_penalty, w.penalized);
    ScatterPenalized<<<Blocks(a.history_len, 256), 256, 0, stream>>>(
        w.logits, a.vocab, a.history, a.history_len, w.penalized);
  }
  if (a.temperature == 0.0) {
    Argmax<<<1, kThreads, 0, stream>>>(w.logits, a.vocab, w.token);
    return cudaGetLastError();
  }
  SortKeys<<<Blocks(a.vocab, 256), 256, 0, stream>>>(w.logits, a.vocab, w.keys, w.ids);
  size_t temp_bytes = w.sort_temp_bytes;
  const cudaError_t sorted = cub::DeviceRadixSort::SortPairsDescending(
      w.sort_temp, temp_bytes, w.keys, w.sorted_keys, w.ids, w.sorted_ids, a.vocab, 0,
      static_cast<int>(sizeof(float) * 8), stream);
  if (sorted != cudaSuccess) return sorted;
  DrawSorted<<<1, kThreads, 0, stream>>>(w.sorted_keys, w.sorted_ids, a, w.mass, w.token);
  return cudaGetLastError();
}

}  // namespace tandem::cuda
