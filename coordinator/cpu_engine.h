// The CPU backend's forward pass for every supported family: embeddings, decoder layers (GQA or
// MLA attention; dense MLP or router + routed experts through the ExpertExecutor + shared
// experts), final norm and LM head, with f32 activations over bf16 / f32 weights. One sequence
// per call; the caller owns its KvCache. Not thread-safe: one engine thread drives it.
#pragma once

#include <memory>
#include <span>
#include <vector>

#include "common/checkpoint.h"
#include "common/model_config.h"
#include "coordinator/expert_executor.h"
#include "coordinator/kv_cache.h"
#include "coordinator/model_weights.h"
#include "coordinator/rope.h"

namespace tandem {

class CpuEngine {
 public:
  // Loads the non-expert weights of `checkpoint`; routed experts run through `experts`.
  static absl::StatusOr<std::unique_ptr<CpuEngine>> Create(const ModelConfig& config,
                                                           const Checkpoint& checkpoint,
                                                           std::unique_ptr<ExpertExecutor> experts);

  // Runs `tokens` at positions [cache.length(), cache.length() + T), appends them to the cache,
  // and returns the logits of the last position [vocab_size]. Token ids out of range, an empty
  // input or a full cache are InvalidArgument errors; the cache is left unchanged on error.
  absl::StatusOr<std::vector<float>> Forward(std::span<const int32_t> tokens, KvCache& cache);

  KvCache NewCache(int64_t capacity) const { return KvCache(config_, capacity); }
  const ModelConfig& config() const { return config_; }
  ExpertExecutor& experts() { return *experts_; }

 private:
  CpuEngine(const ModelConfig& config, ModelWeights weights, std::unique_ptr<ExpertExecutor> experts)
      : config_(config), weights_(std::move(weights)), experts_(std::move(experts)), rope_(config.rope) {}

  // MLP block of layer `l` for T normalised tokens x -> out.
  absl::Status Mlp(int64_t l, const float* x, int64_t num_tokens, float* out);

  ModelConfig config_;
  ModelWeights weights_;
  std::unique_ptr<ExpertExecutor> experts_;
  Rope rope_;
};

}  // namespace tandem
