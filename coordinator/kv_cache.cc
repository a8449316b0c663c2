#include "coordinator/kv_cache.h"

#include <algorithm>

namespace tandem {

KvCache::KvCache(const ModelConfig& c, int64_t capacity) : SequenceCache(capacity) {
  if (c.use_mla) {
    width_a_ = c.mla.kv_lora_rank;
    width_b_ = c.mla.qk_rope_head_dim;
  } else {
    width_a_ = width_b_ = c.num_kv_heads * c.head_dim;
  }
  layers_.resize(c.num_layers);
}

void KvCache::Reserve(int64_t new_length) {
  if (new_length <= reserved_) return;
  // Grow geometrically so a long generation reallocates O(log n) times.
  const int64_t target = std::min(capacity(), std::max<int64_t>(new_length, reserved_ * 2));
  for (Layer& l : layers_) {
    l.a.resize(target * width_a_);
    l.b.resize(target * width_b_);
  }
  reserved_ = target;
}

size_t KvCache::bytes() const { return reserved_ * (width_a_ + width_b_) * layers_.size() * 4; }

}  // namespace tandem
