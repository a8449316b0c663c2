#include "common/model_config.h"

#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace tandem {
namespace {

using json = nlohmann::json;

json DeepseekV3Hub() {
  return json::parse(R"({
    "model_type": "deepseek_v3", "vocab_size": 1000, "hidden_size": 64, "intermediate_size": 160,
    "moe_intermediate_size": 32, "num_hidden_layers": 4, "num_attention_heads": 4,
    "num_key_value_heads": 4, "n_shared_experts": 1, "n_routed_experts": 16,
    "num_experts_per_tok": 4, "routed_scaling_factor": 2.5, "scoring_func": "sigmoid",
    "topk_method": "noaux_tc", "n_group": 4, "topk_group": 2, "norm_topk_prob": true,
    "first_k_dense_replace": 1, "moe_layer_freq": 1, "q_lora_rank": null, "kv_lora_rank": 32,
    "qk_nope_head_dim": 16, "qk_rope_head_dim": 8, "v_head_dim": 16, "max_position_embeddings": 5120,
    "rope_theta": 10000, "rope_scaling": {"type": "yarn", "factor": 40, "original_max_position_embeddings": 128,
      "beta_fast": 32, "beta_slow": 1, "mscale": 1.0, "mscale_all_dim": 1.0},
    "quantization_config": {"quant_method": "fp8", "fmt": "e4m3", "weight_block_size": [128, 128]},
    "eos_token_id": 1, "bos_token_id": 0})");
}

TEST(ModelConfig, DeepseekV3HubLayout) {
  auto cfg = ParseModelConfig(DeepseekV3Hub(), "config.json");
  ASSERT_TRUE(cfg.ok()) << cfg.status();
  EXPECT_EQ(cfg->family, ModelFamily::kDeepseekV3);
  EXPECT_TRUE(cfg->use_mla);
  EXPECT_EQ(cfg->mla.q_lora_rank, 0);
  EXPECT_EQ(cfg->moe.num_experts, 16);
  EXPECT_EQ(cfg->moe.shared_intermediate_size, 32);
  EXPECT_EQ(cfg->moe.topk_method, TopkMethod::kNoauxTc);
  EXPECT_EQ(cfg->moe.scoring, RouterScoring::kSigmoid);
  EXPECT_TRUE(cfg->moe.has_score_correction_bias);
  EXPECT_EQ(cfg->layer_is_moe, (std::vector<bool>{false, true, true, true}));
  EXPECT_EQ(cfg->rope.type, RopeConfig::Type::kYarn);
  EXPECT_DOUBLE_EQ(cfg->rope.factor, 40.0);
  EXPECT_EQ(cfg->rope.original_max_position_embeddings, 128);
  EXPECT_TRUE(cfg->rope.interleaved);
  EXPECT_EQ(cfg->rope.rotary_dim, 8);
  EXPECT_EQ(cfg->fp8_block_rows, 128);
  // Softmax scale: (16 + 8)^-0.5 * (0.1 * ln 40 + 1)^2.
  const double m = 0.1 * std::log(40.0) + 1.0;
  EXPECT_NEAR(cfg->AttentionScale(), m * m / std::sqrt(24.0), 1e-12);
}

TEST(ModelConfig, TransformersFiveLayoutReadsRopeParameters) {
  json c = DeepseekV3Hub();
  c.erase("rope_theta");
  c.erase("rope_scaling");
  c["rope_parameters"] = {{"rope_type", "yarn"}, {"rope_theta", 50000.0}, {"factor", 40.0},
                          {"original_max_position_embeddings", 128}, {"mscale", 1.0},
                          {"mscale_all_dim", 1.0}, {"beta_fast", 32.0}, {"beta_slow", 1.0}};
  c["rope_interleave"] = true;
  auto cfg = ParseModelConfig(c, "config.json");
  ASSERT_TRUE(cfg.ok()) << cfg.status();
  EXPECT_EQ(cfg->rope.type, RopeConfig::Type::kYarn);
  EXPECT_DOUBLE_EQ(cfg->rope.theta, 50000.0);
  EXPECT_DOUBLE_EQ(cfg->rope.factor, 40.0);
}

