// Attention of one decoder layer for T new tokens at positions [start, start + T), causal over
// everything cached before them. The new keys/values are written into the cache (positions
// [start, start + T)); the caller advances the cache length afterwards. Engine thread only;
// parallel inside with OpenMP.
#pragma once

#include "common/model_config.h"
#include "coordinator/kv_cache.h"
#include "coordinator/model_weights.h"
#include "coordinator/rope.h"

namespace tandem {

// x: [T x hidden] normalised input; out: [T x hidden].
void GqaAttention(const ModelConfig& c, const GqaWeights& w, const Rope& rope, int64_t layer,
                  const float* x, int64_t num_tokens, int64_t start, KvCache& cache, float* out);

// Multi-head latent attention in the absorbed form: scores and values are computed against the
// cached latent directly (W_UK folded into the query, W_UV applied after the weighted sum).
void MlaAttention(const ModelConfig& c, const MlaWeights& w, const Rope& rope, int64_t layer,
                  const float* x, int64_t num_tokens, int64_t start, KvCache& cache, float* out);

}  // namespace tandem
