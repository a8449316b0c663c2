#include "coordinator/sampler.h"

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
