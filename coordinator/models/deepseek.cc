// DeepSeek-V2 / V2.5 / V3: MLA attention, the first_k_dense_replace layers dense, routed experts
// under mlp.experts.N, n_shared_experts fused into one shared MLP, V3's e_score_correction_bias.
#include "absl/strings/str_cat.h"
#include "coordinator/models/tensor_names.h"

namespace tandem {

MoeTensorNames DeepseekMoeNames(const ModelConfig& cfg, int64_t layer) {
  const std::string p = LayerPrefix(layer) + "mlp.";
  MoeTensorNames n;
  n.router = p + "gate.weight";
  if (cfg.moe.has_score_correction_bias) n.score_correction_bias = p + "gate.e_score_correction_bias";
  if (cfg.moe.shared_intermediate_size > 0) {
    n.shared_gate = p + "shared_experts.gate_proj.weight";
    n.shared_up = p + "shared_experts.up_proj.weight";
    n.shared_down = p + "shared_experts.down_proj.weight";
  }
  n.fused_gate_up = p + "experts.gate_up_proj";
  n.fused_down = p + "experts.down_proj";
  return n;
}

ExpertTensorNames DeepseekExpertNames(int64_t layer, int64_t expert) {
  const std::string p = absl::StrCat(LayerPrefix(layer), "mlp.experts.", expert, ".");
  return {p + "gate_proj.weight", p + "up_proj.weight", p + "down_proj.weight"};
}

}  // namespace tandem
