// Token sampling from one position's logits: repetition penalty, temperature, top-k, top-p,
// min-p, in that order (as vLLM and transformers apply them), then a seeded draw; temperature 0 is
// greedy. One Sampler per sequence; not thread-safe.
#pragma once

#include <cstdint>
#include <optional>
#include <random>
#include <span>

#include "common/status.h"

namespace tandem {

struct SamplingParams {
  double temperature = 0.0;         // 0: greedy
  double top_p = 1.0;               // (0, 1]
  int64_t top_k = 0;                // 0: off
  double min_p = 0.0;               // [0, 1]
  double repetition_penalty = 1.0;  // > 0; 1: off
  std::optional<uint64_t> seed;     // absent: nondeterministic

  absl::Status Validate() const;
};

class Sampler {
 public:
  explicit Sampler(const SamplingParams& params);
  // `history`: the prompt and the tokens generated so far (for the repetition penalty).
  int32_t Sample(std::span<const float> logits, std::span<const int32_t> history);

 private:
  SamplingParams params_;
  std::mt19937_64 rng_;
};

}  // namespace tandem
