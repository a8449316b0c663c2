#include "coordinator/model_weights.h"

#include "coordinator/models/tensor_names.h"
#include "coordinator/weight_loader.h"

namespace tandem {
namespace {

absl::StatusOr<MlpWeights> LoadMlp(const WeightLoader& w, const std::string& gate,
                                   const std::string& up, const std::string& down, int64_t hidden,
                                   int64_t inter) {
  MlpWeights m;
  TANDEM_ASSIGN_OR_RETURN(m.gate, w.Matrix(gate, inter, hidden));
  TANDEM_ASSIGN_OR_RETURN(m.up, w.Matrix(up, inter, hidden));
  TANDEM_ASSIGN_OR_RETURN(m.down, w.Matrix(down, hidden, inter));
  return m;
}

absl::Status LoadGqa(const WeightLoader& w, const ModelConfig& c, const std::string& p,
                     GqaWeights& a) {
  const int64_t h = c.hidden_size, q = c.num_heads * c.head_dim, kv = c.num_kv_heads * c.head_dim;
  TANDEM_ASSIGN_OR_RETURN(a.q_proj, w.Matrix(p + "q_proj.weight", q, h));
  TANDEM_ASSIGN_OR_RETURN(a.k_proj, w.Matrix(p + "k_proj.weight", kv, h));
  TANDEM_ASSIGN_OR_RETURN(a.v_proj, w.Matrix(p + "v_proj.weight", kv, h));
  TANDEM_ASSIGN_OR_RETURN(a.o_proj, w.Matrix(p + "o_proj.weight", h, q));
  if (c.qk_norm) {
    TANDEM_ASSIGN_OR_RETURN(a.q_norm, w.Vector(p + "q_norm.weight", c.head_dim));
    TANDEM_ASSIGN_OR_RETURN(a.k_norm, w.Vector(p + "k_norm.weight", c.head_dim));
  }
  return absl::OkStatus();
}

absl::Status LoadMla(const WeightLoader& w, const ModelConfig& c, const std::string& p,
                     MlaWeights& a) {
  const MlaConfig& m = c.mla;
  const int64_t h = c.hidden_size, heads = c.num_heads;
  const int64_t qk = m.qk_nope_head_dim + m.qk_rope_head_dim;
  if (m.q_lora_rank == 0) {
    TANDEM_ASSIGN_OR_RETURN(a.q_proj, w.Matrix(p + "q_proj.weight", heads * qk, h));
  } else {
    TANDEM_ASSIGN_OR_RETURN(a.q_a_proj, w.Matrix(p + "q_a_proj.weight", m.q_lora_rank, h));
    TANDEM_ASSIGN_OR_RETURN(a.q_a_norm, w.Vector(p + "q_a_layernorm.weight", m.q_lora_rank));
    TANDEM_ASSIGN_OR_RETURN(a.q_b_proj, w.Matrix(p + "q_b_proj.weight", heads * qk, m.q_lora_rank));
  }
  TANDEM_ASSIGN_OR_RETURN(a.kv_a_proj, w.Matrix(p + "kv_a_proj_with_mqa.weight",
                                                m.kv_lora_rank + m.qk_rope_head_dim, h));
  TANDEM_ASSIGN_OR_RETURN(a.kv_a_norm, w.Vector(p + "kv_a_layernorm.weight", m.kv_lora_rank));
  const int64_t per_head = m.qk_nope_head_dim + m.v_head_dim;
  TANDEM_ASSIGN_OR_RETURN(WeightMatrix kv_b, w.Matrix(p + "kv_b_proj.weight", heads * per_head,
                                                      m.kv_lora_rank));
  // Split kv_b_proj rows per head into the key part (W_UK) and the value part (W_UV).
  a.w_uk.resize(heads * m.qk_nope_head_dim * m.kv_lora_rank);
  a.w_uv.resize(heads * m.v_head_dim * m.kv_lora_rank);
  for (int64_t hd = 0; hd < heads; ++hd) {
    for (int64_t r = 0; r < per_head; ++r) {
      float* dst = r < m.qk_nope_head_dim
                       ? &a.w_uk[(hd * m.qk_nope_head_dim + r) * m.kv_lora_rank]
                       : &a.w_uv[(hd * m.v_head_dim + r - m.qk_nope_head_dim) * m.kv_lora_rank];
      kv_b.RowToFloat(hd * per_head + r, dst);
    }
  }
  TANDEM_ASSIGN_OR_RETURN(a.o_proj, w.Matrix(p + "o_proj.weight", h, heads * m.v_head_dim));
  return absl::OkStatus();
}

absl::Status LoadMoeNonExpert(const WeightLoader& w, const ModelConfig& c, int64_t layer,
                              LayerWeights& lw) {
  const MoeTensorNames names = MoeNames(c, layer);
  const int64_t h = c.hidden_size;
  std::string router = names.router;
  if (!w.Has(router) && !names.router_fallback.empty() && w.Has(names.router_fallback))
    router = names.router_fallback;
  TANDEM_ASSIGN_OR_RETURN(lw.router, w.Matrix(router, c.moe.num_experts, h));
  if (!names.score_correction_bias.empty()) {
    TANDEM_ASSIGN_OR_RETURN(lw.score_correction_bias,
                            w.Vector(names.score_correction_bias, c.moe.num_experts));
  }
  if (c.moe.shared_intermediate_size > 0) {
    TANDEM_ASSIGN_OR_RETURN(lw.shared, LoadMlp(w, names.shared_gate, names.shared_up,
                                               names.shared_down, h, c.moe.shared_intermediate_size));
  }
  if (c.moe.shared_expert_gated) {
    TANDEM_ASSIGN_OR_RETURN(lw.shared_expert_gate, w.Matrix(names.shared_expert_gate, 1, h));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<ModelWeights> LoadModelWeights(const ModelConfig& c, const Checkpoint& checkpoint) {
  WeightLoader w(checkpoint, c);
  ModelWeights mw;
  const int64_t h = c.hidden_size;
  TANDEM_ASSIGN_OR_RETURN(mw.embed, w.Matrix("model.embed_tokens.weight", c.vocab_size, h));
  TANDEM_ASSIGN_OR_RETURN(mw.final_norm, w.Vector("model.norm.weight", h));
  if (!c.tie_word_embeddings || w.Has("lm_head.weight")) {
    TANDEM_ASSIGN_OR_RETURN(mw.lm_head, w.Matrix("lm_head.weight", c.vocab_size, h));
  }
  mw.layers.resize(c.num_layers);
  for (int64_t l = 0; l < c.num_layers; ++l) {
    LayerWeights& lw = mw.layers[l];
    const std::string p = LayerPrefix(l);
    TANDEM_ASSIGN_OR_RETURN(lw.input_norm, w.Vector(p + "input_layernorm.weight", h));
    TANDEM_ASSIGN_OR_RETURN(lw.post_attention_norm,
                            w.Vector(p + "post_attention_layernorm.weight", h));
    if (c.use_mla) {
      TANDEM_RETURN_IF_ERROR(LoadMla(w, c, p + "self_attn.", lw.mla));
    } else {
      TANDEM_RETURN_IF_ERROR(LoadGqa(w, c, p + "self_attn.", lw.gqa));
    }
    lw.is_moe = c.layer_is_moe[l];
    if (lw.is_moe) {
      TANDEM_RETURN_IF_ERROR(LoadMoeNonExpert(w, c, l, lw));
    } else {
      TANDEM_ASSIGN_OR_RETURN(lw.dense, LoadMlp(w, p + "mlp.gate_proj.weight", p + "mlp.up_proj.weight",
                                                p + "mlp.down_proj.weight", h, c.intermediate_size));
    }
  }
  return mw;
}

}  // namespace tandem
