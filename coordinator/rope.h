// Rotary position embeddings: default and YaRN frequency tables, applied to either the two halves
// of a head (Llama/Qwen/Mixtral) or adjacent pairs (DeepSeek). Mirrors transformers' float32
// computation of the angles. Immutable after construction; shareable between threads.
#pragma once

#include <cstdint>
#include <vector>

#include "common/model_config.h"

namespace tandem {

class Rope {
 public:
  explicit Rope(const RopeConfig& config);

  // Rotates `num_heads` heads of `head_stride` floats each, whose first rotary_dim values are the
  // rotated part, at sequence position `position`. The result is also scaled by YaRN's factor.
  void Apply(float* heads, int64_t num_heads, int64_t head_stride, int64_t position) const;

  // The factors Apply uses at `position`: cos and sin of each of the rotary_dim / 2 angles, times
  // the attention factor (the GPU backend tabulates them once).
  void CosSin(int64_t position, float* cos, float* sin) const;

  int64_t rotary_dim() const { return config_.rotary_dim; }
  bool interleaved() const { return config_.interleaved; }
  float attention_factor() const { return attention_factor_; }
  const std::vector<float>& inv_freq() const { return inv_freq_; }

 private:
  RopeConfig config_;
  std::vector<float> inv_freq_;  // rotary_dim / 2
  float attention_factor_ = 1.0f;
};

}  // namespace tandem
