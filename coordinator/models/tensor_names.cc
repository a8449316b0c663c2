#include "coordinator/models/tensor_names.h"

#include "absl/strings/str_cat.h"

namespace tandem {

std::string LayerPrefix(int64_t layer) { return absl::StrCat("model.layers.", layer, "."); }

MoeTensorNames MoeNames(const ModelConfig& cfg, int64_t layer) {
  switch (cfg.family) {
    case ModelFamily::kQwen2Moe:
    case ModelFamily::kQwen3Moe:
      return QwenMoeNames(cfg, layer);
    case ModelFamily::kDeepseekV2:
    case ModelFamily::kDeepseekV3:
      return DeepseekMoeNames(cfg, layer);
    case ModelFamily::kMixtral:
      return MixtralMoeNames(cfg, layer);
  }
  return {};
}

ExpertTensorNames ExpertNames(const ModelConfig& cfg, int64_t layer, int64_t expert) {
  if (cfg.family == ModelFamily::kMixtral) return MixtralExpertNames(layer, expert);
  return MlpStyleExpertNames(layer, expert);
}

MoeTensorNames MlpStyleMoeNames(int64_t layer, const std::string& shared_module) {
  const std::string p = LayerPrefix(layer) + "mlp.";
  MoeTensorNames n;
  n.router = p + "gate.weight";
  if (!shared_module.empty()) {
    n.shared_gate = p + shared_module + ".gate_proj.weight";
    n.shared_up = p + shared_module + ".up_proj.weight";
    n.shared_down = p + shared_module + ".down_proj.weight";
  }
  n.fused_gate_up = p + "experts.gate_up_proj";
  n.fused_down = p + "experts.down_proj";
  return n;
}

ExpertTensorNames MlpStyleExpertNames(int64_t layer, int64_t expert) {
  const std::string p = absl::StrCat(LayerPrefix(layer), "mlp.experts.", expert, ".");
  return {p + "gate_proj.weight", p + "up_proj.weight", p + "down_proj.weight"};
}

}  // namespace tandem
