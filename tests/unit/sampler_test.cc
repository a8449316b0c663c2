#include "coordinator/sampler.h"

#include <cmath>
#include <map>

#include "gtest/gtest.h"

namespace tandem {
namespace {

const std::vector<float> kLogits = {1.0f, 3.0f, 2.0f, 0.5f, 2.9f};

TEST(Sampler, GreedyPicksArgmax) {
  Sampler s(SamplingParams{});
  EXPECT_EQ(s.Sample(kLogits, {}), 1);
}

TEST(Sampler, RepetitionPenaltyDemotesSeenTokens) {
  SamplingParams p;
  p.repetition_penalty = 2.0;
  Sampler s(p);
  std::vector<int32_t> history = {1};
  EXPECT_EQ(s.Sample(kLogits, history), 4);  // 3.0 / 2 = 1.5 < 2.9
}

TEST(Sampler, TopKOneIsGreedyAtAnyTemperature) {
  SamplingParams p;
  p.temperature = 5.0;
  p.top_k = 1;
  p.seed = 7;
  Sampler s(p);
  for (int i = 0; i < 50; ++i) EXPECT_EQ(s.Sample(kLogits, {}), 1);
}

TEST(Sampler, TopPKeepsTheSmallestNucleus) {
  SamplingParams p;
  p.temperature = 1.0;
  p.top_p = 0.5;  // token 1 alone has ~0.38 of the mass, tokens 1 + 4 ~0.73
  p.seed = 3;
  Sampler s(p);
  std::map<int32_t, int> counts;
  for (int i = 0; i < 400; ++i) counts[s.Sample(kLogits, {})]++;
  EXPECT_EQ(counts.size(), 2u);
  EXPECT_GT(counts[1], 0);
  EXPECT_GT(counts[4], 0);
}

TEST(Sampler, MinPDropsUnlikelyTokens) {
  SamplingParams p;
  p.temperature = 1.0;
  p.min_p = 0.5;  // keeps tokens with prob >= half of token 1's: 1, 4, 2 (e^-1 = 0.37 < 0.5 drops 2)
  p.seed = 11;
  Sampler s(p);
  std::map<int32_t, int> counts;
  for (int i = 0; i < 400; ++i) counts[s.Sample(kLogits, {})]++;
  EXPECT_EQ(counts.size(), 2u);
  EXPECT_EQ(counts.count(0) + counts.count(2) + counts.count(3), 0u);
}

TEST(Sampler, SameSeedSameSequence) {
  SamplingParams p;
  p.temperature = 1.0;
  p.seed = 42;
  Sampler a(p), b(p);
  for (int i = 0; i < 100; ++i) EXPECT_EQ(a.Sample(kLogits, {}), b.Sample(kLogits, {}));
}

TEST(SampleToken, GreedyTiesGoToTheLowestId) {
  const std::vector<float> tied = {0.5f, 2.0f, -1.0f, 2.0f};
  EXPECT_EQ(SampleToken(SamplingParams{}, tied, {}, 0.0), 1);
}

TEST(SampleToken, TheUniformNumberWalksTheCandidatesBestFirst) {
  SamplingParams p;
  p.temperature = 1.0;
  p.top_k = 3;  // candidates 1 (3.0), 4 (2.9), 2 (2.0)
  EXPECT_EQ(SampleToken(p, kLogits, {}, 0.0), 1);
  EXPECT_EQ(SampleToken(p, kLogits, {}, 0.45), 4);  // masses 1, 0.905, 0.368: C = 1, 1.905, 2.273
  EXPECT_EQ(SampleToken(p, kLogits, {}, 1.0 - 0x1.0p-53), 2);
  // Equal logits rank lower ids first, -0 and +0 alike.
  const std::vector<float> tied = {-0.0f, 0.0f, -5.0f};
  p.top_k = 0;
  EXPECT_EQ(SampleToken(p, tied, {}, 0.0), 0);
  EXPECT_EQ(SampleToken(p, tied, {}, 0.6), 1);
}

TEST(SampleToken, RepeatedHistoryIdsArePenalisedOnce) {
  SamplingParams p;
  p.repetition_penalty = 2.0;
  const std::vector<float> logits = {2.5f, 4.0f};
  const std::vector<int32_t> twice = {1, 1, 7, -3};  // out-of-range ids are ignored
  EXPECT_EQ(SampleToken(p, logits, twice, 0.0), 0);  // 4 / 2 = 2 < 2.5; twice would be 1
  const std::vector<float> close = {1.5f, 4.0f};
  EXPECT_EQ(SampleToken(p, close, twice, 0.0), 1);   // 2 > 1.5: divided once, not twice
}

TEST(Sampler, DrawFrequenciesFollowTheSoftmax) {
  SamplingParams p;
  p.temperature = 0.8;
  p.seed = 5;
  Sampler s(p);
  std::vector<double> expected(kLogits.size());
  double sum = 0;
  for (size_t i = 0; i < kLogits.size(); ++i) sum += expected[i] = std::exp(kLogits[i] / 0.8);
  constexpr int kDraws = 40000;
  std::vector<int> counts(kLogits.size());
  for (int i = 0; i < kDraws; ++i) counts[s.Sample(kLogits, {})]++;
  for (size_t i = 0; i < kLogits.size(); ++i) {
    const double want = expected[i] / sum;
    // 5 standard deviations of a binomial count.
    EXPECT_NEAR(counts[i] / double(kDraws), want, 5 * std::sqrt(want * (1 - want) / kDraws)) << i;
  }
}

TEST(Sampler, InvalidParamsAreRejected) {
  SamplingParams p;
  p.temperature = -1;
  EXPECT_FALSE(p.Validate().ok());
  p = {};
  p.top_p = 0;
  EXPECT_FALSE(p.Validate().ok());
  p = {};
  p.top_k = -2;
  EXPECT_FALSE(p.Validate().ok());
  p = {};
  p.repetition_penalty = 0;
  EXPECT_FALSE(p.Validate().ok());
  EXPECT_TRUE(SamplingParams{}.Validate().ok());
}

}  // namespace
}  // namespace tandem
