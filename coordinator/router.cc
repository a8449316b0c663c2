#include "coordinator/router.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

namespace tandem {
namespace {

// Indices of the k largest values, largest first (lower index first among equals).
std::vector<int32_t> TopK(const std::vector<float>& values, int64_t k) {
  std::vector<int32_t> idx(values.size());
  std::iota(idx.begin(), idx.end(), 0);
  std::partial_sort(idx.begin(), idx.begin() + k, idx.end(), [&](int32_t a, int32_t b) {
    return values[a] > values[b] || (values[a] == values[b] && a < b);
  });
  idx.resize(k);
  return idx;
}

// Keeps the experts of the `topk_group` best groups; the others' choice scores become 0,
// as transformers (and DeepSeek's reference modeling code) mask them.
void MaskToBestGroups(const MoeConfig& c, std::vector<float>& choice, bool sum_top2) {
  const int64_t per_group = c.num_experts / c.n_group;
  std::vector<float> group_score(c.n_group);
  for (int64_t g = 0; g < c.n_group; ++g) {
    const float* s = choice.data() + g * per_group;
    if (sum_top2) {  // V3: sum of the two best choice scores of the group
      std::vector<float> grp(s, s + per_group);
      std::partial_sort(grp.begin(), grp.begin() + std::min<int64_t>(2, per_group), grp.end(),
                        std::greater<float>());
      group_score[g] = grp[0] + (per_group > 1 ? grp[1] : 0.0f);
    } else {  // V2: best score of the group
      group_score[g] = *std::max_element(s, s + per_group);
    }
  }
  std::vector<int32_t> keep = TopK(group_score, c.topk_group);
  std::vector<bool> kept(c.n_group, false);
  for (int32_t g : keep) kept[g] = true;
  for (int64_t e = 0; e < c.num_experts; ++e)
    if (!kept[e / per_group]) choice[e] = 0.0f;
}

}  // namespace

void RouteToken(const MoeConfig& c, const float* logits, const float* score_bias, int32_t* ids,
                float* weights) {
  const int64_t n = c.num_experts;
  std::vector<float> scores(logits, logits + n);
  if (c.scoring == RouterScoring::kSigmoid) {
    for (float& s : scores) s = 1.0f / (1.0f + std::exp(-s));
  } else {
    const float mx = *std::max_element(scores.begin(), scores.end());
    double sum = 0;
    for (float& s : scores) {
      s = std::exp(s - mx);
      sum += s;
    }
    for (float& s : scores) s = static_cast<float>(s / sum);
  }
  std::vector<float> choice = scores;
  if (score_bias)
    for (int64_t e = 0; e < n; ++e) choice[e] += score_bias[e];
  if (c.topk_method == TopkMethod::kGroupLimitedGreedy) MaskToBestGroups(c, choice, false);
  if (c.topk_method == TopkMethod::kNoauxTc) MaskToBestGroups(c, choice, true);

  const std::vector<int32_t> top = TopK(choice, c.top_k);
  double sum = 0;
  for (int64_t j = 0; j < c.top_k; ++j) {
    ids[j] = top[j];
    weights[j] = scores[top[j]];  // the bias picks experts but never weighs them
    sum += weights[j];
  }
  const bool deepseek_v2_style = c.topk_method != TopkMethod::kNoauxTc &&
                                 c.routed_scaling_factor != 1.0;
  if (c.norm_topk_prob && c.top_k > 1) {
    const double denom = sum + (c.topk_method == TopkMethod::kNoauxTc ? 1e-20 : 0.0);
    for (int64_t j = 0; j < c.top_k; ++j) weights[j] = static_cast<float>(weights[j] / denom);
    // DeepSeek-V2 either renormalises or scales; V3 does both.
    if (deepseek_v2_style) return;
  }
  if (c.routed_scaling_factor != 1.0)
    for (int64_t j = 0; j < c.top_k; ++j)
      weights[j] = static_cast<float>(weights[j] * c.routed_scaling_factor);
}

}  // namespace tandem
