// Where each weight of a supported family lives in a Hugging Face checkpoint. Names are those of
// real hub checkpoints (one tensor per expert); transformers >= 5 fused-expert names are accepted
// as a fallback by the loaders. One function per family lives in its own file under models/.
#pragma once

#include <string>

#include "common/model_config.h"

namespace tandem {

struct ExpertTensorNames {
  std::string gate, up, down;  // one expert's [I x H], [I x H], [H x I] projections
};

struct MoeTensorNames {
  std::string router;                   // [E x H]
  std::string router_fallback;          // transformers >= 5 name, tried when `router` is absent
  std::string score_correction_bias;    // [E] (DeepSeek-V3 noaux_tc)
  std::string shared_gate, shared_up, shared_down;  // always-on shared expert MLP
  std::string shared_expert_gate;       // [1 x H] sigmoid gate (Qwen2-MoE)
  // Fused transformers >= 5 layout: gate_up [E x 2I x H] (gate rows first), down [E x H x I].
  std::string fused_gate_up, fused_down;
};

// Per-family naming. `layer` is the decoder layer; `expert` the routed expert index.
std::string LayerPrefix(int64_t layer);
MoeTensorNames MoeNames(const ModelConfig& cfg, int64_t layer);
ExpertTensorNames ExpertNames(const ModelConfig& cfg, int64_t layer, int64_t expert);

// The layout Qwen and DeepSeek share: router mlp.gate, experts mlp.experts.N.{gate,up,down}_proj,
// and (when `shared_module` is not empty) a shared MLP mlp.<shared_module>.{gate,up,down}_proj.
MoeTensorNames MlpStyleMoeNames(int64_t layer, const std::string& shared_module);
ExpertTensorNames MlpStyleExpertNames(int64_t layer, int64_t expert);

// Families' own files provide these.
MoeTensorNames QwenMoeNames(const ModelConfig& cfg, int64_t layer);
MoeTensorNames DeepseekMoeNames(const ModelConfig& cfg, int64_t layer);
MoeTensorNames MixtralMoeNames(const ModelConfig& cfg, int64_t layer);
ExpertTensorNames MixtralExpertNames(int64_t layer, int64_t expert);

}  // namespace tandem
