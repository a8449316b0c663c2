#include "coordinator/demo_model.h"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <algorithm>
#include <random>

#include "common/bf16.h"
#include "common/safetensors_writer.h"
#include "nlohmann/json.hpp"

namespace tandem {
namespace {

using json = nlohmann::ordered_json;

constexpr int kHidden = 128, kLayers = 4, kHeads = 4, kExperts = 16, kTopK = 4;
constexpr int kMoeInter = 64, kDenseInter = 256, kQLora = 64, kKvLora = 64;
constexpr int kNope = 32, kRopeDim = 16, kVDim = 32;

// GPT-2's byte -> printable code point map, which byte-level BPE vocabularies are written in.
std::string ByteToken(int byte) {
  int cp;
  if ((byte >= 33 && byte <= 126) || (byte >= 161 && byte <= 172) || (byte >= 174 && byte <= 255)) {
    cp = byte;
  } else {
    int n = 0;
    for (int b = 0; b < byte; ++b)
      if (!((b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255))) ++n;
    cp = 256 + n;
  }
  std::string s;
  if (cp < 0x80) {
    s.push_back(static_cast<char>(cp));
  } else {
    s.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    s.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
  return s;
}

// Deterministic normal samples (Box-Muller over mt19937_64, whose output the standard fixes).
class Gaussian {
 public:
  explicit Gaussian(uint64_t seed) : rng_(seed) {}
  float Next(float stddev) {
    const double u1 = (static_cast<double>(rng_() >> 11) + 1.0) / 9007199254740993.0;
    const double u2 = static_cast<double>(rng_() >> 11) / 9007199254740992.0;
    return static_cast<float>(stddev * std::sqrt(-2.0 * std::log(u1)) * std::cos(2 * M_PI * u2));
  }

 private:
  std::mt19937_64 rng_;
};

class TensorBuilder {
 public:
  void Bf16(const std::string& name, std::vector<int64_t> shape, float stddev, float mean = 0) {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    std::vector<uint8_t> bytes(n * 2);
    for (int64_t i = 0; i < n; ++i) {
      const uint16_t v = FloatToBf16(mean + (stddev > 0 ? rng_.Next(stddev) : 0.0f));
      bytes[2 * i] = v & 0xff;
      bytes[2 * i + 1] = v >> 8;
    }
    tensors_.push_back({name, "BF16", std::move(shape), std::move(bytes)});
  }
  void Linear(const std::string& name, int64_t rows, int64_t cols) {
    Bf16(name, {rows, cols}, 1.0f / std::sqrt(static_cast<float>(cols)));
  }
  void Norm(const std::string& name, int64_t n) { Bf16(name, {n}, 0.0f, 1.0f); }
  // Replaces tensors `a` and `b` (same trailing dims) by their row concatenation `name`.
  absl::Status Concat(const std::string& name, const std::string& a, const std::string& b) {
    auto find = [&](const std::string& n) {
      return std::find_if(tensors_.begin(), tensors_.end(), [&](auto& t) { return t.name == n; });
    };
    auto ia = find(a), ib = find(b);
    if (ia == tensors_.end() || ib == tensors_.end()) return absl::InternalError("demo: bad concat");
    TensorToWrite joined{name, ia->dtype, ia->shape, ia->bytes};
    joined.shape[0] += ib->shape[0];
    joined.bytes.insert(joined.bytes.end(), ib->bytes.begin(), ib->bytes.end());
    tensors_.erase(find(b));
    tensors_.erase(find(a));
    tensors_.push_back(std::move(joined));
    return absl::OkStatus();
  }
  std::vector<TensorToWrite>& tensors() { return tensors_; }

 private:
  Gaussian rng_{20261124};
  std::vector<TensorToWrite> tensors_;
};

// Whole-word tokens (GPT-2 "Ġ" = leading space) appended to the byte vocabulary. The demo's LM
// head favours them, so its random continuations read as words rather than raw bytes.
constexpr const char* kDemoWords[] = {
    "the", "experts", "run", "on", "CPU", "GPU", "and", "tokens", "flow", "through", "layers",
    "of", "memory", "sockets", "rings", "shared", "attention", "router", "picks", "a", "few",
    "while", "cache", "keeps", "every", "step", "fast", "model", "weights", "stream", "from",
    "DRAM", "into", "AMX", "tiles", "latent", "keys", "values", "decode", "prefill", "batch",
    "workers", "wait", "graph", "replays", "deferred", "overlap", "hybrid", "inference", "is",
    "in", "tandem", "with", "each", "other", "to", "bandwidth", "compute", "kernels", "quietly"};

constexpr const char* kChatTemplate =
    "{{ bos_token }}{% for message in messages %}"
    "{% if message['role'] == 'system' %}{{ message['content'] }}\n"
    "{% elif message['role'] == 'user' %}<｜User｜>{{ message['content'] }}"
    "{% elif message['role'] == 'assistant' %}<｜Assistant｜>{{ message['content'] }}<｜end▁of▁sentence｜>"
    "{% endif %}{% endfor %}{% if add_generation_prompt %}<｜Assistant｜>{% endif %}";

absl::Status WriteJson(const std::string& path, const json& doc) {
  std::ofstream out(path, std::ios::trunc);
  out << doc.dump(2) << "\n";
  if (!out) return absl::PermissionDeniedError(absl::StrCat("cannot write ", path));
  return absl::OkStatus();
}

constexpr int kNumWords = sizeof(kDemoWords) / sizeof(kDemoWords[0]);
constexpr int kFirstWordId = 260;

json TokenizerJson(int bos, int eos, int user, int assistant) {
  json vocab = json::object();
  for (int b = 0; b < 256; ++b) vocab[ByteToken(b)] = b;
  for (int w = 0; w < kNumWords; ++w) vocab[ByteToken(' ') + kDemoWords[w]] = kFirstWordId + w;
  json added = json::array();
  const std::pair<const char*, int> specials[] = {{"<｜begin▁of▁sentence｜>", bos},
                                                   {"<｜end▁of▁sentence｜>", eos},
                                                   {"<｜User｜>", user},
                                                   {"<｜Assistant｜>", assistant}};
  for (auto [content, id] : specials) {
    added.push_back({{"id", id}, {"content", content}, {"single_word", false}, {"lstrip", false},
                     {"rstrip", false}, {"normalized", false}, {"special", true}});
  }
  const char* kSplit =
      "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
  return {
      {"version", "1.0"},
      {"truncation", nullptr},
      {"padding", nullptr},
      {"added_tokens", added},
      {"normalizer", nullptr},
      {"pre_tokenizer",
       {{"type", "Sequence"},
        {"pretokenizers",
         {{{"type", "Split"}, {"pattern", {{"Regex", kSplit}}}, {"behavior", "Isolated"}, {"invert", false}},
          {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", false}, {"use_regex", false}}}}}},
      {"post_processor",
       {{"type", "TemplateProcessing"},
        {"single", {{{"SpecialToken", {{"id", "<｜begin▁of▁sentence｜>"}, {"type_id", 0}}}},
                    {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}}},
        {"pair", {{{"SpecialToken", {{"id", "<｜begin▁of▁sentence｜>"}, {"type_id", 0}}}},
                  {{"Sequence", {{"id", "A"}, {"type_id", 0}}}},
                  {{"Sequence", {{"id", "B"}, {"type_id", 1}}}}}},
        {"special_tokens", {{"<｜begin▁of▁sentence｜>", {{"id", "<｜begin▁of▁sentence｜>"}, {"ids", {bos}}, {"tokens", {"<｜begin▁of▁sentence｜>"}}}}}}}},
      {"decoder", {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"trim_offsets", true}, {"use_regex", true}}},
      {"model",
       {{"type", "BPE"}, {"dropout", nullptr}, {"unk_token", nullptr}, {"continuing_subword_prefix", nullptr},
        {"end_of_word_suffix", nullptr}, {"fuse_unk", false}, {"byte_fallback", false},
        {"ignore_merges", false}, {"vocab", vocab}, {"merges", json::array()}}}};
}

}  // namespace

absl::Status WriteDemoModel(const std::string& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return absl::PermissionDeniedError(absl::StrCat("cannot create ", dir, ": ", ec.message()));
  const int bos = 256, eos = 257, user = 258, assistant = 259, vocab = kFirstWordId + kNumWords;

  json config = {
      {"architectures", {"DeepseekV3ForCausalLM"}},
      {"model_type", "deepseek_v3"},
      {"vocab_size", vocab},
      {"hidden_size", kHidden},
      {"intermediate_size", kDenseInter},
      {"moe_intermediate_size", kMoeInter},
      {"num_hidden_layers", kLayers},
      {"num_attention_heads", kHeads},
      {"num_key_value_heads", kHeads},
      {"n_shared_experts", 1},
      {"n_routed_experts", kExperts},
      {"num_experts_per_tok", kTopK},
      {"routed_scaling_factor", 2.5},
      {"scoring_func", "sigmoid"},
      {"topk_method", "noaux_tc"},
      {"n_group", 4},
      {"topk_group", 2},
      {"norm_topk_prob", true},
      {"first_k_dense_replace", 1},
      {"moe_layer_freq", 1},
      {"q_lora_rank", kQLora},
      {"kv_lora_rank", kKvLora},
      {"qk_nope_head_dim", kNope},
      {"qk_rope_head_dim", kRopeDim},
      {"v_head_dim", kVDim},
      {"hidden_act", "silu"},
      {"max_position_embeddings", 4096},
      {"rms_norm_eps", 1e-6},
      {"rope_theta", 10000.0},
      {"rope_scaling",
       {{"type", "yarn"}, {"factor", 4.0}, {"original_max_position_embeddings", 1024},
        {"beta_fast", 32}, {"beta_slow", 1}, {"mscale", 1.0}, {"mscale_all_dim", 1.0}}},
      {"tie_word_embeddings", false},
      {"bos_token_id", bos},
      {"eos_token_id", eos},
      {"torch_dtype", "bfloat16"}};
  TANDEM_RETURN_IF_ERROR(WriteJson(dir + "/config.json", config));
  TANDEM_RETURN_IF_ERROR(WriteJson(dir + "/generation_config.json",
                                   {{"bos_token_id", bos}, {"eos_token_id", eos}}));
  TANDEM_RETURN_IF_ERROR(WriteJson(dir + "/tokenizer.json", TokenizerJson(bos, eos, user, assistant)));
  TANDEM_RETURN_IF_ERROR(WriteJson(
      dir + "/tokenizer_config.json",
      {{"add_bos_token", false}, {"add_eos_token", false},
       {"bos_token", "<｜begin▁of▁sentence｜>"}, {"eos_token", "<｜end▁of▁sentence｜>"},
       {"chat_template", kChatTemplate}, {"tokenizer_class", "PreTrainedTokenizerFast"}}));

  TensorBuilder t;
  t.Bf16("model.embed_tokens.weight", {vocab, kHidden}, 1.0f);
  for (int l = 0; l < kLayers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    t.Norm(p + "input_layernorm.weight", kHidden);
    t.Norm(p + "post_attention_layernorm.weight", kHidden);
    t.Linear(p + "self_attn.q_a_proj.weight", kQLora, kHidden);
    t.Norm(p + "self_attn.q_a_layernorm.weight", kQLora);
    t.Linear(p + "self_attn.q_b_proj.weight", kHeads * (kNope + kRopeDim), kQLora);
    t.Linear(p + "self_attn.kv_a_proj_with_mqa.weight", kKvLora + kRopeDim, kHidden);
    t.Norm(p + "self_attn.kv_a_layernorm.weight", kKvLora);
    t.Linear(p + "self_attn.kv_b_proj.weight", kHeads * (kNope + kVDim), kKvLora);
    t.Linear(p + "self_attn.o_proj.weight", kHidden, kHeads * kVDim);
    if (l == 0) {
      t.Linear(p + "mlp.gate_proj.weight", kDenseInter, kHidden);
      t.Linear(p + "mlp.up_proj.weight", kDenseInter, kHidden);
      t.Linear(p + "mlp.down_proj.weight", kHidden, kDenseInter);
      continue;
    }
    t.Bf16(p + "mlp.gate.weight", {kExperts, kHidden}, 0.3f);
    t.Bf16(p + "mlp.gate.e_score_correction_bias", {kExperts}, 0.05f);
    for (int e = 0; e < kExperts; ++e) {
      const std::string ep = p + "mlp.experts." + std::to_string(e) + ".";
      t.Linear(ep + "gate_proj.weight", kMoeInter, kHidden);
      t.Linear(ep + "up_proj.weight", kMoeInter, kHidden);
      t.Linear(ep + "down_proj.weight", kHidden, kMoeInter);
    }
    t.Linear(p + "mlp.shared_experts.gate_proj.weight", kMoeInter, kHidden);
    t.Linear(p + "mlp.shared_experts.up_proj.weight", kMoeInter, kHidden);
    t.Linear(p + "mlp.shared_experts.down_proj.weight", kHidden, kMoeInter);
  }
  t.Norm("model.norm.weight", kHidden);
  // LM head: word tokens get full-size rows, bytes and specials small ones (see kDemoWords).
  t.Bf16("lm_head.weight.bytes", {kFirstWordId, kHidden}, 0.02f);
  t.Bf16("lm_head.weight.words", {kNumWords, kHidden}, 0.5f);
  TANDEM_RETURN_IF_ERROR(t.Concat("lm_head.weight", "lm_head.weight.bytes", "lm_head.weight.words"));
  return WriteSafetensors(dir + "/model.safetensors", t.tensors(), {{"format", "pt"}});
}

}  // namespace tandem
