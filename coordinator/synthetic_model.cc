#include "coordinator/synthetic_model.h"

#include <cmath>

#include "common/bf16.h"
#include "nlohmann/json.hpp"

namespace tandem {
namespace {

// The presets' hub config.json fields that shape the model (tokenizer-only fields left out).
nlohmann::json PresetJson(const std::string& preset) {
  if (preset == "qwen2-57b-a14b") {
    return {{"model_type", "qwen2_moe"}, {"hidden_size", 3584}, {"num_hidden_layers", 28},
            {"num_attention_heads", 28}, {"num_key_value_heads", 4}, {"intermediate_size", 18944},
            {"moe_intermediate_size", 2560}, {"shared_expert_intermediate_size", 20480},
            {"num_experts", 64}, {"num_experts_per_tok", 8}, {"norm_topk_prob", false},
            {"decoder_sparse_step", 1}, {"vocab_size", 151936}, {"rope_theta", 1000000.0},
            {"max_position_embeddings", 32768}, {"rms_norm_eps", 1e-6},
            {"tie_word_embeddings", false}, {"bos_token_id", 151643}, {"eos_token_id", 151643}};
  }
  const bool v3 = preset == "deepseek-v3";
  if (!v3 && preset != "deepseek-v2.5") return nullptr;
  nlohmann::json rope_scaling = {{"type", "yarn"}, {"factor", 40}, {"beta_fast", 32},
                                 {"beta_slow", 1}, {"mscale", v3 ? 1.0 : 0.707},
                                 {"mscale_all_dim", v3 ? 1.0 : 0.707},
                                 {"original_max_position_embeddings", 4096}};
  nlohmann::json c = {
      {"model_type", v3 ? "deepseek_v3" : "deepseek_v2"}, {"hidden_size", v3 ? 7168 : 5120},
      {"num_hidden_layers", v3 ? 61 : 60}, {"num_attention_heads", 128},
      {"num_key_value_heads", 128}, {"intermediate_size", v3 ? 18432 : 12288},
      {"moe_intermediate_size", v3 ? 2048 : 1536}, {"n_routed_experts", v3 ? 256 : 160},
      {"n_shared_experts", v3 ? 1 : 2}, {"num_experts_per_tok", v3 ? 8 : 6},
      {"n_group", 8}, {"topk_group", v3 ? 4 : 3},
      {"topk_method", v3 ? "noaux_tc" : "group_limited_greedy"},
      {"scoring_func", v3 ? "sigmoid" : "softmax"}, {"norm_topk_prob", v3},
      {"routed_scaling_factor", v3 ? 2.5 : 16.0}, {"first_k_dense_replace", v3 ? 3 : 1},
      {"moe_layer_freq", 1}, {"q_lora_rank", 1536}, {"kv_lora_rank", 512},
      {"qk_nope_head_dim", 128}, {"qk_rope_head_dim", 64}, {"v_head_dim", 128},
      {"vocab_size", v3 ? 129280 : 102400}, {"rope_theta", 10000.0},
      {"rope_scaling", rope_scaling}, {"max_position_embeddings", 163840},
      {"rms_norm_eps", 1e-6}, {"tie_word_embeddings", false}, {"bos_token_id", 0},
      {"eos_token_id", 1}};
  return c;
}

// splitmix64: a counter-based generator, so any element's value needs no other element's.
inline uint64_t Mix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

// Rows [r0, r1) x columns [c0, c1) of the random [rows x cols] matrix of `stream`: the same values
// as the whole matrix holds there, so a worker generates only its slice of an expert.
WeightMatrix RandomBlock(int64_t rows, int64_t cols, uint64_t stream, int64_t r0, int64_t r1,
                         int64_t c0, int64_t c1) {
  WeightMatrix w;
  w.rows = r1 - r0;
  w.cols = c1 - c0;
  w.bf16.resize(w.rows * w.cols);
  const float limit = std::sqrt(3.0f / static_cast<float>(cols));
  const float scale = 2.0f * limit / 16777216.0f;  // 24 random bits -> [-limit, limit)
  // Two values per mixed counter (its high and low 24-bit fields): element k of the whole matrix
  // (row-major) takes field k % 2 of counter k / 2.
#pragma omp parallel for schedule(static)
  for (int64_t r = r0; r < r1; ++r) {
    uint16_t* out = w.bf16.data() + (r - r0) * w.cols;
    uint64_t counter = ~uint64_t{0}, bits = 0;
    for (int64_t c = c0; c < c1; ++c) {
      const uint64_t k = static_cast<uint64_t>(r * cols + c);
      if (k / 2 != counter) {  // one mix serves two neighbours
        counter = k / 2;
        bits = Mix(stream + counter * 0x9e3779b97f4a7c15ull);
      }
      const uint64_t field = k % 2 == 0 ? bits >> 40 : bits & 0xffffff;
      out[c - c0] = FloatToBf16(static_cast<float>(field) * scale - limit);
    }
  }
  return w;
}

WeightMatrix RandomMatrix(int64_t rows, int64_t cols, uint64_t stream) {
  return RandomBlock(rows, cols, stream, 0, rows, 0, cols);
}

// A stream id per tensor: (layer, slot) mixed with the seed.
uint64_t Stream(uint64_t seed, int64_t layer, int64_t slot) {
  return Mix(seed ^ Mix((static_cast<uint64_t>(layer) << 20) + static_cast<uint64_t>(slot)));
}

// Intermediate rows [begin, end) of a random expert (all of it: 0, inter).
MlpWeights RandomMlp(int64_t hidden, int64_t inter, uint64_t stream, int64_t begin, int64_t end) {
  MlpWeights m;
  m.gate = RandomBlock(inter, hidden, Mix(stream + 1), begin, end, 0, hidden);
  m.up = RandomBlock(inter, hidden, Mix(stream + 2), begin, end, 0, hidden);
  m.down = RandomBlock(hidden, inter, Mix(stream + 3), 0, hidden, begin, end);
  return m;
}

MlpWeights RandomMlp(int64_t hidden, int64_t inter, uint64_t stream) {
  return RandomMlp(hidden, inter, stream, 0, inter);
}

}  // namespace

std::string SyntheticPresetNames() { return "qwen2-57b-a14b, deepseek-v3, deepseek-v2.5"; }

absl::StatusOr<ModelConfig> SyntheticConfig(const std::string& preset, int64_t layers) {
  nlohmann::json json = PresetJson(preset);
  if (json.is_null()) {
    return absl::InvalidArgumentError(absl::StrCat("unknown preset \"", preset, "\"; known: ",
                                                   SyntheticPresetNames()));
  }
  const int64_t all = json["num_hidden_layers"].get<int64_t>();
  if (layers < 0 || layers > all) {
    return absl::InvalidArgumentError(
        absl::StrCat("--layers must be in [1, ", all, "] for ", preset, ", got ", layers));
  }
  if (layers > 0) json["num_hidden_layers"] = layers;
  return ParseModelConfig(json, "preset " + preset);
}

ModelWeights RandomModelWeights(const ModelConfig& c, uint64_t seed) {
  ModelWeights w;
  const int64_t h = c.hidden_size, heads = c.num_heads;
  w.embed = RandomMatrix(c.vocab_size, h, Stream(seed, -1, 0));
  w.lm_head = RandomMatrix(c.vocab_size, h, Stream(seed, -1, 1));
  w.final_norm.assign(h, 1.0f);
  w.layers.resize(c.num_layers);
  for (int64_t l = 0; l < c.num_layers; ++l) {
    LayerWeights& lw = w.layers[l];
    lw.input_norm.assign(h, 1.0f);
    lw.post_attention_norm.assign(h, 1.0f);
    if (c.use_mla) {
      const MlaConfig& m = c.mla;
      const int64_t qk = m.qk_nope_head_dim + m.qk_rope_head_dim;
      if (m.q_lora_rank == 0) {
        lw.mla.q_proj = RandomMatrix(heads * qk, h, Stream(seed, l, 1));
      } else {
        lw.mla.q_a_proj = RandomMatrix(m.q_lora_rank, h, Stream(seed, l, 1));
        lw.mla.q_a_norm.assign(m.q_lora_rank, 1.0f);
        lw.mla.q_b_proj = RandomMatrix(heads * qk, m.q_lora_rank, Stream(seed, l, 2));
      }
      lw.mla.kv_a_proj = RandomMatrix(m.kv_lora_rank + m.qk_rope_head_dim, h, Stream(seed, l, 3));
      lw.mla.kv_a_norm.assign(m.kv_lora_rank, 1.0f);
      const WeightMatrix uk = RandomMatrix(heads * m.qk_nope_head_dim, m.kv_lora_rank,
                                           Stream(seed, l, 4));
      const WeightMatrix uv = RandomMatrix(heads * m.v_head_dim, m.kv_lora_rank, Stream(seed, l, 5));
      lw.mla.w_uk.resize(uk.bf16.size());
      lw.mla.w_uv.resize(uv.bf16.size());
      for (size_t i = 0; i < uk.bf16.size(); ++i) lw.mla.w_uk[i] = Bf16ToFloat(uk.bf16[i]);
      for (size_t i = 0; i < uv.bf16.size(); ++i) lw.mla.w_uv[i] = Bf16ToFloat(uv.bf16[i]);
      lw.mla.o_proj = RandomMatrix(h, heads * m.v_head_dim, Stream(seed, l, 6));
    } else {
      const int64_t q = heads * c.head_dim, kv = c.num_kv_heads * c.head_dim;
      lw.gqa.q_proj = RandomMatrix(q, h, Stream(seed, l, 1));
      lw.gqa.k_proj = RandomMatrix(kv, h, Stream(seed, l, 2));
      lw.gqa.v_proj = RandomMatrix(kv, h, Stream(seed, l, 3));
      lw.gqa.o_proj = RandomMatrix(h, q, Stream(seed, l, 4));
      if (c.qk_norm) {
        lw.gqa.q_norm.assign(c.head_dim, 1.0f);
        lw.gqa.k_norm.assign(c.head_dim, 1.0f);
      }
    }
    lw.is_moe = c.layer_is_moe[l];
    if (!lw.is_moe) {
      lw.dense = RandomMlp(h, c.intermediate_size, Stream(seed, l, 7));
      continue;
    }
    lw.router = RandomMatrix(c.moe.num_experts, h, Stream(seed, l, 8));
    if (c.moe.has_score_correction_bias) lw.score_correction_bias.assign(c.moe.num_experts, 0.0f);
    if (c.moe.shared_intermediate_size > 0)
      lw.shared = RandomMlp(h, c.moe.shared_intermediate_size, Stream(seed, l, 9));
    if (c.moe.shared_expert_gated) lw.shared_expert_gate = RandomMatrix(1, h, Stream(seed, l, 10));
  }
  return w;
}

std::string SyntheticFingerprint(const std::string& preset, int64_t layers, uint64_t seed) {
  return absl::StrCat("synthetic:", preset, ":", layers, ":", seed);
}

ExpertShard::ExpertSource RandomExpertSource(const ModelConfig& c, uint64_t seed,
                                             const ShardPlan& plan) {
  const int64_t h = c.hidden_size, inter = c.moe.expert_intermediate_size;
  const int64_t num_experts = c.moe.num_experts;
  return [=](int64_t l, int64_t e) -> absl::StatusOr<MlpWeights> {
    if (plan.count <= 1) return RandomMlp(h, inter, Stream(seed, l, 1000 + e));
    if (plan.mode == ShardPlan::Mode::kExpertParallel) {
      if (!plan.OwnsExpert(e, num_experts)) return MlpWeights();
      return RandomMlp(h, inter, Stream(seed, l, 1000 + e));
    }
    const auto [begin, end] = plan.IntermediateRange(inter);
    if (begin == end) return MlpWeights();
    return RandomMlp(h, inter, Stream(seed, l, 1000 + e), begin, end);  // only the slice
  };
}

absl::StatusOr<std::unique_ptr<InProcessExpertExecutor>> RandomExpertExecutor(
    const ModelConfig& c, const ExpertShardOptions& options, uint64_t seed) {
  TANDEM_ASSIGN_OR_RETURN(auto shard,
                          ExpertShard::FromSource(c, RandomExpertSource(c, seed), options));
  return InProcessExpertExecutor::FromShard(std::move(shard));
}

}  // namespace tandem
