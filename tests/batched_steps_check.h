// Shared by the CPU and GPU engine tests: the same prompts run alone and as a continuous batch
// (sequence i joins at step i, so steps mix prompt chunks of up to 4 tokens and single decode
// tokens of sequences at different positions). Returns the largest |batched - alone| logit.
#pragma once

#include <algorithm>
#include <cmath>
#include <memory>
#include <vector>

#include "coordinator/engine.h"

namespace tandem::testing {

inline absl::StatusOr<double> MaxBatchedMinusAlone(Engine& engine) {
  const std::vector<std::vector<int32_t>> prompts = {
      {3, 14, 15, 92, 65, 35, 89}, {79, 32, 38}, {46, 26, 43, 38, 32, 79, 50, 28, 84, 19}};
  // Each prompt in chunks of up to 4 tokens, then 3 decode tokens.
  auto chunks_of = [](const std::vector<int32_t>& p) {
    std::vector<std::vector<int32_t>> out;
    for (size_t i = 0; i < p.size(); i += 4)
      out.emplace_back(p.begin() + i, p.begin() + std::min(p.size(), i + 4));
    for (int d = 0; d < 3; ++d) out.push_back({static_cast<int32_t>(5 + d * 11 + p.size())});
    return out;
  };
  std::vector<std::vector<std::vector<float>>> alone(prompts.size());
  for (size_t i = 0; i < prompts.size(); ++i) {
    auto cache = engine.NewCache(64);
    for (const auto& chunk : chunks_of(prompts[i])) {
      TANDEM_ASSIGN_OR_RETURN(std::vector<float> logits, engine.Forward(chunk, *cache));
      alone[i].push_back(std::move(logits));
    }
  }
  std::vector<std::unique_ptr<SequenceCache>> caches;
  std::vector<size_t> next(prompts.size(), 0);
  double worst = 0;
  for (size_t step = 0;; ++step) {
    if (step < prompts.size()) caches.push_back(engine.NewCache(64));
    std::vector<std::vector<int32_t>> tokens;
    std::vector<size_t> who;
    for (size_t i = 0; i < caches.size(); ++i) {
      const auto chunks = chunks_of(prompts[i]);
      if (next[i] < chunks.size()) {
        tokens.push_back(chunks[next[i]]);
        who.push_back(i);
      }
    }
    if (who.empty()) break;
    std::vector<SequenceStep> steps;
    for (size_t j = 0; j < who.size(); ++j) steps.push_back({tokens[j], caches[who[j]].get()});
    TANDEM_ASSIGN_OR_RETURN(std::vector<std::vector<float>> logits, engine.ForwardBatch(steps));
    for (size_t j = 0; j < who.size(); ++j) {
      const auto& want = alone[who[j]][next[who[j]]++];
      if (logits[j].size() != want.size())
        return absl::InternalError("batched logits have the wrong size");
      for (size_t v = 0; v < want.size(); ++v)
        worst = std::max(worst, double(std::abs(logits[j][v] - want[v])));
    }
  }
  return worst;
}

}  // namespace tandem::testing
