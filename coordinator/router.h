// MoE routing of one token: router logits -> top-k expert ids and routing weights, for every
// scheme the supported families use (softmax / sigmoid scoring, greedy, DeepSeek-V2's
// group-limited greedy, DeepSeek-V3's noaux_tc with score-correction bias, top-k renormalisation,
// routed scaling factor). Pure function; thread-safe.
#pragma once

#include <cstdint>

#include "common/model_config.h"

namespace tandem {

// `logits`: [num_experts] for one token. `score_bias`: [num_experts] or nullptr.
// Writes `ids[top_k]` and `weights[top_k]` (in descending score order).
void RouteToken(const MoeConfig& config, const float* logits, const float* score_bias,
                int32_t* ids, float* weights);

}  // namespace tandem
