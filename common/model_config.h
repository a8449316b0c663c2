// The architecture description of a Hugging Face MoE checkpoint, read from its config.json in
// either layout: the one real hub checkpoints carry (`rope_theta`, `rope_scaling`, `num_experts`,
// ...) and the one transformers >= 5 writes (`rope_parameters`, `num_local_experts`,
// `rope_interleave`, ...). Everything downstream (loader, engine, workers) reads only this struct.
// Plain data; parse once, then share read-only between threads.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"
#include "nlohmann/json_fwd.hpp"

namespace tandem {

enum class ModelFamily { kQwen2Moe, kQwen3Moe, kDeepseekV2, kDeepseekV3, kMixtral };

// Rotary position embedding parameters (default or YaRN).
struct RopeConfig {
  enum class Type { kDefault, kYarn };
  Type type = Type::kDefault;
  double theta = 10000.0;
  int64_t rotary_dim = 0;  // dimensions rotated per head (head_dim, or qk_rope_head_dim for MLA)
  bool interleaved = false;  // rotate adjacent pairs (DeepSeek) instead of the two halves
  // YaRN.
  double factor = 1.0;
  int64_t original_max_position_embeddings = 0;
  double beta_fast = 32.0;
  double beta_slow = 1.0;
  double mscale = 0.0;          // 0 = absent
  double mscale_all_dim = 0.0;  // 0 = absent
  std::optional<double> attention_factor;
  bool truncate = true;  // floor/ceil the correction range, as DeepSeek does
};

enum class RouterScoring { kSoftmax, kSigmoid };
enum class TopkMethod { kGreedy, kGroupLimitedGreedy, kNoauxTc };

struct MoeConfig {
  int64_t num_experts = 0;
  int64_t top_k = 0;
  int64_t expert_intermediate_size = 0;
  RouterScoring scoring = RouterScoring::kSoftmax;
  TopkMethod topk_method = TopkMethod::kGreedy;
  int64_t n_group = 1;
  int64_t topk_group = 1;
  bool norm_topk_prob = false;
  double routed_scaling_factor = 1.0;
  bool has_score_correction_bias = false;  // DeepSeek-V3 noaux_tc
  // Shared experts: intermediate size of the always-on MLP (0 = none), and whether its output is
  // scaled by sigmoid(shared_expert_gate(x)) as in Qwen2-MoE.
  int64_t shared_intermediate_size = 0;
  bool shared_expert_gated = false;
};

struct MlaConfig {
  int64_t q_lora_rank = 0;  // 0: q_proj straight from hidden
  int64_t kv_lora_rank = 0;
  int64_t qk_nope_head_dim = 0;
  int64_t qk_rope_head_dim = 0;
  int64_t v_head_dim = 0;
};

struct ModelConfig {
  std::string model_type;
  ModelFamily family = ModelFamily::kQwen2Moe;
  int64_t vocab_size = 0;
  int64_t hidden_size = 0;
  int64_t num_layers = 0;
  int64_t num_heads = 0;
  int64_t num_kv_heads = 0;
  int64_t head_dim = 0;           // GQA head dim (unused by MLA)
  int64_t intermediate_size = 0;  // dense MLP layers
  int64_t max_position_embeddings = 0;
  double rms_norm_eps = 1e-6;
  bool tie_word_embeddings = false;
  bool qk_norm = false;  // Qwen3: RMSNorm over each head of q and k before RoPE
  bool use_mla = false;
  MlaConfig mla;
  MoeConfig moe;
  RopeConfig rope;
  std::vector<bool> layer_is_moe;  // per decoder layer: routed MoE (true) or dense MLP
  // FP8 checkpoints: block size of the `*_scale_inv` tensors ({0,0} when not quantized).
  int64_t fp8_block_rows = 0;
  int64_t fp8_block_cols = 0;
  std::optional<int32_t> bos_token_id;
  std::vector<int32_t> eos_token_ids;  // union of config.json and generation_config.json

  // Softmax scale of attention logits (1/sqrt(qk head dim), times YaRN's mscale^2 for MLA).
  double AttentionScale() const;
  int64_t NumMoeLayers() const;
};

// The model_type strings this build understands, for error messages and docs.
const std::vector<std::string>& SupportedModelTypes();

// Parses a config.json document. `source` names it in error messages.
absl::StatusOr<ModelConfig> ParseModelConfig(const nlohmann::json& config, const std::string& source);

// Reads DIR/config.json (or `config_path` when given) and DIR/generation_config.json if present.
absl::StatusOr<ModelConfig> LoadModelConfig(const std::string& model_dir,
                                            const std::string& config_path = "");

}  // namespace tandem
