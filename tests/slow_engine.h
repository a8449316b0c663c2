// An Engine that forwards to another one and sleeps before every step, so a serving test can
// act (cancel, hang up, time out) while a request is still running. Engine thread only.
#pragma once

#include "absl/time/clock.h"
#include "coordinator/engine.h"

namespace tandem::testing {

class SlowEngine : public Engine {
 public:
  explicit SlowEngine(Engine& inner, absl::Duration delay = absl::Milliseconds(5))
      : inner_(inner), delay_(delay) {}
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
};

}  // namespace tandem::testing
