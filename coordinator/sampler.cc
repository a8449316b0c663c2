#include "coordinator/sampler.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <unordered_set>
#include <vector>

namespace tandem {

absl::Status SamplingParams::Validate() const {
  if (!(temperature >= 0) || !std::isfinite(temperature))
    return absl::InvalidArgumentError("temperature must be a finite number >= 0");
  if (!(top_p > 0 && top_p <= 1)) return absl::InvalidArgumentError("top_p must be in (0, 1]");
  if (top_k < 0) return absl::InvalidArgumentError("top_k must be >= 0 (0 disables it)");
  if (!(min_p >= 0 && min_p <= 1)) return absl::InvalidArgumentError("min_p must be in [0, 1]");
  if (!(repetition_penalty > 0) || !std::isfinite(repetition_penalty))
    return absl::InvalidArgumentError("repetition_penalty must be a finite number > 0");
  return absl::OkStatus();
}

int32_t SampleToken(const SamplingParams& params, std::span<const float> logits_in,
                    std::span<const int32_t> history, double u) {
  std::vector<float> logits(logits_in.begin(), logits_in.end());
  const int64_t n = static_cast<int64_t>(logits.size());
  if (params.repetition_penalty != 1.0) {
    std::unordered_set<int32_t> seen(history.begin(), history.end());
    for (int32_t id : seen) {
      if (id < 0 || id >= n) continue;
      float& l = logits[id];
      l = l > 0 ? static_cast<float>(l / params.repetition_penalty)
                : static_cast<float>(l * params.repetition_penalty);
    }
  }
  if (params.greedy()) {  // max_element returns the first of equal maxima: the lowest id
    return static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
  }
  std::vector<int32_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  const int64_t top_k = params.top_k > 0 ? std::min(n, params.top_k) : n;
  std::partial_sort(order.begin(), order.begin() + top_k, order.end(), [&](int32_t a, int32_t b) {
    return logits[a] > logits[b] || (logits[a] == logits[b] && a < b);
  });
  // Masses and their running sums over the top_k candidates.
  std::vector<double> mass(top_k), cumulative(top_k);
  const double best = logits[order[0]];
  double sum = 0;
  for (int64_t i = 0; i < top_k; ++i) {
    mass[i] = std::exp((logits[order[i]] - best) / params.temperature);
    sum += mass[i];
    cumulative[i] = sum;
  }
  int64_t keep = top_k;
  if (params.top_p < 1.0) {
    const double nucleus = params.top_p * cumulative[top_k - 1];
    keep = std::find_if(cumulative.begin(), cumulative.end(),
                        [&](double c) { return c >= nucleus; }) -
           cumulative.begin() + 1;
    keep = std::min(keep, top_k);
  }
  if (params.min_p > 0) {
    int64_t cut = 1;
    while (cut < keep && mass[cut] >= params.min_p) ++cut;
    keep = cut;
  }
  const double target = u * cumulative[keep - 1];
  const auto chosen =
      std::find_if(cumulative.begin(), cumulative.begin() + keep, [&](double c) { return c > target; });
  return order[std::min<int64_t>(chosen - cumulative.begin(), keep - 1)];
}

Sampler::Sampler(const SamplingParams& params)
    : params_(params), rng_(params.seed ? *params.seed : std::random_device{}()) {}

double Sampler::NextUniform() { return static_cast<double>(rng_() >> 11) * 0x1.0p-53; }

int32_t Sampler::Sample(std::span<const float> logits, std::span<const int32_t> history) {
  return SampleToken(params_, logits, history, params_.greedy() ? 0.0 : NextUniform());
}

}  // namespace tandem
