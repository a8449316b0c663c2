// Qwen2-MoE and Qwen3-MoE: GQA attention (Qwen2: q/k/v bias; Qwen3: q/k RMSNorm), routed experts
// under mlp.experts.N, Qwen2's always-on shared expert scaled by sigmoid(shared_expert_gate(x)).
#include "absl/strings/str_cat.h"
#include "coordinator/models/tensor_names.h"

namespace tandem {

MoeTensorNames QwenMoeNames(const ModelConfig& cfg, int64_t layer) {
  const std::string p = LayerPrefix(layer) + "mlp.";
  MoeTensorNames n;
  n.router = p + "gate.weight";
  if (cfg.moe.shared_intermediate_size > 0) {
    n.shared_gate = p + "shared_expert.gate_proj.weight";
    n.shared_up = p + "shared_expert.up_proj.weight";
    n.shared_down = p + "shared_expert.down_proj.weight";
    n.shared_expert_gate = p + "shared_expert_gate.weight";
  }
  n.fused_gate_up = p + "experts.gate_up_proj";
  n.fused_down = p + "experts.down_proj";
  return n;
}

ExpertTensorNames QwenExpertNames(int64_t layer, int64_t expert) {
  const std::string p = absl::StrCat(LayerPrefix(layer), "mlp.experts.", expert, ".");
  return {p + "gate_proj.weight", p + "up_proj.weight", p + "down_proj.weight"};
}

}  // namespace tandem
