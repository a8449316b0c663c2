// DeepSeek-V2 / V2.5 / V3: MLA attention, the first_k_dense_replace layers dense, routed experts
// under mlp.experts.N, n_shared_experts fused into one shared MLP, V3's e_score_correction_bias.
#include "coordinator/models/tensor_names.h"

namespace tandem {

MoeTensorNames DeepseekMoeNames(const ModelConfig& cfg, int64_t layer) {
  MoeTensorNames n =
      MlpStyleMoeNames(layer, cfg.moe.shared_intermediate_size > 0 ? "shared_experts" : "");
  if (cfg.moe.has_score_correction_bias)
    n.score_correction_bias = LayerPrefix(layer) + "mlp.gate.e_score_correction_bias";
  return n;
}

}  // namespace tandem
