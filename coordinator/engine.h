// The coordinator's forward pass behind one interface, so the rest of the coordinator (generator,
// CLI, servers) does not care where it runs. Backends: CpuEngine (coordinator/cpu_engine.h) and
// CudaEngine (coordinator/cuda/cuda_engine.h, in builds with TANDEM_CUDA). Both run the routed
// experts through the same ExpertExecutor (in-process threads or NUMA worker processes).
// An engine and its caches are driven by one engine thread; nothing here is thread-safe.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/model_config.h"
#include "common/status.h"
#include "coordinator/expert_executor.h"
#include "coordinator/sampler.h"

namespace tandem {

// Where the coordinator's ops run (--device).
enum class Device { kAuto, kCpu, kCuda };
absl::StatusOr<Device> ParseDevice(const std::string& name);  // "auto" | "cpu" | "cuda"
std::string_view DeviceName(Device device);

// The attention state of one sequence: how many positions are cached, and how many fit. Each
// backend derives its own storage; a cache is only valid with the engine that made it.
class SequenceCache {
 public:
  virtual ~SequenceCache() = default;
  int64_t length() const { return length_; }
  int64_t capacity() const { return capacity_; }
  // Called by the engine after a forward pass has written positions [length, length + n).
  void Advance(int64_t num_tokens) { length_ += num_tokens; }
  void Clear() { length_ = 0; }

 protected:
  explicit SequenceCache(int64_t capacity) : capacity_(capacity) {}

 private:
  int64_t capacity_ = 0;
  int64_t length_ = 0;
};

// Where the forward passes' wall time went, summed since the last reset (for benchmarks).
struct ForwardTimes {
  int64_t forwards = 0;
  double total_ms = 0;     // inside Forward
  double experts_ms = 0;   // inside ExpertExecutor::Run: routed experts, their transfers included
  double gpu_wait_ms = 0;  // host blocked on the GPU (GPU work not hidden behind the experts)
  // The rest (total - experts - gpu_wait) is host work: launches, copies' set-up, sampling prep.
  double host_ms() const { return total_ms - experts_ms - gpu_wait_ms; }
};

// Adds the wall time of its scope, in ms, to `ms`.
class ScopedTimer {
 public:
  explicit ScopedTimer(double& ms) : ms_(ms), start_(std::chrono::steady_clock::now()) {}
  ~ScopedTimer() {
    ms_ += std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start_)
               .count();
  }

 private:
  double& ms_;
  std::chrono::steady_clock::time_point start_;
};

// One sequence's part of a batched step: its new tokens, appended to its cache.
struct SequenceStep {
  std::span<const int32_t> tokens;
  SequenceCache* cache = nullptr;
};

class Engine {
 public:
  virtual ~Engine() = default;

  // A new, empty cache for a sequence of at most `capacity` tokens.
  virtual std::unique_ptr<SequenceCache> NewCache(int64_t capacity) = 0;

  // Runs `tokens` at positions [cache.length(), cache.length() + T), appends them to the cache,
  // and returns the logits of the last position [vocab_size]. Token ids out of range, an empty
  // input, a full cache or a cache of another engine are InvalidArgument errors; the cache length
  // is left unchanged on any error.
  virtual absl::StatusOr<std::vector<float>> Forward(std::span<const int32_t> tokens,
                                                     SequenceCache& cache) = 0;

  // Forward, then the next token drawn from the last position's logits with `sampler`: the same
  // token as sampler.Sample(Forward(tokens, cache), history). `history`: the prompt and the
  // tokens generated so far. The default samples on the host; a GPU backend draws on the device
  // and brings back only the id.
  virtual absl::StatusOr<int32_t> ForwardAndSample(std::span<const int32_t> tokens,
                                                   SequenceCache& cache, Sampler& sampler,
                                                   std::span<const int32_t> history);

  // Several sequences' new tokens as one step (continuous batching): returns the last-position
  // logits of each ([i] for steps[i]). Every input is checked as Forward checks it, and a cache
  // may appear once, before anything runs; those errors leave every cache unchanged. A failure
  // while running (e.g. a worker down) leaves the batch's caches unusable: drop them. Backends
  // run the position-independent work (linears, routed experts) once over all the tokens, which
  // is what makes a batch cheaper than its sequences one by one; the default runs them one by one.
  virtual absl::StatusOr<std::vector<std::vector<float>>> ForwardBatch(
      std::span<const SequenceStep> steps);
  // ForwardBatch, then one token per sequence drawn with samplers[i] over histories[i] (see
  // ForwardAndSample). A null sampler draws nothing (a prompt chunk that is not the last): -1.
  virtual absl::StatusOr<std::vector<int32_t>> ForwardBatchAndSample(
      std::span<const SequenceStep> steps, std::span<Sampler* const> samplers,
      std::span<const std::span<const int32_t>> histories);

  // Sizes the engine's working buffers for forward passes of up to `max_tokens` tokens now, so
  // no later pass pays for growing them (benchmarks, servers at start-up). Optional.
  virtual absl::Status Prepare(int64_t max_tokens) { return absl::OkStatus(); }

  // The tokens all sequences' caches can hold at once, and the unit they are taken in (a
  // request of n tokens needs ceil(n / page) pages). 0: bounded only by host memory (CPU).
  virtual int64_t KvCacheCapacityTokens() const { return 0; }
  virtual int64_t KvCachePageTokens() const { return 1; }

  virtual const ModelConfig& config() const = 0;
  virtual ExpertExecutor& experts() = 0;
  // One line for logs, e.g. "cpu" or "cuda:0 (NVIDIA H100 80GB HBM3)".
  virtual std::string Describe() const = 0;

  const ForwardTimes& times() const { return times_; }
  void ResetTimes() { times_ = ForwardTimes(); }

 protected:
  ForwardTimes times_;
};

// The checks every backend makes before a forward pass (see Engine::Forward).
absl::Status ValidateForwardInput(const ModelConfig& config, std::span<const int32_t> tokens,
                                  const SequenceCache& cache);
// The same for every sequence of a batched step, plus: not empty, no cache twice, no null cache.
absl::Status ValidateBatchInput(const ModelConfig& config, std::span<const SequenceStep> steps);
// ForwardBatchAndSample's arguments: one sampler (or null) and one history per sequence.
absl::Status ValidateBatchSampling(std::span<const SequenceStep> steps,
                                   std::span<Sampler* const> samplers,
                                   std::span<const std::span<const int32_t>> histories);

}  // namespace tandem
