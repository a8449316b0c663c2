// MoE routing on the GPU, one thread per token, step for step the scheme of the CPU engine's
// RouteToken (coordinator/router.cc): the same float / double choices and the same tie order
// (lower expert index first), so both backends pick the same experts. Contract in
// coordinator_kernels.h.
#include <cfloat>

#include "kernels/cuda/coordinator_kernels.h"

namespace tandem::cuda {
namespace {

// Index of the largest value of v[0, n) not yet taken (lowest index among equals); marks it.
__device__ int64_t TakeLargest(const float* v, bool* taken, int64_t n) {
  int64_t best = -1;
  for (int64_t i = 0; i < n; ++i) {
    if (taken[i]) continue;
    if (best < 0 || v[i] > v[best]) best = i;
  }
  taken[best] = true;
  return best;
}

// V2 (sum_top2 false): a group's score is its best choice score; V3: the sum of its best two.
// Experts outside the topk_group best groups get choice score 0, as transformers masks them.
__device__ void MaskToBestGroups(const RouterArgs& a, float* choice, bool sum_top2) {
  const int64_t per_group = a.num_experts / a.n_group;
  float group_score[kMaxRouterExperts];
  bool taken[kMaxRouterExperts];
  for (int64_t g = 0; g < a.n_group; ++g) {
    const float* s = choice + g * per_group;
    float first = -FLT_MAX, second = -FLT_MAX;
    for (int64_t i = 0; i < per_group; ++i) {
      if (s[i] > first) {
        second = first;
        first = s[i];
      } else if (s[i] > second) {
        second = s[i];
      }
    }
    group_score[g] = sum_top2 ? first + (per_group > 1 ? second : 0.0f) : first;
    taken[g] = false;
  }
  for (int64_t j = 0; j < a.topk_group; ++j) TakeLargest(group_score, taken, a.n_group);
  for (int64_t e = 0; e < a.num_experts; ++e)
    if (!taken[e / per_group]) choice[e] = 0.0f;
}

__global__ void RouteKernel(RouterArgs a, const float* logits, int64_t num_tokens, int32_t* ids,
                            float* weights) {
  const int64_t t = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (t >= num_tokens) return;
  const int64_t n = a.num_experts, k = a.top_k;
  const float* row = logits + t * n;
  float scores[kMaxRouterExperts], choice[kMaxRouterExperts];
  bool taken[kMaxRouterExperts];
  if (a.sigmoid) {
    for (int64_t e = 0; e < n; ++e) scores[e] = 1.0f / (1.0f + expf(-row[e]));
  } else {
    float mx = row[0];
    for (int64_t e = 1; e < n; ++e) mx = fmaxf(mx, row[e]);
    double sum = 0;
    for (int64_t e = 0; e < n; ++e) {
      scores[e] = expf(row[e] - mx);
      sum += scores[e];
    }
    for (int64_t e = 0; e < n; ++e) scores[e] = static_cast<float>(scores[e] / sum);
  }
  for (int64_t e = 0; e < n; ++e) {
    choice[e] = scores[e] + (a.score_bias ? a.score_bias[e] : 0.0f);
    taken[e] = false;
  }
  if (a.method == 1) MaskToBestGroups(a, choice, false);
  if (a.method == 2) MaskToBestGroups(a, choice, true);

  int32_t* out_ids = ids + t * k;
  float* out_w = weights + t * k;
  double sum = 0;
  for (int64_t j = 0; j < k; ++j) {
    out_ids[j] = static_cast<int32_t>(TakeLargest(choice, taken, n));
    out_w[j] = scores[out_ids[j]];  // the bias picks experts but never weighs them
    sum += out_w[j];
  }
  const bool deepseek_v2_style = a.method != 2 && a.routed_scaling_factor != 1.0;
  if (a.norm_topk_prob && k > 1) {
    const double denom = sum + (a.method == 2 ? 1e-20 : 0.0);
    for (int64_t j = 0; j < k; ++j) out_w[j] = static_cast<float>(out_w[j] / denom);
    if (deepseek_v2_style) return;  // DeepSeek-V2 either renormalises or scales; V3 does both
  }
  if (a.routed_scaling_factor != 1.0)
    for (int64_t j = 0; j < k; ++j)
      out_w[j] = static_cast<float>(out_w[j] * a.routed_scaling_factor);
}

}  // namespace

void LaunchRoute(const RouterArgs& args, const float* logits, int64_t num_tokens, int32_t* ids,
                 float* weights, cudaStream_t stream) {
  constexpr int kThreads = 64;
  RouteKernel<<<(num_tokens + kThreads - 1) / kThreads, kThreads, 0, stream>>>(
      args, logits, num_tokens, ids, weights);
}

}  // namespace tandem::cuda
