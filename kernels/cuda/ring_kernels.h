// Kernels of the GPU -> worker handoff (coordinator/cuda/ring_handoff.h): the GPU writes a MoE
// call straight into every worker's shared-memory ring slot (registered with cudaHostRegister and
// mapped into the GPU's address space), publishes it, and after the wait sums the workers'
// partial results straight out of the slots. Plain types only (nvcc and the host compiler both
// include this); the byte offsets inside a slot's request and response lines mirror
// common/shm_ring_layout.h, which ring_handoff.cc checks with static_asserts.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

namespace tandem::cuda {

constexpr int kMaxRingWorkers = 16;

// Offsets inside RingRequestLine / RingResponseLine (layout version 2).
constexpr int kRingRequestSeq = 0, kRingRequestFlags = 12, kRingRequestLayer = 16,
              kRingRequestTokens = 20, kRingRequestTopK = 24;
constexpr int kRingResponseSeq = 0, kRingResponseStatus = 12, kRingResponseErrorLen = 16,
              kRingResponseDoneFlag = 20;
constexpr int kRingErrorBytes = 512;  // kRingErrorTextBytes

// One request's slot in each worker's ring (device addresses; every ring has the same layout).
struct RingSlots {
  int count = 0;
  uint8_t* slot[kMaxRingWorkers] = {};
  uint64_t request_line = 0, response_line = 0, error_text = 0;  // offsets in a slot
  uint64_t hidden = 0, expert_ids = 0, weights = 0, result = 0;
};

// The first error a step met, written by the gather kernel (or the host) into mapped memory.
struct RingStepError {
  int32_t code = 0;     // 0: none; an absl::StatusCode from the worker; -1: wrong response seq
  int32_t worker = 0;
  int64_t index = 0;    // the call's position in the step
  uint64_t expected_seq = 0, seen_seq = 0;
  uint32_t text_len = 0;
  char text[kRingErrorBytes] = {};
};

// Host-mapped control block of a step: the host writes each ring's first sequence number before
// the step runs; call i of the step is sequence number base_seq[w] + i on ring w.
struct RingStepControl {
  uint64_t base_seq[kMaxRingWorkers] = {};
  RingStepError error;
};

// Copies hidden [n_hidden floats], ids and weights [n_route each] into every slot's areas.
void LaunchRingStage(const RingSlots& slots, const float* hidden, int64_t n_hidden,
                     const int32_t* ids, const float* weights, int64_t n_route,
                     cudaStream_t stream);
// Writes each slot's request header, clears its response done flag, then publishes sequence
// number control->base_seq[w] + index (system-scope fences in between).
void LaunchRingPublish(const RingSlots& slots, const RingStepControl* control, int64_t index,
                       int32_t layer, uint32_t num_tokens, uint32_t top_k, uint32_t flags,
                       cudaStream_t stream);
// Once every worker answered: out[i] = sum over workers of slot result[i], for i < n; a response
// with the wrong sequence number or an error status is recorded in control->error (first only).
void LaunchRingGather(const RingSlots& slots, RingStepControl* control, int64_t index, float* out,
                      int64_t n, cudaStream_t stream);

}  // namespace tandem::cuda
