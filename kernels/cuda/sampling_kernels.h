// Token sampling on the GPU: the draw that coordinator/sampler.h defines (SampleToken), rule for
// rule, over one position's logits in device memory, so only the chosen id leaves the GPU.
// Plain types only (included by nvcc and the host compiler). The caller owns the workspace.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

namespace tandem::cuda {

struct SampleKernelArgs {
  int64_t vocab = 0;
  double temperature = 0;  // 0: greedy
  double top_p = 1;
  int64_t top_k = 0;       // 0: off
  double min_p = 0;
  double u = 0;            // the draw's uniform number in [0, 1)
  double repetition_penalty = 1;
  const int32_t* history = nullptr;  // device ids of the prompt and the generated tokens
  int64_t history_len = 0;
};

// Device memory one draw works in. `logits` [vocab] is modified in place (the penalty).
struct SampleWorkspace {
  float* logits = nullptr;
  float* penalized = nullptr;              // [history_len]
  float* keys = nullptr, * sorted_keys = nullptr;    // [vocab]
  int32_t* ids = nullptr, * sorted_ids = nullptr;    // [vocab]
  double* mass = nullptr;                  // [vocab]
  void* sort_temp = nullptr;
  size_t sort_temp_bytes = 0;              // at least SampleSortTempBytes(vocab)
  int32_t* token = nullptr;                // the chosen id (one int32)
};

// Scratch bytes the candidate sort needs for a vocabulary of `vocab` ids.
size_t SampleSortTempBytes(int64_t vocab);

// Enqueues the draw on `stream`; the chosen id lands in *workspace.token. Returns the first
// launch error.
cudaError_t LaunchSampleToken(const SampleKernelArgs& args, const SampleWorkspace& workspace,
                              cudaStream_t stream);

}  // namespace tandem::cuda
