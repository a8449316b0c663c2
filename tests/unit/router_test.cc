#include "coordinator/router.h"

#include <cmath>

#include "gtest/gtest.h"

namespace tandem {
namespace {

TEST(Router, SoftmaxTopKWithoutRenormalisation) {
  MoeConfig c;
  c.num_experts = 4;
  c.top_k = 2;
  const float logits[4] = {0.0f, 2.0f, 1.0f, -1.0f};
  int32_t ids[2];
  float w[2];
  RouteToken(c, logits, nullptr, ids, w);
  const double z = 1 + std::exp(2.0) + std::exp(1.0) + std::exp(-1.0);
  EXPECT_EQ(ids[0], 1);
  EXPECT_EQ(ids[1], 2);
  EXPECT_NEAR(w[0], std::exp(2.0) / z, 1e-6);
  EXPECT_NEAR(w[1], std::exp(1.0) / z, 1e-6);
  c.norm_topk_prob = true;  // Mixtral / Qwen3: renormalised over the chosen two
  RouteToken(c, logits, nullptr, ids, w);
  EXPECT_NEAR(w[0], std::exp(2.0) / (std::exp(2.0) + std::exp(1.0)), 1e-6);
  EXPECT_NEAR(w[0] + w[1], 1.0, 1e-6);
}

TEST(Router, GroupLimitedGreedyKeepsBestGroupsAndScales) {
  MoeConfig c;
  c.num_experts = 8;
  c.top_k = 2;
  c.topk_method = TopkMethod::kGroupLimitedGreedy;
  c.n_group = 4;
  c.topk_group = 1;
  c.routed_scaling_factor = 16.0;
  // Group 1 (experts 2, 3) holds the single best expert; group 3 holds the 2nd and 3rd best.
  const float logits[8] = {0, 0, 5.0f, -3.0f, 0, 0, 4.0f, 4.5f};
  int32_t ids[2];
  float w[2];
  RouteToken(c, logits, nullptr, ids, w);
  EXPECT_EQ(ids[0], 2);
  EXPECT_EQ(ids[1], 3);  // only group 1 survives, so its weak expert is chosen second
  double z = 0;
  for (float l : logits) z += std::exp(l);
  EXPECT_NEAR(w[0], 16.0 * std::exp(5.0) / z, 1e-5);
  EXPECT_NEAR(w[1], 16.0 * std::exp(-3.0) / z, 1e-6);
}

TEST(Router, NoauxTcUsesBiasToChooseButNotToWeigh) {
  MoeConfig c;
  c.num_experts = 8;
  c.top_k = 2;
  c.scoring = RouterScoring::kSigmoid;
  c.topk_method = TopkMethod::kNoauxTc;
  c.n_group = 4;
  c.topk_group = 2;
  c.norm_topk_prob = true;
  c.routed_scaling_factor = 2.5;
  c.has_score_correction_bias = true;
  const float logits[8] = {1.0f, 0.0f, 0.5f, 0.4f, -1.0f, -1.0f, 0.9f, 0.1f};
  const float bias[8] = {0, 0, 0, 0, 0, 0, 0, 2.0f};  // pushes expert 7 (group 3) to the top
  int32_t ids[2];
  float w[2];
  RouteToken(c, logits, bias, ids, w);
  auto sig = [](double x) { return 1.0 / (1.0 + std::exp(-x)); };
  // Group scores (sum of top-2 biased scores): g0 = s(1)+s(0), g1 = s(.5)+s(.4), g2 small,
  // g3 = s(.1)+2+s(.9) -> groups 3 and 0 kept; best biased: expert 7, then expert 0.
  EXPECT_EQ(ids[0], 7);
  EXPECT_EQ(ids[1], 0);
  const double a = sig(0.1), b = sig(1.0);
  EXPECT_NEAR(w[0], 2.5 * a / (a + b), 1e-6);
  EXPECT_NEAR(w[1], 2.5 * b / (a + b), 1e-6);
}

}  // namespace
}  // namespace tandem
