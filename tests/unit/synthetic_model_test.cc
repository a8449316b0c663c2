// The synthetic benchmark's model presets and random weights (coordinator/synthetic_model.h).
#include "coordinator/synthetic_model.h"

#include "gtest/gtest.h"

namespace tandem {
namespace {

TEST(SyntheticConfig, PresetsHaveTheHubShapes) {
  auto qwen = SyntheticConfig("qwen2-57b-a14b", 0);
  ASSERT_TRUE(qwen.ok()) << qwen.status();
  EXPECT_EQ(qwen->hidden_size, 3584);
  EXPECT_EQ(qwen->num_layers, 28);
  EXPECT_EQ(qwen->NumMoeLayers(), 28);
  EXPECT_EQ(qwen->moe.num_experts, 64);
  EXPECT_EQ(qwen->moe.top_k, 8);
  EXPECT_EQ(qwen->moe.expert_intermediate_size, 2560);
  EXPECT_EQ(qwen->moe.shared_intermediate_size, 20480);
  EXPECT_TRUE(qwen->moe.shared_expert_gated);
  EXPECT_FALSE(qwen->use_mla);

  auto v3 = SyntheticConfig("deepseek-v3", 10);
  ASSERT_TRUE(v3.ok()) << v3.status();
  EXPECT_EQ(v3->num_layers, 10);
  EXPECT_EQ(v3->NumMoeLayers(), 7);  // the first three layers stay dense
  EXPECT_TRUE(v3->use_mla);
  EXPECT_EQ(v3->mla.kv_lora_rank, 512);
  EXPECT_EQ(v3->moe.num_experts, 256);
  EXPECT_EQ(v3->moe.topk_method, TopkMethod::kNoauxTc);
  EXPECT_EQ(v3->rope.type, RopeConfig::Type::kYarn);

  auto v25 = SyntheticConfig("deepseek-v2.5", 0);
  ASSERT_TRUE(v25.ok()) << v25.status();
  EXPECT_EQ(v25->moe.num_experts, 160);
  EXPECT_EQ(v25->moe.top_k, 6);
  EXPECT_EQ(v25->NumMoeLayers(), 59);
  EXPECT_EQ(v25->moe.topk_method, TopkMethod::kGroupLimitedGreedy);
}

TEST(SyntheticConfig, BadPresetOrLayersIsAnError) {
  EXPECT_EQ(SyntheticConfig("llama", 0).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(SyntheticConfig("deepseek-v3", 62).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(SyntheticConfig("deepseek-v3", -1).status().code(),
            absl::StatusCode::kInvalidArgument);
}

// A synthetic worker generates only its slice of each expert; it must hold exactly the values
// the whole expert holds there.
TEST(RandomExpertSource, TensorParallelSlicesEqualTheWholeExpertsSlices) {
  auto config = SyntheticConfig("qwen2-57b-a14b", 1);
  ASSERT_TRUE(config.ok()) << config.status();
  const auto whole = RandomExpertSource(*config, 5)(0, 3);
  ASSERT_TRUE(whole.ok()) << whole.status();
  for (int index = 0; index < 3; ++index) {
    ShardPlan plan;
    plan.index = index;
    plan.count = 3;
    const auto [begin, end] = plan.IntermediateRange(config->moe.expert_intermediate_size);
    const auto slice = RandomExpertSource(*config, 5, plan)(0, 3);
    ASSERT_TRUE(slice.ok()) << slice.status();
    const MlpWeights expected = SliceExpert(*whole, begin, end);
    EXPECT_EQ(slice->gate.rows, end - begin);
    EXPECT_EQ(slice->down.cols, end - begin);
    EXPECT_EQ(slice->gate.bf16, expected.gate.bf16) << index;
    EXPECT_EQ(slice->up.bf16, expected.up.bf16) << index;
    EXPECT_EQ(slice->down.bf16, expected.down.bf16) << index;
  }
  ShardPlan ep;
  ep.mode = ShardPlan::Mode::kExpertParallel;
  ep.count = 2;
  for (int64_t e = 0; e < 4; ++e) {
    ep.index = 0;
    const auto owned = RandomExpertSource(*config, 5, ep)(0, e);
    ASSERT_TRUE(owned.ok());
    EXPECT_EQ(owned->empty(), !ep.OwnsExpert(e, config->moe.num_experts)) << e;
  }
}

}  // namespace
}  // namespace tandem
