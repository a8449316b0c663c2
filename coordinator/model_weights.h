// The non-expert weights the coordinator holds (attention, norms, router, shared experts, dense
// MLPs, embeddings, LM head), loaded from a checkpoint by LoadModelWeights. Routed experts are not
// here: each ExpertExecutor loads its own. Read-only after load.
#pragma once

#include <vector>

#include "common/checkpoint.h"
#include "common/model_config.h"
#include "kernels/cpu/linear.h"

namespace tandem {

struct MlpWeights {
  WeightMatrix gate, up, down;  // [I x H], [I x H], [H x I]
  bool empty() const { return gate.empty(); }
};

struct GqaWeights {
  WeightMatrix q_proj, k_proj, v_proj, o_proj;  // biases inside, when the checkpoint has them
  std::vector<float> q_norm, k_norm;            // Qwen3 per-head RMSNorm weights [head_dim]
};

struct MlaWeights {
  WeightMatrix q_proj;    // q_lora_rank == 0
  WeightMatrix q_a_proj;  // q_lora_rank > 0
  std::vector<float> q_a_norm;
  WeightMatrix q_b_proj;
  WeightMatrix kv_a_proj;  // [kv_lora_rank + rope_dim x H]
  std::vector<float> kv_a_norm;
  // kv_b_proj split per head and kept in f32 for the absorbed decode form:
  std::vector<float> w_uk;  // [heads][nope_dim][kv_lora_rank]
  std::vector<float> w_uv;  // [heads][v_dim][kv_lora_rank]
  WeightMatrix o_proj;
};

struct LayerWeights {
  std::vector<float> input_norm, post_attention_norm;
  GqaWeights gqa;
  MlaWeights mla;
  bool is_moe = false;
  MlpWeights dense;                 // !is_moe
  WeightMatrix router;              // [E x H], is_moe
  std::vector<float> score_correction_bias;  // [E] or empty
  MlpWeights shared;                // may be empty
  WeightMatrix shared_expert_gate;  // [1 x H] or empty
};

struct ModelWeights {
  WeightMatrix embed;    // [V x H]
  std::vector<LayerWeights> layers;
  std::vector<float> final_norm;
  WeightMatrix lm_head;  // [V x H]; empty when tied to embed
  const WeightMatrix& output() const { return lm_head.empty() ? embed : lm_head; }
};

absl::StatusOr<ModelWeights> LoadModelWeights(const ModelConfig& config, const Checkpoint& checkpoint);

}  // namespace tandem
