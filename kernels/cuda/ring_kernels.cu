// The handoff kernels; contract in ring_kernels.h. The slots live in host memory: writes are
// followed by __threadfence_system() so the worker sees the payload before the sequence number,
// and reads bypass the caches (__ldcv / volatile) so a replayed graph never sees an old result.
#include "kernels/cuda/ring_kernels.h"

namespace tandem::cuda {
namespace {

constexpr int kThreads = 256;

template <typename T>
__device__ inline T* At(uint8_t* base, uint64_t offset) {
  return reinterpret_cast<T*>(base + offset);
}

__global__ void RingStageKernel(RingSlots s, const float* hidden, int64_t n_hidden,
                                const int32_t* ids, const float* weights, int64_t n_route) {
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n_hidden; i += stride) {
    const float v = hidden[i];
    for (int w = 0; w < s.count; ++w) At<float>(s.slot[w], s.hidden)[i] = v;
  }
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n_route; i += stride) {
    const int32_t id = ids[i];
    const float weight = weights[i];
    for (int w = 0; w < s.count; ++w) {
      At<int32_t>(s.slot[w], s.expert_ids)[i] = id;
      At<float>(s.slot[w], s.weights)[i] = weight;
    }
  }
  __threadfence_system();
}

__global__ void RingPublishKernel(RingSlots s, const RingStepControl* control, int64_t index,
                                  int32_t layer, uint32_t num_tokens, uint32_t top_k,
                                  uint32_t flags) {
  const int w = threadIdx.x;
  if (w >= s.count) return;
  uint8_t* request = s.slot[w] + s.request_line;
  uint8_t* response = s.slot[w] + s.response_line;
  *reinterpret_cast<volatile uint32_t*>(response + kRingResponseDoneFlag) = 0;
  *reinterpret_cast<volatile uint32_t*>(request + kRingRequestFlags) = flags;
  *reinterpret_cast<volatile int32_t*>(request + kRingRequestLayer) = layer;
  *reinterpret_cast<volatile uint32_t*>(request + kRingRequestTokens) = num_tokens;
  *reinterpret_cast<volatile uint32_t*>(request + kRingRequestTopK) = top_k;
  __threadfence_system();
  const uint64_t seq = *reinterpret_cast<const volatile uint64_t*>(&control->base_seq[w]) + index;
  *reinterpret_cast<volatile uint64_t*>(request + kRingRequestSeq) = seq;
  __threadfence_system();
}

__device__ void RecordError(const RingSlots& s, RingStepControl* control, int64_t index) {
  volatile RingStepError* error = &control->error;
  for (int w = 0; w < s.count; ++w) {
    const uint8_t* response = s.slot[w] + s.response_line;
    const uint64_t expected =
        *reinterpret_cast<const volatile uint64_t*>(&control->base_seq[w]) + index;
    const uint64_t seen = *reinterpret_cast<const volatile uint64_t*>(response + kRingResponseSeq);
    const int32_t code = *reinterpret_cast<const volatile int32_t*>(response + kRingResponseStatus);
    if ((seen == expected && code == 0) || error->code != 0) continue;
    uint32_t len = 0;
    if (seen == expected) {
      len = *reinterpret_cast<const volatile uint32_t*>(response + kRingResponseErrorLen);
      len = len < kRingErrorBytes ? len : kRingErrorBytes;
      const volatile char* text =
          reinterpret_cast<const volatile char*>(s.slot[w] + s.error_text);
      for (uint32_t i = 0; i < len; ++i) error->text[i] = text[i];
    }
    error->text_len = len;
    error->worker = w;
    error->index = index;
    error->expected_seq = expected;
    error->seen_seq = seen;
    __threadfence_system();
    error->code = seen == expected ? code : -1;
    __threadfence_system();
  }
}

__global__ void RingGatherKernel(RingSlots s, RingStepControl* control, int64_t index, float* out,
                                 int64_t n) {
  if (blockIdx.x == 0 && threadIdx.x == 0) RecordError(s, control, index);
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += stride) {
    float sum = 0.0f;
    for (int w = 0; w < s.count; ++w) sum += __ldcv(At<const float>(s.slot[w], s.result) + i);
    out[i] = sum;
  }
}

int Blocks(int64_t n) {
  const int64_t blocks = (n + kThreads - 1) / kThreads;
  return static_cast<int>(blocks < 1 ? 1 : blocks > 264 ? 264 : blocks);
}

}  // namespace

void LaunchRingStage(const RingSlots& slots, const float* hidden, int64_t n_hidden,
                     const int32_t* ids, const float* weights, int64_t n_route,
                     cudaStream_t stream) {
  RingStageKernel<<<Blocks(n_hidden > n_route ? n_hidden : n_route), kThreads, 0, stream>>>(
      slots, hidden, n_hidden, ids, weights, n_route);
}

void LaunchRingPublish(const RingSlots& slots, const RingStepControl* control, int64_t index,
                       int32_t layer, uint32_t num_tokens, uint32_t top_k, uint32_t flags,
                       cudaStream_t stream) {
  RingPublishKernel<<<1, 32, 0, stream>>>(slots, control, index, layer, num_tokens, top_k, flags);
}

void LaunchRingGather(const RingSlots& slots, RingStepControl* control, int64_t index, float* out,
                      int64_t n, cudaStream_t stream) {
  RingGatherKernel<<<Blocks(n), kThreads, 0, stream>>>(slots, control, index, out, n);
}

}  // namespace tandem::cuda
