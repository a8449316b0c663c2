#include "coordinator/in_process_expert_executor.h"

#include <omp.h>

#include "coordinator/models/tensor_names.h"
#include "coordinator/weight_loader.h"
#include "kernels/cpu/elementwise.h"
#include "kernels/cpu/linear.h"

namespace tandem {

absl::StatusOr<MlpWeights> LoadRoutedExpert(const ModelConfig& c, const Checkpoint& checkpoint,
                                            int64_t layer, int64_t expert) {
  WeightLoader w(checkpoint, c);
  const int64_t h = c.hidden_size, inter = c.moe.expert_intermediate_size;
  const ExpertTensorNames names = ExpertNames(c, layer, expert);
  MlpWeights m;
  if (w.Has(names.gate) || !w.Has(MoeNames(c, layer).fused_gate_up)) {
    TANDEM_ASSIGN_OR_RETURN(m.gate, w.Matrix(names.gate, inter, h));
    TANDEM_ASSIGN_OR_RETURN(m.up, w.Matrix(names.up, inter, h));
    TANDEM_ASSIGN_OR_RETURN(m.down, w.Matrix(names.down, h, inter));
    return m;
  }
  const MoeTensorNames fused = MoeNames(c, layer);
  TANDEM_ASSIGN_OR_RETURN(m.gate, w.MatrixFrom3d(fused.fused_gate_up, expert, 0, inter, h));
  TANDEM_ASSIGN_OR_RETURN(m.up, w.MatrixFrom3d(fused.fused_gate_up, expert, inter, inter, h));
  TANDEM_ASSIGN_OR_RETURN(m.down, w.MatrixFrom3d(fused.fused_down, expert, 0, h, inter));
  return m;
}

absl::StatusOr<std::unique_ptr<InProcessExpertExecutor>> InProcessExpertExecutor::Create(
    const ModelConfig& config, const Checkpoint& checkpoint) {
  std::unique_ptr<InProcessExpertExecutor> ex(new InProcessExpertExecutor(config));
  ex->experts_.resize(config.num_layers);
  for (int64_t l = 0; l < config.num_layers; ++l) {
    if (!config.layer_is_moe[l]) continue;
    ex->experts_[l].resize(config.moe.num_experts);
    for (int64_t e = 0; e < config.moe.num_experts; ++e) {
      TANDEM_ASSIGN_OR_RETURN(ex->experts_[l][e], LoadRoutedExpert(config, checkpoint, l, e));
    }
  }
  return ex;
}

absl::Status InProcessExpertExecutor::Run(const MoeBatch& b, float* out) {
  const int64_t h = config_.hidden_size, inter = config_.moe.expert_intermediate_size;
  if (b.layer < 0 || b.layer >= config_.num_layers || experts_[b.layer].empty())
    return absl::InvalidArgumentError(absl::StrCat("layer ", b.layer, " is not a MoE layer"));
  const int64_t num_experts = config_.moe.num_experts;
  // Group (token, slot) pairs by expert so each expert's weights are streamed once.
  std::vector<std::vector<std::pair<int64_t, float>>> rows(num_experts);
  for (int64_t t = 0; t < b.num_tokens; ++t) {
    for (int64_t j = 0; j < b.top_k; ++j) {
      const int32_t e = b.expert_ids[t * b.top_k + j];
      if (e < 0 || e >= num_experts)
        return absl::InvalidArgumentError(absl::StrCat("expert id ", e, " out of range"));
      rows[e].push_back({t, b.weights[t * b.top_k + j]});
    }
  }
  std::fill(out, out + b.num_tokens * h, 0.0f);
  std::vector<float> x, gate, up, down;
  for (int64_t e = 0; e < num_experts; ++e) {
    const int64_t n = static_cast<int64_t>(rows[e].size());
    if (n == 0) continue;
    const MlpWeights& w = experts_[b.layer][e];
    x.resize(n * h);
    gate.resize(n * inter);
    up.resize(n * inter);
    down.resize(n * h);
    for (int64_t i = 0; i < n; ++i)
      std::copy(b.hidden + rows[e][i].first * h, b.hidden + (rows[e][i].first + 1) * h,
                x.begin() + i * h);
    Linear(x.data(), n, w.gate, gate.data());
    Linear(x.data(), n, w.up, up.data());
    SiluMul(gate.data(), up.data(), n * inter);
    Linear(gate.data(), n, w.down, down.data());
    for (int64_t i = 0; i < n; ++i) {
      float* o = out + rows[e][i].first * h;
      const float wt = rows[e][i].second;
      for (int64_t d = 0; d < h; ++d) o[d] += wt * down[i * h + d];
    }
  }
  return absl::OkStatus();
}

std::string InProcessExpertExecutor::Describe() const {
  return absl::StrCat("in-process (", omp_get_max_threads(), " threads)");
}

size_t InProcessExpertExecutor::weight_bytes() const {
  size_t total = 0;
  for (const auto& layer : experts_)
    for (const auto& m : layer) total += m.gate.bytes() + m.up.bytes() + m.down.bytes();
  return total;
}

}  // namespace tandem
