// The CPU backend (an Engine) for every supported family: embeddings, decoder layers (GQA or
// MLA attention; dense MLP or router + routed experts through the ExpertExecutor + shared
// experts), final norm and LM head, with f32 activations over bf16 / f32 weights. A step may hold
// several sequences (ForwardBatch): linears and experts run once over all their tokens, attention
// per sequence. The caller owns the caches (KvCache from NewCache). Not thread-safe: one engine
// thread drives it.
#pragma once

#include <memory>
#include <span>
#include <vector>

#include "common/checkpoint.h"
#include "common/model_config.h"
#include "coordinator/engine.h"
#include "coordinator/expert_executor.h"
#include "coordinator/kv_cache.h"
#include "coordinator/model_weights.h"
#include "coordinator/rope.h"

namespace tandem {

class CpuEngine : public Engine {
 public:
  // Loads the non-expert weights of `checkpoint`; routed experts run through `experts`.
  static absl::StatusOr<std::unique_ptr<CpuEngine>> Create(const ModelConfig& config,
                                                           const Checkpoint& checkpoint,
                                                           std::unique_ptr<ExpertExecutor> experts);
  // The same over weights already in memory (e.g. random ones: coordinator/synthetic_model.h).
  static std::unique_ptr<CpuEngine> FromWeights(const ModelConfig& config, ModelWeights weights,
                                                std::unique_ptr<ExpertExecutor> experts) {
    return std::unique_ptr<CpuEngine>(new CpuEngine(config, std::move(weights), std::move(experts)));
  }

  std::unique_ptr<SequenceCache> NewCache(int64_t capacity) override {
    return std::make_unique<KvCache>(config_, capacity);
  }
  absl::StatusOr<std::vector<float>> Forward(std::span<const int32_t> tokens,
                                             SequenceCache& cache) override;
  absl::StatusOr<std::vector<std::vector<float>>> ForwardBatch(
      std::span<const SequenceStep> steps) override;
  const ModelConfig& config() const override { return config_; }
  ExpertExecutor& experts() override { return *experts_; }
  std::string Describe() const override { return "cpu"; }

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
