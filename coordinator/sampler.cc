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

Sampler::Sampler(const SamplingParams& params)
    : params_(params), rng_(params.seed ? *params.seed : std::random_device{}()) {}

int32_t Sampler::Sample(std::span<const float> logits_in, std::span<const int32_t> history) {
  std::vector<float> logits(logits_in.begin(), logits_in.end());
  const int64_t n = static_cast<int64_t>(logits.size());
  if (params_.repetition_penalty != 1.0) {
    std::unordered_set<int32_t> seen(history.begin(), history.end());
    for (int32_t id : seen) {
      if (id < 0 || id >= n) continue;
      float& l = logits[id];
      l = l > 0 ? static_cast<float>(l / params_.repetition_penalty)
                : static_cast<float>(l * params_.repetition_penalty);
    }
  }
  if (params_.temperature == 0.0) {
    return static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
  }
  // Candidates sorted by logit, best first.
  std::vector<int32_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  int64_t keep = n;
  if (params_.top_k > 0) keep = std::min(keep, params_.top_k);
  std::partial_sort(order.begin(), order.begin() + keep, order.end(),
                    [&](int32_t a, int32_t b) { return logits[a] > logits[b]; });
  order.resize(keep);
  // Softmax over the kept candidates at the given temperature.
  std::vector<double> probs(keep);
  const double mx = logits[order[0]];
  double sum = 0;
  for (int64_t i = 0; i < keep; ++i) {
    probs[i] = std::exp((logits[order[i]] - mx) / params_.temperature);
    sum += probs[i];
  }
  for (double& p : probs) p /= sum;
  // top-p: smallest prefix whose mass reaches top_p (at least one token).
  if (params_.top_p < 1.0) {
    double cumulative = 0;
    int64_t cut = keep;
    for (int64_t i = 0; i < keep; ++i) {
      cumulative += probs[i];
      if (cumulative >= params_.top_p) {
        cut = i + 1;
        break;
      }
    }
    keep = cut;
  }
  // min-p: drop tokens below min_p times the best probability.
  if (params_.min_p > 0) {
    const double threshold = params_.min_p * probs[0];
    int64_t cut = 1;
    while (cut < keep && probs[cut] >= threshold) ++cut;
    keep = cut;
  }
  std::discrete_distribution<int64_t> dist(probs.begin(), probs.begin() + keep);
  return order[dist(rng_)];
}

}  // namespace tandem
