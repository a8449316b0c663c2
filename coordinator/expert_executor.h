// The one interface through which the engine runs routed experts. Implementations: in-process
// (this process's threads, over weights it loaded itself) and, later, remote NUMA workers over
// shared-memory rings. Each implementation loads the routed experts itself (weights never travel
// through the engine). Called from one thread at a time: the engine's, or, under the GPU engine,
// the thread serving its in-process ring (coordinator/local_ring.h) while the engine waits.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "absl/time/time.h"
#include "common/status.h"

namespace tandem {

class RingRegion;
class RingProducer;

// One MoE call: T tokens of one decoder layer, each with its top-k experts and routing weights.
struct MoeBatch {
  int32_t layer = 0;         // decoder layer index (must be a MoE layer)
  int64_t num_tokens = 0;    // T
  int64_t top_k = 0;         // k
  const float* hidden = nullptr;         // [T x hidden_size]
  const int32_t* expert_ids = nullptr;   // [T x k], each in [0, num_experts)
  const float* weights = nullptr;        // [T x k] routing weights (already scaled)
};

// The shared-memory rings of an executor over NUMA workers, exposed so a GPU engine can write its
// requests straight into them and collect the results itself (coordinator/cuda/ring_handoff.h).
// Same threading as the executor.
class ExpertRings {
 public:
  virtual ~ExpertRings() = default;
  // Re-attaches workers that went down, if they listen again; Unavailable naming one that cannot.
  virtual absl::Status AttachAll() = 0;
  virtual int count() const = 0;
  // Worker i's ring and its producer: valid until Detach(i), null while it is detached.
  virtual RingRegion* region(int i) = 0;
  virtual RingProducer* producer(int i) = 0;
  // Unavailable, naming the worker, once worker i's process or channel is gone.
  virtual absl::Status CheckAlive(int i) = 0;
  // Abandons worker i's ring after a failed external step; AttachAll gives it a new one.
  virtual void Detach(int i) = 0;
  // Changes whenever a ring is replaced, so addresses cached from region(i) must be refreshed.
  virtual uint64_t generation() const = 0;
  // The longest one MoE call may take while its worker lives.
  virtual absl::Duration call_timeout() const = 0;
  // Called with a ring right before it is unmapped (Detach, re-attach, destruction), so a user
  // that registered its memory (cudaHostRegister) can release it first. Null: none.
  virtual void SetReleaseHook(std::function<void(RingRegion*)> hook) = 0;
};

class ExpertExecutor {
 public:
  virtual ~ExpertExecutor() = default;
  // out[T x hidden_size] = sum over (t, j) of weights[t, j] * expert_{ids[t, j]}(hidden[t]).
  // `out` is overwritten. Bad ids or an unknown layer are InvalidArgument, never a crash.
  virtual absl::Status Run(const MoeBatch& batch, float* out) = 0;
  // One line for logs, e.g. "in-process (8 threads)".
  virtual std::string Describe() const = 0;
  // The rings, for executors over NUMA workers; null otherwise.
  virtual ExpertRings* rings() { return nullptr; }
};

}  // namespace tandem
