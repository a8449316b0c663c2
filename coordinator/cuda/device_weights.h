// The coordinator's non-expert weights on the GPU: the same tensors as ModelWeights (bf16 stays
// bf16, f32 stays f32, FP8 arrives already dequantized to bf16 by the weight loader), uploaded
// once at load. Read-only afterwards; used by CudaEngine on its engine thread.
#pragma once

#include <vector>

#include "coordinator/model_weights.h"
#include "kernels/cuda/coordinator_kernels.h"
#include "kernels/cuda/device_buffer.h"

namespace tandem::cuda {

// A weight matrix in device memory and the DeviceMatrix view the kernels take.
struct OwnedDeviceMatrix {
  DeviceBuffer<uint16_t> bf16;
  DeviceBuffer<float> f32;
  DeviceBuffer<float> bias;
  DeviceMatrix view;
  bool empty() const { return view.rows == 0; }
};

struct DeviceMlp {
  OwnedDeviceMatrix gate, up, down;
  bool empty() const { return gate.empty(); }
};

struct DeviceLayer {
  DeviceBuffer<float> input_norm, post_attention_norm;
  // GQA
  OwnedDeviceMatrix q_proj, k_proj, v_proj;
  DeviceBuffer<float> q_norm, k_norm;
  // MLA (q_proj above when q_lora_rank == 0)
  OwnedDeviceMatrix q_a_proj, q_b_proj, kv_a_proj;
  DeviceBuffer<float> q_a_norm, kv_a_norm, w_uk, w_uv;
  OwnedDeviceMatrix o_proj;
  // MLP
  bool is_moe = false;
  DeviceMlp dense;
  OwnedDeviceMatrix router;
  DeviceBuffer<float> score_correction_bias;
  DeviceMlp shared;
  OwnedDeviceMatrix shared_expert_gate;
};

struct DeviceWeights {
  OwnedDeviceMatrix embed, lm_head;
  DeviceBuffer<float> final_norm;
  std::vector<DeviceLayer> layers;
  size_t bytes = 0;
  const DeviceMatrix& output() const { return lm_head.empty() ? embed.view : lm_head.view; }
};

// Uploads `host` layer by layer, releasing each host tensor once it is on the device.
absl::StatusOr<DeviceWeights> UploadModelWeights(ModelWeights host);

}  // namespace tandem::cuda
