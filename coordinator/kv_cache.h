// Per-sequence attention cache of the CPU engine (a SequenceCache). GQA layers keep keys and
// values; MLA layers keep what DeepSeek caches: the normalised compressed latent and the rotated
// shared rope key. Storage grows on demand up to `capacity` tokens. One thread at a time.
#pragma once

#include <cstdint>
#include <vector>

#include "common/model_config.h"
#include "coordinator/engine.h"

namespace tandem {

class KvCache : public SequenceCache {
 public:
  KvCache(const ModelConfig& config, int64_t capacity);

  // Makes room for positions [0, new_length); requires new_length <= capacity.
  void Reserve(int64_t new_length);

  // GQA: [position][kv_head][head_dim].
  float* keys(int64_t layer) { return layers_[layer].a.data(); }
  float* values(int64_t layer) { return layers_[layer].b.data(); }
  // MLA: latent [position][kv_lora_rank], rope key [position][qk_rope_head_dim].
  float* latent(int64_t layer) { return layers_[layer].a.data(); }
  float* rope_keys(int64_t layer) { return layers_[layer].b.data(); }

  size_t bytes() const;

 private:
  struct Layer {
    std::vector<float> a, b;
  };
  int64_t width_a_ = 0, width_b_ = 0;  // floats per position
  int64_t reserved_ = 0;
  std::vector<Layer> layers_;
};

}  // namespace tandem
