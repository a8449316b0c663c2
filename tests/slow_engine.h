// An Engine that forwards to another one and sleeps before every step, so a serving test can
// act (cancel, hang up, time out) while a request is still running; optionally it reports a
// bounded KV cache. Engine thread only.
#pragma once

#include "absl/time/clock.h"
#include "coordinator/engine.h"

namespace tandem::testing {

class SlowEngine : public Engine {
 public:
  // kv_capacity > 0: reports a bounded KV cache of that many tokens in pages of `page` tokens
  // (as the GPU backend does), so the scheduler's admission can be tested on the CPU.
  explicit SlowEngine(Engine& inner, absl::Duration delay = absl::Milliseconds(5),
                      int64_t kv_capacity = 0, int64_t page = 1)
      : inner_(inner), delay_(delay), kv_capacity_(kv_capacity), page_(page) {}
  int64_t KvCacheCapacityTokens() const override { return kv_capacity_; }
  int64_t KvCachePageTokens() const override { return page_; }
  std::unique_ptr<SequenceCache> NewCache(int64_t capacity) override {
    return inner_.NewCache(capacity);
  }
  absl::StatusOr<std::vector<float>> Forward(std::span<const int32_t> tokens,
                                             SequenceCache& cache) override {
    absl::SleepFor(delay_);
    return inner_.Forward(tokens, cache);
  }
  absl::StatusOr<std::vector<std::vector<float>>> ForwardBatch(
      std::span<const SequenceStep> steps) override {
    absl::SleepFor(delay_);
    return inner_.ForwardBatch(steps);
  }
  const ModelConfig& config() const override { return inner_.config(); }
  ExpertExecutor& experts() override { return inner_.experts(); }
  std::string Describe() const override { return "slow " + inner_.Describe(); }

 private:
  Engine& inner_;
  absl::Duration delay_;
  int64_t kv_capacity_, page_;
};

}  // namespace tandem::testing
