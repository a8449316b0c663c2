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
  switch (cfg.family) {
    case ModelFamily::kQwen2Moe:
    case ModelFamily::kQwen3Moe:
      return QwenExpertNames(layer, expert);
    case ModelFamily::kDeepseekV2:
    case ModelFamily::kDeepseekV3:
      return DeepseekExpertNames(layer, expert);
    case ModelFamily::kMixtral:
      return MixtralExpertNames(layer, expert);
  }
  return {};
}

}  // namespace tandem
