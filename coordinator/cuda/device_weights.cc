#include "coordinator/cuda/device_weights.h"

namespace tandem::cuda {
namespace {

// Uploads a host tensor, counts its bytes and frees the host copy.
template <typename T>
absl::StatusOr<DeviceBuffer<T>> Move(std::vector<T>& host, size_t& bytes) {
  TANDEM_ASSIGN_OR_RETURN(DeviceBuffer<T> d, Upload(host.data(), host.size()));
  bytes += host.size() * sizeof(T);
  std::vector<T>().swap(host);
  return d;
}

absl::StatusOr<OwnedDeviceMatrix> MoveMatrix(WeightMatrix& w, size_t& bytes) {
  OwnedDeviceMatrix m;
  m.view.rows = w.rows;
  m.view.cols = w.cols;
  if (w.empty()) return m;
  if (w.is_f32) {
    TANDEM_ASSIGN_OR_RETURN(m.f32, Move(w.f32, bytes));
    m.view.f32 = m.f32.data();
  } else {
    TANDEM_ASSIGN_OR_RETURN(m.bf16, Move(w.bf16, bytes));
    m.view.bf16 = m.bf16.data();
  }
  if (!w.bias.empty()) {
    TANDEM_ASSIGN_OR_RETURN(m.bias, Move(w.bias, bytes));
    m.view.bias = m.bias.data();
  }
  return m;
}

absl::StatusOr<DeviceMlp> MoveMlp(MlpWeights& w, size_t& bytes) {
  DeviceMlp m;
  TANDEM_ASSIGN_OR_RETURN(m.gate, MoveMatrix(w.gate, bytes));
  TANDEM_ASSIGN_OR_RETURN(m.up, MoveMatrix(w.up, bytes));
  TANDEM_ASSIGN_OR_RETURN(m.down, MoveMatrix(w.down, bytes));
  return m;
}

absl::Status MoveLayer(LayerWeights& h, DeviceLayer& d, size_t& bytes) {
  TANDEM_ASSIGN_OR_RETURN(d.input_norm, Move(h.input_norm, bytes));
  TANDEM_ASSIGN_OR_RETURN(d.post_attention_norm, Move(h.post_attention_norm, bytes));
  TANDEM_ASSIGN_OR_RETURN(d.q_proj, MoveMatrix(h.gqa.q_proj.empty() ? h.mla.q_proj : h.gqa.q_proj,
                                               bytes));
  TANDEM_ASSIGN_OR_RETURN(d.k_proj, MoveMatrix(h.gqa.k_proj, bytes));
  TANDEM_ASSIGN_OR_RETURN(d.v_proj, MoveMatrix(h.gqa.v_proj, bytes));
  TANDEM_ASSIGN_OR_RETURN(d.q_norm, Move(h.gqa.q_norm, bytes));
  TANDEM_ASSIGN_OR_RETURN(d.k_norm, Move(h.gqa.k_norm, bytes));
  TANDEM_ASSIGN_OR_RETURN(d.q_a_proj, MoveMatrix(h.mla.q_a_proj, bytes));
  TANDEM_ASSIGN_OR_RETURN(d.q_b_proj, MoveMatrix(h.mla.q_b_proj, bytes));
  TANDEM_ASSIGN_OR_RETURN(d.kv_a_proj, MoveMatrix(h.mla.kv_a_proj, bytes));
  TANDEM_ASSIGN_OR_RETURN(d.q_a_norm, Move(h.mla.q_a_norm, bytes));
  TANDEM_ASSIGN_OR_RETURN(d.kv_a_norm, Move(h.mla.kv_a_norm, bytes));
  TANDEM_ASSIGN_OR_RETURN(d.w_uk, Move(h.mla.w_uk, bytes));
  TANDEM_ASSIGN_OR_RETURN(d.w_uv, Move(h.mla.w_uv, bytes));
  TANDEM_ASSIGN_OR_RETURN(d.o_proj, MoveMatrix(h.gqa.o_proj.empty() ? h.mla.o_proj : h.gqa.o_proj,
                                               bytes));
  d.is_moe = h.is_moe;
  TANDEM_ASSIGN_OR_RETURN(d.dense, MoveMlp(h.dense, bytes));
  TANDEM_ASSIGN_OR_RETURN(d.router, MoveMatrix(h.router, bytes));
  TANDEM_ASSIGN_OR_RETURN(d.score_correction_bias, Move(h.score_correction_bias, bytes));
  TANDEM_ASSIGN_OR_RETURN(d.shared, MoveMlp(h.shared, bytes));
  TANDEM_ASSIGN_OR_RETURN(d.shared_expert_gate, MoveMatrix(h.shared_expert_gate, bytes));
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<DeviceWeights> UploadModelWeights(ModelWeights host) {
  DeviceWeights d;
  TANDEM_ASSIGN_OR_RETURN(d.embed, MoveMatrix(host.embed, d.bytes));
  TANDEM_ASSIGN_OR_RETURN(d.lm_head, MoveMatrix(host.lm_head, d.bytes));
  TANDEM_ASSIGN_OR_RETURN(d.final_norm, Move(host.final_norm, d.bytes));
  d.layers.resize(host.layers.size());
  for (size_t l = 0; l < host.layers.size(); ++l) {
    TANDEM_RETURN_IF_ERROR(MoveLayer(host.layers[l], d.layers[l], d.bytes));
    host.layers[l] = LayerWeights();
  }
  return d;
}

}  // namespace tandem::cuda
