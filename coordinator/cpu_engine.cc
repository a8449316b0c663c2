#include "coordinator/cpu_engine.h"

#include <cmath>

#include "coordinator/attention.h"
#include "coordinator/router.h"
#include "kernels/cpu/elementwise.h"
#include "kernels/cpu/linear.h"

namespace tandem {
namespace {

// out = down(silu(gate x) * up x), for T tokens.
void DenseMlp(const MlpWeights& w, const float* x, int64_t num_tokens, float* out) {
  const int64_t inter = w.gate.rows;
  std::vector<float> gate(num_tokens * inter), up(num_tokens * inter);
  Linear(x, num_tokens, w.gate, gate.data());
  Linear(x, num_tokens, w.up, up.data());
  SiluMul(gate.data(), up.data(), num_tokens * inter);
  Linear(gate.data(), num_tokens, w.down, out);
}

}  // namespace

absl::StatusOr<std::unique_ptr<CpuEngine>> CpuEngine::Create(
    const ModelConfig& config, const Checkpoint& checkpoint,
    std::unique_ptr<ExpertExecutor> experts) {
  if (!experts) return absl::InvalidArgumentError("CpuEngine needs an ExpertExecutor");
  TANDEM_ASSIGN_OR_RETURN(ModelWeights weights, LoadModelWeights(config, checkpoint));
  return std::unique_ptr<CpuEngine>(new CpuEngine(config, std::move(weights), std::move(experts)));
}

absl::Status CpuEngine::Mlp(int64_t l, const float* x, int64_t num_tokens, float* out) {
  const LayerWeights& lw = weights_.layers[l];
  const int64_t h = config_.hidden_size;
  if (!lw.is_moe) {
    DenseMlp(lw.dense, x, num_tokens, out);
    return absl::OkStatus();
  }
  const MoeConfig& moe = config_.moe;
  std::vector<float> logits(num_tokens * moe.num_experts);
  Linear(x, num_tokens, lw.router, logits.data());
  std::vector<int32_t> ids(num_tokens * moe.top_k);
  std::vector<float> weights(num_tokens * moe.top_k);
  const float* bias = lw.score_correction_bias.empty() ? nullptr : lw.score_correction_bias.data();
  for (int64_t t = 0; t < num_tokens; ++t)
    RouteToken(moe, logits.data() + t * moe.num_experts, bias, ids.data() + t * moe.top_k,
               weights.data() + t * moe.top_k);
  MoeBatch batch{static_cast<int32_t>(l), num_tokens, moe.top_k, x, ids.data(), weights.data()};
  {
    ScopedTimer timer(times_.experts_ms);
    TANDEM_RETURN_IF_ERROR(experts_->Run(batch, out));
  }
  if (!lw.shared.empty()) {
    std::vector<float> shared(num_tokens * h);
    DenseMlp(lw.shared, x, num_tokens, shared.data());
    if (!lw.shared_expert_gate.empty()) {  // Qwen2-MoE: sigmoid-gated shared expert
      std::vector<float> g(num_tokens);
      Linear(x, num_tokens, lw.shared_expert_gate, g.data());
      for (int64_t t = 0; t < num_tokens; ++t) {
        const float s = 1.0f / (1.0f + std::exp(-g[t]));
        for (int64_t d = 0; d < h; ++d) shared[t * h + d] *= s;
      }
    }
    AddInPlace(out, shared.data(), num_tokens * h);
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<float>> CpuEngine::Forward(std::span<const int32_t> tokens,
                                                      SequenceCache& cache) {
  const SequenceStep step{tokens, &cache};
  TANDEM_ASSIGN_OR_RETURN(std::vector<std::vector<float>> logits, ForwardBatch({&step, 1}));
  return std::move(logits[0]);
}

absl::StatusOr<std::vector<std::vector<float>>> CpuEngine::ForwardBatch(
    std::span<const SequenceStep> steps) {
  std::vector<AttentionSegment> segments;
  int64_t num_tokens = 0;
  for (const SequenceStep& step : steps) {
    auto* cache = dynamic_cast<KvCache*>(step.cache);
    if (!cache) return absl::InvalidArgumentError("the cache was not made by the CPU engine");
    const int64_t count = static_cast<int64_t>(step.tokens.size());
    segments.push_back({num_tokens, count, cache->length(), cache});
    num_tokens += count;
  }
  TANDEM_RETURN_IF_ERROR(ValidateBatchInput(config_, steps));
  ScopedTimer timer(times_.total_ms);
  ++times_.forwards;
  const int64_t h = config_.hidden_size;
  std::vector<float> x(num_tokens * h);
  for (size_t i = 0; i < steps.size(); ++i)
    for (int64_t t = 0; t < segments[i].count; ++t)
      weights_.embed.RowToFloat(steps[i].tokens[t], x.data() + (segments[i].offset + t) * h);
  std::vector<float> normed(num_tokens * h), block(num_tokens * h);
  for (int64_t l = 0; l < config_.num_layers; ++l) {
    const LayerWeights& lw = weights_.layers[l];
    RmsNorm(x.data(), lw.input_norm.data(), num_tokens, h, config_.rms_norm_eps, normed.data());
    if (config_.use_mla) {
      MlaAttention(config_, lw.mla, rope_, l, normed.data(), num_tokens, segments, block.data());
    } else {
      GqaAttention(config_, lw.gqa, rope_, l, normed.data(), num_tokens, segments, block.data());
    }
    AddInPlace(x.data(), block.data(), num_tokens * h);
    RmsNorm(x.data(), lw.post_attention_norm.data(), num_tokens, h, config_.rms_norm_eps,
            normed.data());
    TANDEM_RETURN_IF_ERROR(Mlp(l, normed.data(), num_tokens, block.data()));
    AddInPlace(x.data(), block.data(), num_tokens * h);
  }
  // Each sequence's last row, normalised, through the LM head in one pass.
  const int64_t n = static_cast<int64_t>(steps.size());
  std::vector<float> last(n * h), logits(n * config_.vocab_size);
  for (int64_t i = 0; i < n; ++i) {
    segments[i].cache->Advance(segments[i].count);
    RmsNormRow(x.data() + (segments[i].offset + segments[i].count - 1) * h,
               weights_.final_norm.data(), h, config_.rms_norm_eps, last.data() + i * h);
  }
  Linear(last.data(), n, weights_.output(), logits.data());
  std::vector<std::vector<float>> out(n);
  for (int64_t i = 0; i < n; ++i)
    out[i].assign(logits.begin() + i * config_.vocab_size,
                  logits.begin() + (i + 1) * config_.vocab_size);
  return out;
}

}  // namespace tandem
