// Token sampling from one position's logits: repetition penalty, temperature, top-k, top-p,
// min-p, in that order (as vLLM and transformers apply them), then a seeded draw; temperature 0 is
// greedy. One Sampler per sequence; not thread-safe.
//
// The draw is defined exactly, so that every backend (this file on the CPU, kernels/cuda/sampling.h
// on the GPU) picks the same token from the same logits and the same uniform number u:
//   1. the repetition penalty divides (positive) or multiplies (negative) the logit of each
//      distinct in-range id of the history once, in double, rounded to float;
//   2. temperature 0: the largest logit, the lowest id among equal ones;
//   3. otherwise the candidates are ordered by logit, best first, lower id first among equal ones
//      (-0 and +0 equal), and the first top_k kept (all when top_k is 0);
//   4. candidate i has mass e_i = exp((l_i - l_0) / temperature) (double); C_i = e_0 + ... + e_i;
//   5. top_p < 1 keeps the shortest prefix with C_i >= top_p * C_last;
//   6. min_p > 0 keeps the leading candidates with e_i >= min_p (e_0 = 1 is always kept);
//   7. the token is the first kept candidate with C_i > u * C_kept (the last kept one if none).
// Backends may sum the C_i in a different order, so draws agree except when u * C_kept falls
// within rounding (~1e-16 relative) of a boundary.
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
  bool greedy() const { return temperature == 0.0; }
};

// The token drawn from `logits` at uniform number `u` in [0, 1) (unused when greedy), by the
// rules above. `history`: the prompt and the tokens generated so far.
int32_t SampleToken(const SamplingParams& params, std::span<const float> logits,
                    std::span<const int32_t> history, double u);

class Sampler {
 public:
  explicit Sampler(const SamplingParams& params);
  const SamplingParams& params() const { return params_; }
  // The uniform number of the next draw, in [0, 1): 53 bits of the seeded generator. Greedy draws
  // take none.
  double NextUniform();
  int32_t Sample(std::span<const float> logits, std::span<const int32_t> history);

 private:
  SamplingParams params_;
  std::mt19937_64 rng_;
};

}  // namespace tandem
