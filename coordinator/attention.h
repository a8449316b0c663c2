// Attention of one decoder layer for the tokens of a step, which may belong to several sequences
// (a continuous batch): segment i is rows [offset, offset + count) of the step, at positions
// [start, start + count) of its own cache, causal over everything that cache held before. The
// projections run once over all the step's rows; the attention proper runs per segment. New
// keys / values go into each segment's cache; the caller advances the caches afterwards. Engine
// thread only; parallel inside with OpenMP.
#pragma once

#include <span>
#include <vector>

#include "common/model_config.h"
#include "coordinator/kv_cache.h"
#include "coordinator/model_weights.h"
#include "coordinator/rope.h"

namespace tandem {

struct AttentionSegment {
  int64_t offset = 0;  // first row of the step
  int64_t count = 0;   // rows
  int64_t start = 0;   // position of the first row in the cache
  KvCache* cache = nullptr;
};

// x: [T x hidden] normalised input, T = the segments' rows; out: [T x hidden].
void GqaAttention(const ModelConfig& c, const GqaWeights& w, const Rope& rope, int64_t layer,
                  const float* x, int64_t num_tokens, std::span<const AttentionSegment> segments,
                  float* out);

// Multi-head latent attention in the absorbed form: scores and values are computed against the
// cached latent directly (W_UK folded into the query, W_UV applied after the weighted sum).
void MlaAttention(const ModelConfig& c, const MlaWeights& w, const Rope& rope, int64_t layer,
                  const float* x, int64_t num_tokens, std::span<const AttentionSegment> segments,
                  float* out);

// Which segment each row belongs to, and its position: the per-row view the kernels iterate.
struct RowPlace {
  const AttentionSegment* segment;
  int64_t position;
};
inline std::vector<RowPlace> PlaceRows(std::span<const AttentionSegment> segments,
                                       int64_t num_tokens) {
  std::vector<RowPlace> rows(num_tokens);
  for (const AttentionSegment& s : segments)
    for (int64_t i = 0; i < s.count; ++i) rows[s.offset + i] = {&s, s.start + i};
  return rows;
}

}  // namespace tandem
