// Qwen2-MoE and Qwen3-MoE: GQA attention (Qwen2: q/k/v bias; Qwen3: q/k RMSNorm), routed experts
// under mlp.experts.N, Qwen2's always-on shared expert scaled by sigmoid(shared_expert_gate(x)).
#include "coordinator/models/tensor_names.h"

namespace tandem {

MoeTensorNames QwenMoeNames(const ModelConfig& cfg, int64_t layer) {
  const bool shared = cfg.moe.shared_intermediate_size > 0;
  MoeTensorNames n = MlpStyleMoeNames(layer, shared ? "shared_expert" : "");
  if (shared) n.shared_expert_gate = LayerPrefix(layer) + "mlp.shared_expert_gate.weight";
  return n;
}

}  // namespace tandem
