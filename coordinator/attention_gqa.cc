#include <vector>

#include "coordinator/attention.h"
#include "kernels/cpu/elementwise.h"
#include "kernels/cpu/linear.h"

namespace tandem {

void GqaAttention(const ModelConfig& c, const GqaWeights& w, const Rope& rope, int64_t layer,
                  const float* x, int64_t num_tokens, std::span<const AttentionSegment> segments,
                  float* out) {
  const int64_t heads = c.num_heads, kv_heads = c.num_kv_heads, hd = c.head_dim;
  const int64_t q_width = heads * hd, kv_width = kv_heads * hd;
  std::vector<float> q(num_tokens * q_width), k(num_tokens * kv_width), v(num_tokens * kv_width);
  Linear(x, num_tokens, w.q_proj, q.data());
  Linear(x, num_tokens, w.k_proj, k.data());
  Linear(x, num_tokens, w.v_proj, v.data());
  const std::vector<RowPlace> rows = PlaceRows(segments, num_tokens);
  for (int64_t t = 0; t < num_tokens; ++t) {
    float* qt = q.data() + t * q_width;
    float* kt = k.data() + t * kv_width;
    if (c.qk_norm) {  // Qwen3 normalises each head before the rotation
      RmsNorm(qt, w.q_norm.data(), heads, hd, c.rms_norm_eps, qt);
      RmsNorm(kt, w.k_norm.data(), kv_heads, hd, c.rms_norm_eps, kt);
    }
    rope.Apply(qt, heads, hd, rows[t].position);
    rope.Apply(kt, kv_heads, hd, rows[t].position);
  }
  int64_t work = 0;  // multiply-adds of the score loops, to decide on threads
  for (const AttentionSegment& seg : segments) {
    seg.cache->Reserve(seg.start + seg.count);
    const int64_t at = seg.start * kv_width, from = seg.offset * kv_width, n = seg.count * kv_width;
    std::copy(k.begin() + from, k.begin() + from + n, seg.cache->keys(layer) + at);
    std::copy(v.begin() + from, v.begin() + from + n, seg.cache->values(layer) + at);
    work += seg.count * heads * (seg.start + seg.count) * hd;
  }

  const float scale = static_cast<float>(c.AttentionScale());
  const int64_t group = heads / kv_heads;
  std::vector<float> context(num_tokens * q_width);
#pragma omp parallel for collapse(2) schedule(dynamic) if (work >= (1 << 18))
  for (int64_t t = 0; t < num_tokens; ++t) {
    for (int64_t h = 0; h < heads; ++h) {
      const int64_t visible = rows[t].position + 1;
      const float* keys = rows[t].segment->cache->keys(layer);
      const float* values = rows[t].segment->cache->values(layer);
      const int64_t kvh = h / group;
      const float* qh = q.data() + t * q_width + h * hd;
      std::vector<float> scores(visible);
      for (int64_t s = 0; s < visible; ++s) {
        const float* ks = keys + s * kv_width + kvh * hd;
        float dot = 0;
        for (int64_t i = 0; i < hd; ++i) dot += qh[i] * ks[i];
        scores[s] = dot * scale;
      }
      SoftmaxInPlace(scores.data(), visible);
      float* ctx = context.data() + t * q_width + h * hd;
      for (int64_t s = 0; s < visible; ++s) {
        const float* vs = values + s * kv_width + kvh * hd;
        for (int64_t i = 0; i < hd; ++i) ctx[i] += scores[s] * vs[i];
      }
    }
  }
  Linear(context.data(), num_tokens, w.o_proj, out);
}

}  // namespace tandem
