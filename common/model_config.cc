#include "common/model_config.h"

#include <cmath>
#include <fstream>
#include <sstream>

#include "absl/strings/str_join.h"
#include "common/json_fields.h"
#include "nlohmann/json.hpp"

namespace tandem {
namespace {

using json = nlohmann::json;

absl::StatusOr<ModelFamily> FamilyOf(const std::string& model_type, const std::string& source) {
  if (model_type == "qwen2_moe") return ModelFamily::kQwen2Moe;
  if (model_type == "qwen3_moe") return ModelFamily::kQwen3Moe;
  if (model_type == "deepseek_v2") return ModelFamily::kDeepseekV2;
  if (model_type == "deepseek_v3") return ModelFamily::kDeepseekV3;
  if (model_type == "mixtral") return ModelFamily::kMixtral;
  return absl::InvalidArgumentError(
      absl::StrCat(source, ": unsupported model_type \"", model_type,
                   "\"; supported: ", absl::StrJoin(SupportedModelTypes(), ", ")));
}

double YarnMscale(double scale, double mscale) {
  if (scale <= 1.0) return 1.0;
  return 0.1 * mscale * std::log(scale) + 1.0;
}

// The RoPE dictionary: `rope_parameters` (transformers >= 5; possibly one dict per attention
// type) or `rope_scaling` (hub checkpoints). Returns an empty object when neither is set.
const json& RopeDict(const json& config) {
  static const json kEmpty = json::object();
  for (const char* key : {"rope_parameters", "rope_scaling"}) {
    auto it = config.find(key);
    if (it == config.end() || !it->is_object()) continue;
    if (it->contains("full_attention") && (*it)["full_attention"].is_object())
      return (*it)["full_attention"];
    return *it;
  }
  return kEmpty;
}

absl::Status ParseRope(const json& config, const JsonFields& top, ModelConfig& cfg) {
  const json& rope_json = RopeDict(config);
  JsonFields rope(rope_json, absl::StrCat(top.source(), " (rope parameters)"));
  // theta lives at top level in hub configs and inside rope_parameters in transformers 5.
  TANDEM_ASSIGN_OR_RETURN(auto theta_inner, rope.OptionalDouble("rope_theta"));
  TANDEM_ASSIGN_OR_RETURN(auto theta_top, top.OptionalDouble("rope_theta"));
  cfg.rope.theta = theta_inner.value_or(theta_top.value_or(10000.0));
  if (!(cfg.rope.theta > 0)) return top.Error("rope_theta", "must be positive");

  std::string type = "default";
  if (auto key = rope.FirstPresent({"rope_type", "type"})) {
    TANDEM_ASSIGN_OR_RETURN(type, rope.String(*key, "default"));
  }
  if (type == "default") {
    cfg.rope.type = RopeConfig::Type::kDefault;
    return absl::OkStatus();
  }
  if (type != "yarn") {
    return absl::InvalidArgumentError(absl::StrCat(
        top.source(), ": unsupported rope type \"", type, "\"; supported: default, yarn"));
  }
  cfg.rope.type = RopeConfig::Type::kYarn;
  TANDEM_ASSIGN_OR_RETURN(auto original, rope.OptionalInt("original_max_position_embeddings"));
  cfg.rope.original_max_position_embeddings = original.value_or(cfg.max_position_embeddings);
  TANDEM_ASSIGN_OR_RETURN(auto factor, rope.OptionalDouble("factor"));
  // Without an explicit factor, YaRN scales by the ratio of the two context lengths.
  cfg.rope.factor = factor ? *factor
                           : static_cast<double>(cfg.max_position_embeddings) /
                                 std::max<int64_t>(1, cfg.rope.original_max_position_embeddings);
  if (!(cfg.rope.factor >= 1.0)) return rope.Error("factor", "must be >= 1 for yarn");
  TANDEM_ASSIGN_OR_RETURN(cfg.rope.beta_fast, rope.Double("beta_fast", 32.0));
  TANDEM_ASSIGN_OR_RETURN(cfg.rope.beta_slow, rope.Double("beta_slow", 1.0));
  TANDEM_ASSIGN_OR_RETURN(cfg.rope.mscale, rope.Double("mscale", 0.0));
  TANDEM_ASSIGN_OR_RETURN(cfg.rope.mscale_all_dim, rope.Double("mscale_all_dim", 0.0));
  TANDEM_ASSIGN_OR_RETURN(cfg.rope.attention_factor, rope.OptionalDouble("attention_factor"));
  TANDEM_ASSIGN_OR_RETURN(cfg.rope.truncate, rope.Bool("truncate", true));
  if (cfg.rope.original_max_position_embeddings <= 0)
    return rope.Error("original_max_position_embeddings", "must be positive for yarn");
  return absl::OkStatus();
}

absl::Status ParseMoe(const JsonFields& f, ModelConfig& cfg) {
  MoeConfig& moe = cfg.moe;
  auto experts_key = f.FirstPresent({"n_routed_experts", "num_local_experts", "num_experts"});
  if (!experts_key) return f.Error("num_experts", "is required (or num_local_experts / n_routed_experts)");
  TANDEM_ASSIGN_OR_RETURN(moe.num_experts, f.Int(*experts_key));
  TANDEM_ASSIGN_OR_RETURN(moe.top_k, f.Int("num_experts_per_tok"));
  if (moe.num_experts <= 0) return f.Error(*experts_key, "must be positive");
  if (moe.top_k <= 0 || moe.top_k > moe.num_experts)
    return f.Error("num_experts_per_tok", "must be in [1, number of experts]");

  switch (cfg.family) {
    case ModelFamily::kMixtral:
      moe.expert_intermediate_size = cfg.intermediate_size;
      moe.norm_topk_prob = true;  // Mixtral always renormalises its top-k softmax weights
      break;
    case ModelFamily::kQwen2Moe:
    case ModelFamily::kQwen3Moe: {
      TANDEM_ASSIGN_OR_RETURN(moe.expert_intermediate_size, f.Int("moe_intermediate_size"));
      TANDEM_ASSIGN_OR_RETURN(moe.norm_topk_prob,
                              f.Bool("norm_topk_prob", cfg.family == ModelFamily::kQwen3Moe));
      if (cfg.family == ModelFamily::kQwen2Moe) {
        TANDEM_ASSIGN_OR_RETURN(moe.shared_intermediate_size,
                                f.Int("shared_expert_intermediate_size", 0));
        moe.shared_expert_gated = moe.shared_intermediate_size > 0;
      }
      break;
    }
    case ModelFamily::kDeepseekV2:
    case ModelFamily::kDeepseekV3: {
      const bool v3 = cfg.family == ModelFamily::kDeepseekV3;
      TANDEM_ASSIGN_OR_RETURN(moe.expert_intermediate_size, f.Int("moe_intermediate_size"));
      TANDEM_ASSIGN_OR_RETURN(int64_t n_shared, f.Int("n_shared_experts", 0));
      moe.shared_intermediate_size = n_shared * moe.expert_intermediate_size;
      TANDEM_ASSIGN_OR_RETURN(std::string scoring,
                              f.String("scoring_func", v3 ? "sigmoid" : "softmax"));
      if (scoring == "softmax") {
        moe.scoring = RouterScoring::kSoftmax;
      } else if (scoring == "sigmoid") {
        moe.scoring = RouterScoring::kSigmoid;
      } else {
        return f.Error("scoring_func", absl::StrCat("\"", scoring, "\" is not softmax or sigmoid"));
      }
      TANDEM_ASSIGN_OR_RETURN(std::string method,
                              f.String("topk_method", v3 ? "noaux_tc" : "greedy"));
      if (method == "greedy") {
        moe.topk_method = TopkMethod::kGreedy;
      } else if (method == "group_limited_greedy") {
        moe.topk_method = TopkMethod::kGroupLimitedGreedy;
      } else if (method == "noaux_tc") {
        moe.topk_method = TopkMethod::kNoauxTc;
        moe.has_score_correction_bias = true;
      } else {
        return f.Error("topk_method", absl::StrCat("\"", method,
                                                   "\" is not greedy, group_limited_greedy or noaux_tc"));
      }
      TANDEM_ASSIGN_OR_RETURN(moe.n_group, f.Int("n_group", 1));
      TANDEM_ASSIGN_OR_RETURN(moe.topk_group, f.Int("topk_group", 1));
      TANDEM_ASSIGN_OR_RETURN(moe.norm_topk_prob, f.Bool("norm_topk_prob", v3));
      TANDEM_ASSIGN_OR_RETURN(moe.routed_scaling_factor, f.Double("routed_scaling_factor", 1.0));
      if (moe.topk_method != TopkMethod::kGreedy) {
        if (moe.n_group <= 0 || moe.num_experts % moe.n_group != 0)
          return f.Error("n_group", "must divide the number of routed experts");
        if (moe.topk_group <= 0 || moe.topk_group > moe.n_group)
          return f.Error("topk_group", "must be in [1, n_group]");
        if (moe.top_k > moe.topk_group * (moe.num_experts / moe.n_group))
          return f.Error("num_experts_per_tok", "exceeds the experts of topk_group groups");
      }
      break;
    }
  }
  if (moe.expert_intermediate_size <= 0)
    return f.Error("moe_intermediate_size", "must be positive");
  return absl::OkStatus();
}

absl::Status ParseLayerPlan(const JsonFields& f, const json& config, ModelConfig& cfg) {
  cfg.layer_is_moe.assign(cfg.num_layers, true);
  switch (cfg.family) {
    case ModelFamily::kMixtral:
      break;
    case ModelFamily::kQwen2Moe:
    case ModelFamily::kQwen3Moe: {
      TANDEM_ASSIGN_OR_RETURN(int64_t step, f.Int("decoder_sparse_step", 1));
      if (step <= 0) return f.Error("decoder_sparse_step", "must be positive");
      std::vector<int64_t> mlp_only;
      if (f.Has("mlp_only_layers")) {
        const auto& list = config.at("mlp_only_layers");
        if (!list.is_array()) return f.Error("mlp_only_layers", "must be a list of layer indices");
        for (const auto& e : list) {
          if (!e.is_number_integer()) return f.Error("mlp_only_layers", "must hold integers");
          mlp_only.push_back(e.get<int64_t>());
        }
      }
      for (int64_t l = 0; l < cfg.num_layers; ++l) {
        bool dense = std::find(mlp_only.begin(), mlp_only.end(), l) != mlp_only.end();
        cfg.layer_is_moe[l] = !dense && (l + 1) % step == 0;
      }
      break;
    }
    case ModelFamily::kDeepseekV2:
    case ModelFamily::kDeepseekV3: {
      TANDEM_ASSIGN_OR_RETURN(int64_t first_dense, f.Int("first_k_dense_replace", 0));
      TANDEM_ASSIGN_OR_RETURN(int64_t freq, f.Int("moe_layer_freq", 1));
      if (freq <= 0) return f.Error("moe_layer_freq", "must be positive");
      for (int64_t l = 0; l < cfg.num_layers; ++l)
        cfg.layer_is_moe[l] = l >= first_dense && l % freq == 0;
      break;
    }
  }
  for (int64_t l = 0; l < cfg.num_layers; ++l) {
    if (!cfg.layer_is_moe[l] && cfg.intermediate_size <= 0)
      return f.Error("intermediate_size", "must be positive when the model has dense MLP layers");
  }
  return absl::OkStatus();
}

absl::Status ParseAttention(const JsonFields& f, ModelConfig& cfg) {
  TANDEM_ASSIGN_OR_RETURN(cfg.num_heads, f.Int("num_attention_heads"));
  if (cfg.num_heads <= 0) return f.Error("num_attention_heads", "must be positive");
  TANDEM_ASSIGN_OR_RETURN(cfg.num_kv_heads, f.Int("num_key_value_heads", cfg.num_heads));
  if (cfg.num_kv_heads <= 0 || cfg.num_heads % cfg.num_kv_heads != 0)
    return f.Error("num_key_value_heads", "must be positive and divide num_attention_heads");
  cfg.use_mla = cfg.family == ModelFamily::kDeepseekV2 || cfg.family == ModelFamily::kDeepseekV3;
  if (cfg.use_mla) {
    MlaConfig& mla = cfg.mla;
    TANDEM_ASSIGN_OR_RETURN(mla.q_lora_rank, f.Int("q_lora_rank", 0));
    TANDEM_ASSIGN_OR_RETURN(mla.kv_lora_rank, f.Int("kv_lora_rank"));
    TANDEM_ASSIGN_OR_RETURN(mla.qk_nope_head_dim, f.Int("qk_nope_head_dim"));
    TANDEM_ASSIGN_OR_RETURN(mla.qk_rope_head_dim, f.Int("qk_rope_head_dim"));
    TANDEM_ASSIGN_OR_RETURN(mla.v_head_dim, f.Int("v_head_dim"));
    if (mla.q_lora_rank < 0) return f.Error("q_lora_rank", "must not be negative");
    for (auto [name, v] : {std::pair{"kv_lora_rank", mla.kv_lora_rank},
                           {"qk_nope_head_dim", mla.qk_nope_head_dim},
                           {"qk_rope_head_dim", mla.qk_rope_head_dim},
                           {"v_head_dim", mla.v_head_dim}}) {
      if (v <= 0) return f.Error(name, "must be positive");
    }
    if (mla.qk_rope_head_dim % 2 != 0) return f.Error("qk_rope_head_dim", "must be even");
    cfg.rope.rotary_dim = mla.qk_rope_head_dim;
    // DeepSeek rotates adjacent pairs; transformers 5 spells it rope_interleave (default true).
    TANDEM_ASSIGN_OR_RETURN(cfg.rope.interleaved, f.Bool("rope_interleave", true));
  } else {
    TANDEM_ASSIGN_OR_RETURN(cfg.head_dim, f.Int("head_dim", cfg.hidden_size / cfg.num_heads));
    if (cfg.head_dim <= 0 || cfg.head_dim % 2 != 0) return f.Error("head_dim", "must be positive and even");
    cfg.rope.rotary_dim = cfg.head_dim;
    cfg.qk_norm = cfg.family == ModelFamily::kQwen3Moe;
  }
  return absl::OkStatus();
}

absl::Status ParseQuantization(const json& config, const JsonFields& f, ModelConfig& cfg) {
  auto it = config.find("quantization_config");
  if (it == config.end() || it->is_null()) return absl::OkStatus();
  if (!it->is_object()) return f.Error("quantization_config", "must be an object");
  JsonFields q(*it, absl::StrCat(f.source(), " (quantization_config)"));
  TANDEM_ASSIGN_OR_RETURN(std::string method, q.String("quant_method", ""));
  if (method != "fp8") {
    return absl::InvalidArgumentError(absl::StrCat(
        f.source(), ": unsupported quantization_config.quant_method \"", method,
        "\"; supported: fp8 (e4m3 with block scales)"));
  }
  TANDEM_ASSIGN_OR_RETURN(std::string fmt, q.String("fmt", "e4m3"));
  if (fmt != "e4m3") return q.Error("fmt", "must be e4m3");
  cfg.fp8_block_rows = cfg.fp8_block_cols = 128;
  if (q.Has("weight_block_size")) {
    const auto& b = (*it)["weight_block_size"];
    if (!b.is_array() || b.size() != 2 || !b[0].is_number_integer() || !b[1].is_number_integer() ||
        b[0].get<int64_t>() <= 0 || b[1].get<int64_t>() <= 0)
      return q.Error("weight_block_size", "must be two positive integers");
    cfg.fp8_block_rows = b[0].get<int64_t>();
    cfg.fp8_block_cols = b[1].get<int64_t>();
  }
  return absl::OkStatus();
}

absl::StatusOr<json> ReadJsonFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot open ", path));
  std::stringstream ss;
  ss << in.rdbuf();
  json doc = json::parse(ss.str(), nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded()) return absl::InvalidArgumentError(absl::StrCat(path, ": not valid JSON"));
  if (!doc.is_object()) return absl::InvalidArgumentError(absl::StrCat(path, ": not a JSON object"));
  return doc;
}

void AddIds(std::vector<int32_t>& ids, const std::vector<int64_t>& more) {
  for (int64_t id : more) {
    if (std::find(ids.begin(), ids.end(), id) == ids.end()) ids.push_back(static_cast<int32_t>(id));
  }
}

}  // namespace