TEST(ModelConfig, QwenLayerPlanAndExpertNames) {
  json c = json::parse(R"({"model_type": "qwen2_moe", "vocab_size": 100, "hidden_size": 64,
    "intermediate_size": 96, "moe_intermediate_size": 32, "shared_expert_intermediate_size": 48,
    "num_hidden_layers": 4, "num_attention_heads": 4, "num_key_value_heads": 2, "num_experts": 8,
    "num_experts_per_tok": 2, "decoder_sparse_step": 2, "mlp_only_layers": [3], "rope_theta": 1e6})");
  auto cfg = ParseModelConfig(c, "x");
  ASSERT_TRUE(cfg.ok()) << cfg.status();
  EXPECT_EQ(cfg->layer_is_moe, (std::vector<bool>{false, true, false, false}));
  EXPECT_TRUE(cfg->moe.shared_expert_gated);
  EXPECT_FALSE(cfg->moe.norm_topk_prob);
  EXPECT_EQ(cfg->head_dim, 16);
  EXPECT_FALSE(cfg->rope.interleaved);
  c["model_type"] = "qwen3_moe";
  c["head_dim"] = 32;
  c.erase("num_experts");
  c["num_local_experts"] = 8;  // the other spelling
  cfg = ParseModelConfig(c, "x");
  ASSERT_TRUE(cfg.ok()) << cfg.status();
  EXPECT_EQ(cfg->head_dim, 32);
  EXPECT_TRUE(cfg->qk_norm);
  EXPECT_EQ(cfg->moe.num_experts, 8);
}

TEST(ModelConfig, UnknownModelTypeListsSupportedOnes) {
  json c = DeepseekV3Hub();
  c["model_type"] = "llama4";
  auto cfg = ParseModelConfig(c, "dir/config.json");
  ASSERT_FALSE(cfg.ok());
  const std::string msg(cfg.status().message());
  EXPECT_NE(msg.find("dir/config.json"), std::string::npos) << msg;
  EXPECT_NE(msg.find("llama4"), std::string::npos) << msg;
  for (const char* t : {"deepseek_v2", "deepseek_v3", "mixtral", "qwen2_moe", "qwen3_moe"})
    EXPECT_NE(msg.find(t), std::string::npos) << msg;
}

TEST(ModelConfig, BadFieldsAreClearErrors) {
  struct Bad {
    const char* field;
    json value;
  } cases[] = {
      {"hidden_size", "64"},        {"hidden_size", -1},         {"num_experts_per_tok", 17},
      {"n_group", 5},               {"topk_group", 9},           {"scoring_func", "relu"},
      {"topk_method", "random"},    {"kv_lora_rank", nullptr},   {"hidden_act", "gelu"},
      {"num_key_value_heads", 3},   {"vocab_size", 1.5},
  };
  for (const Bad& b : cases) {
    json c = DeepseekV3Hub();
    c[b.field] = b.value;
    auto cfg = ParseModelConfig(c, "config.json");
    EXPECT_FALSE(cfg.ok()) << b.field << " = " << b.value.dump();
    if (!cfg.ok()) {
      EXPECT_NE(std::string(cfg.status().message()).find("config.json"), std::string::npos);
    }
  }
  json c = DeepseekV3Hub();
  c["rope_scaling"]["type"] = "longrope";
  EXPECT_FALSE(ParseModelConfig(c, "config.json").ok());
  c = DeepseekV3Hub();
  c["quantization_config"]["quant_method"] = "gptq";
  EXPECT_FALSE(ParseModelConfig(c, "config.json").ok());
  EXPECT_FALSE(ParseModelConfig(json::array(), "config.json").ok());
}

TEST(ModelConfig, MissingFileIsNotFound) {
  auto cfg = LoadModelConfig("/nonexistent-dir");
  EXPECT_EQ(cfg.status().code(), absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace tandem
