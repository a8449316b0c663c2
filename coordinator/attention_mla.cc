#include <vector>

#include "coordinator/attention.h"
#include "kernels/cpu/elementwise.h"
#include "kernels/cpu/linear.h"

namespace tandem {

void MlaAttention(const ModelConfig& c, const MlaWeights& w, const Rope& rope, int64_t layer,
                  const float* x, int64_t num_tokens, std::span<const AttentionSegment> segments,
                  float* out) {
  const MlaConfig& m = c.mla;
  const int64_t heads = c.num_heads, nope = m.qk_nope_head_dim, rope_dim = m.qk_rope_head_dim;
  const int64_t rank = m.kv_lora_rank, vdim = m.v_head_dim, qk = nope + rope_dim;

  // Queries: [T x heads x (nope + rope)].
  std::vector<float> q(num_tokens * heads * qk);
  if (m.q_lora_rank == 0) {
    Linear(x, num_tokens, w.q_proj, q.data());
  } else {
    std::vector<float> qa(num_tokens * m.q_lora_rank);
    Linear(x, num_tokens, w.q_a_proj, qa.data());
    RmsNorm(qa.data(), w.q_a_norm.data(), num_tokens, m.q_lora_rank, c.rms_norm_eps, qa.data());
    Linear(qa.data(), num_tokens, w.q_b_proj, q.data());
  }
  // Compressed latent + shared rope key, normalised / rotated, straight into the cache.
  std::vector<float> kv_a(num_tokens * (rank + rope_dim));
  Linear(x, num_tokens, w.kv_a_proj, kv_a.data());
  const std::vector<RowPlace> rows = PlaceRows(segments, num_tokens);
  int64_t work = 0;  // multiply-adds of the score loops, to decide on threads
  for (const AttentionSegment& seg : segments) {
    seg.cache->Reserve(seg.start + seg.count);
    work += seg.count * heads * (seg.start + seg.count) * (rank + rope_dim);
  }
  for (int64_t t = 0; t < num_tokens; ++t) {
    const int64_t p = rows[t].position;
    KvCache& cache = *rows[t].segment->cache;
    const float* row = kv_a.data() + t * (rank + rope_dim);
    RmsNormRow(row, w.kv_a_norm.data(), rank, c.rms_norm_eps, cache.latent(layer) + p * rank);
    float* kr = cache.rope_keys(layer) + p * rope_dim;
    std::copy(row + rank, row + rank + rope_dim, kr);
    rope.Apply(kr, 1, rope_dim, p);
    rope.Apply(q.data() + t * heads * qk + nope, heads, qk, p);
  }

  const float scale = static_cast<float>(c.AttentionScale());
  std::vector<float> context(num_tokens * heads * vdim);
#pragma omp parallel for collapse(2) schedule(dynamic) if (work >= (1 << 18))
  for (int64_t t = 0; t < num_tokens; ++t) {
    for (int64_t h = 0; h < heads; ++h) {
      const float* latent = rows[t].segment->cache->latent(layer);
      const float* rope_keys = rows[t].segment->cache->rope_keys(layer);
      const float* qh = q.data() + (t * heads + h) * qk;
      // Absorb W_UK: q_latent[r] = sum_n q_nope[n] * W_UK[h][n][r].
      std::vector<float> q_latent(rank, 0.0f);
      const float* uk = w.w_uk.data() + h * nope * rank;
      for (int64_t n = 0; n < nope; ++n)
        for (int64_t r = 0; r < rank; ++r) q_latent[r] += qh[n] * uk[n * rank + r];
      const int64_t visible = rows[t].position + 1;
      std::vector<float> scores(visible);
      for (int64_t s = 0; s < visible; ++s) {
        const float* ls = latent + s * rank;
        const float* ks = rope_keys + s * rope_dim;
        float dot = 0;
        for (int64_t r = 0; r < rank; ++r) dot += q_latent[r] * ls[r];
        for (int64_t i = 0; i < rope_dim; ++i) dot += qh[nope + i] * ks[i];
        scores[s] = dot * scale;
      }
      SoftmaxInPlace(scores.data(), visible);
      std::vector<float> ctx_latent(rank, 0.0f);
      for (int64_t s = 0; s < visible; ++s) {
        const float* ls = latent + s * rank;
        for (int64_t r = 0; r < rank; ++r) ctx_latent[r] += scores[s] * ls[r];
      }
      // Apply W_UV: out[v] = sum_r W_UV[h][v][r] * ctx_latent[r].
      const float* uv = w.w_uv.data() + h * vdim * rank;
      float* ctx = context.data() + (t * heads + h) * vdim;
      for (int64_t vi = 0; vi < vdim; ++vi) {
        float acc = 0;
        for (int64_t r = 0; r < rank; ++r) acc += uv[vi * rank + r] * ctx_latent[r];
        ctx[vi] = acc;
      }
    }
  }
  Linear(context.data(), num_tokens, w.o_proj, out);
}

}  // namespace tandem