const std::vector<std::string>& SupportedModelTypes() {
  static const std::vector<std::string> kTypes = {"deepseek_v2", "deepseek_v3", "mixtral",
                                                  "qwen2_moe", "qwen3_moe"};
  return kTypes;
}

double ModelConfig::AttentionScale() const {
  const int64_t qk_dim = use_mla ? mla.qk_nope_head_dim + mla.qk_rope_head_dim : head_dim;
  double scale = 1.0 / std::sqrt(static_cast<double>(qk_dim));
  if (use_mla && rope.type == RopeConfig::Type::kYarn && rope.mscale_all_dim != 0.0) {
    const double m = YarnMscale(rope.factor, rope.mscale_all_dim);
    scale *= m * m;
  }
  return scale;
}

int64_t ModelConfig::NumMoeLayers() const {
  return std::count(layer_is_moe.begin(), layer_is_moe.end(), true);
}

absl::StatusOr<ModelConfig> ParseModelConfig(const json& config, const std::string& source) {
  if (!config.is_object()) return absl::InvalidArgumentError(absl::StrCat(source, ": not a JSON object"));
  JsonFields f(config, source);
  ModelConfig cfg;
  TANDEM_ASSIGN_OR_RETURN(cfg.model_type, f.String("model_type", ""));
  if (cfg.model_type.empty()) return f.Error("model_type", "is required");
  TANDEM_ASSIGN_OR_RETURN(cfg.family, FamilyOf(cfg.model_type, source));

  TANDEM_ASSIGN_OR_RETURN(cfg.vocab_size, f.Int("vocab_size"));
  TANDEM_ASSIGN_OR_RETURN(cfg.hidden_size, f.Int("hidden_size"));
  TANDEM_ASSIGN_OR_RETURN(cfg.num_layers, f.Int("num_hidden_layers"));
  TANDEM_ASSIGN_OR_RETURN(cfg.intermediate_size, f.Int("intermediate_size", 0));
  TANDEM_ASSIGN_OR_RETURN(cfg.max_position_embeddings, f.Int("max_position_embeddings", 4096));
  TANDEM_ASSIGN_OR_RETURN(cfg.rms_norm_eps, f.Double("rms_norm_eps", 1e-6));
  TANDEM_ASSIGN_OR_RETURN(cfg.tie_word_embeddings, f.Bool("tie_word_embeddings", false));
  if (cfg.vocab_size <= 0) return f.Error("vocab_size", "must be positive");
  if (cfg.hidden_size <= 0) return f.Error("hidden_size", "must be positive");
  if (cfg.num_layers <= 0) return f.Error("num_hidden_layers", "must be positive");
  if (cfg.max_position_embeddings <= 0) return f.Error("max_position_embeddings", "must be positive");
  if (!(cfg.rms_norm_eps > 0)) return f.Error("rms_norm_eps", "must be positive");
  TANDEM_ASSIGN_OR_RETURN(std::string act, f.String("hidden_act", "silu"));
  if (act != "silu") return f.Error("hidden_act", absl::StrCat("\"", act, "\" is not supported (only silu)"));

  TANDEM_RETURN_IF_ERROR(ParseAttention(f, cfg));
  TANDEM_RETURN_IF_ERROR(ParseRope(config, f, cfg));
  TANDEM_RETURN_IF_ERROR(ParseMoe(f, cfg));
  TANDEM_RETURN_IF_ERROR(ParseLayerPlan(f, config, cfg));
  TANDEM_RETURN_IF_ERROR(ParseQuantization(config, f, cfg));

  TANDEM_ASSIGN_OR_RETURN(auto bos, f.OptionalInt("bos_token_id"));
  if (bos) cfg.bos_token_id = static_cast<int32_t>(*bos);
  TANDEM_ASSIGN_OR_RETURN(auto eos, f.IntOrIntList("eos_token_id"));
  AddIds(cfg.eos_token_ids, eos);
  return cfg;
}

absl::StatusOr<ModelConfig> LoadModelConfig(const std::string& model_dir,
                                            const std::string& config_path) {
  const std::string path = config_path.empty() ? model_dir + "/config.json" : config_path;
  TANDEM_ASSIGN_OR_RETURN(json doc, ReadJsonFile(path));
  TANDEM_ASSIGN_OR_RETURN(ModelConfig cfg, ParseModelConfig(doc, path));
  const std::string gen_path = model_dir + "/generation_config.json";
  if (std::ifstream(gen_path).good()) {
    TANDEM_ASSIGN_OR_RETURN(json gen, ReadJsonFile(gen_path));
    JsonFields g(gen, gen_path);
    TANDEM_ASSIGN_OR_RETURN(auto eos, g.IntOrIntList("eos_token_id"));
    AddIds(cfg.eos_token_ids, eos);
    TANDEM_ASSIGN_OR_RETURN(auto bos, g.OptionalInt("bos_token_id"));
    if (bos && !cfg.bos_token_id) cfg.bos_token_id = static_cast<int32_t>(*bos);
  }
  return cfg;
}

}  // namespace tandem
