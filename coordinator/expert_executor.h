// The one interface through which the engine runs routed experts. Implementations: in-process
// (this process's threads, over weights it loaded itself) and, later, remote NUMA workers over
// shared-memory rings. Each implementation loads the routed experts itself (weights never travel
// through the engine). Called only from the engine's thread.
#pragma once

#include <cstdint>
#include <string>

#include "common/status.h"

namespace tandem {

// One MoE call: T tokens of one decoder layer, each with its top-k experts and routing weights.
struct MoeBatch {
  int32_t layer = 0;         // decoder layer index (must be a MoE layer)
  int64_t num_tokens = 0;    // T
  int64_t top_k = 0;         // k
  const float* hidden = nullptr;         // [T x hidden_size]
  const int32_t* expert_ids = nullptr;   // [T x k], each in [0, num_experts)
  const float* weights = nullptr;        // [T x k] routing weights (already scaled)
};

class ExpertExecutor {
 public:
  virtual ~ExpertExecutor() = default;
  // out[T x hidden_size] = sum over (t, j) of weights[t, j] * expert_{ids[t, j]}(hidden[t]).
  // `out` is overwritten. Bad ids or an unknown layer are InvalidArgument, never a crash.
  virtual absl::Status Run(const MoeBatch& batch, float* out) = 0;
  // One line for logs, e.g. "in-process (8 threads)".
  virtual std::string Describe() const = 0;
};

}  // namespace tandem
