// Mixtral: GQA attention, every layer MoE under block_sparse_moe (w1 = gate, w3 = up, w2 = down),
// softmax router with top-k renormalisation, no shared expert.
#include "absl/strings/str_cat.h"
#include "coordinator/models/tensor_names.h"

namespace tandem {

MoeTensorNames MixtralMoeNames(const ModelConfig& cfg, int64_t layer) {
  MoeTensorNames n;
  n.router = LayerPrefix(layer) + "block_sparse_moe.gate.weight";
  n.router_fallback = LayerPrefix(layer) + "mlp.gate.weight";
  // transformers >= 5 saves Mixtral's MoE under mlp. with fused experts.
  n.fused_gate_up = LayerPrefix(layer) + "mlp.experts.gate_up_proj";
  n.fused_down = LayerPrefix(layer) + "mlp.experts.down_proj";
  return n;
}

ExpertTensorNames MixtralExpertNames(int64_t layer, int64_t expert) {
  const std::string p = absl::StrCat(LayerPrefix(layer), "block_sparse_moe.experts.", expert, ".");
  return {p + "w1.weight", p + "w3.weight", p + "w2.weight"};
}

}  // namespace tandem
