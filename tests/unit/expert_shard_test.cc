// ExpertShard::Run (numa_worker/expert_shard.h) over in-memory experts in every format and both
// schedules: the grouped, scheduled operator equals the per-token sum of the kernels' expert
// forwards; static and dynamic schedules agree bit for bit; bad batches are refused.
#include "numa_worker/expert_shard.h"

#include <gtest/gtest.h>
#include <omp.h>

#include <chrono>
#include <cmath>
#include <random>

#include "common/bf16.h"
#include "kernels/cpu/moe_kernel.h"
#include "kernels/cpu/moe_kernel_impl.h"  // AmxTuning::task_rows

namespace tandem {
namespace {

constexpr int64_t kHidden = 96, kInter = 80, kExperts = 6, kTopK = 2;

ModelConfig Config() {
  ModelConfig c;
  c.hidden_size = kHidden;
  c.num_layers = 2;
  c.layer_is_moe = {false, true};
  c.moe.num_experts = kExperts;
  c.moe.top_k = kTopK;
  c.moe.expert_intermediate_size = kInter;
  return c;
}

WeightMatrix Bf16(int64_t rows, int64_t cols, std::mt19937& rng) {
  std::normal_distribution<float> d(0.0f, 1.0f / std::sqrt(static_cast<float>(cols)));
  WeightMatrix m;
  m.rows = rows;
  m.cols = cols;
  for (int64_t i = 0; i < rows * cols; ++i) m.bf16.push_back(FloatToBf16(d(rng)));
  return m;
}

std::vector<std::vector<MlpWeights>> RandomExperts(uint64_t seed) {
  std::mt19937 rng(seed);
  std::vector<std::vector<MlpWeights>> w(2);
  for (int64_t e = 0; e < kExperts; ++e) {
    MlpWeights m;
    m.gate = Bf16(kInter, kHidden, rng);
    m.up = Bf16(kInter, kHidden, rng);
    m.down = Bf16(kHidden, kInter, rng);
    w[1].push_back(std::move(m));
  }
  return w;
}

struct Batch {
  std::vector<float> hidden, weights;
  std::vector<int32_t> ids;
  MoeBatch view(int64_t tokens) const {
    MoeBatch b;
    b.layer = 1;
    b.num_tokens = tokens;
    b.top_k = kTopK;
    b.hidden = hidden.data();
    b.expert_ids = ids.data();
    b.weights = weights.data();
    return b;
  }
};

// `tokens` tokens; expert 5 is never chosen; token 0 picks expert 1 twice.
Batch RandomBatch(int64_t tokens, std::mt19937& rng) {
  std::normal_distribution<float> d(0.0f, 1.0f);
  std::uniform_int_distribution<int> e(0, kExperts - 2);
  Batch b;
  for (int64_t i = 0; i < tokens * kHidden; ++i) b.hidden.push_back(d(rng));
  for (int64_t i = 0; i < tokens * kTopK; ++i) {
    b.ids.push_back(e(rng));
    b.weights.push_back(0.25f + 0.1f * static_cast<float>(i % 5));
  }
  b.ids[0] = b.ids[1] = 1;
  return b;
}

struct ShardCase {
  std::string dtype;
  int64_t group;
};

class ExpertShardTest : public ::testing::TestWithParam<ShardCase> {
 protected:
  ExpertShardOptions Options(MoeSchedule schedule) const {
    ExpertShardOptions o;
    o.format = *ParseExpertFormat(GetParam().dtype, GetParam().group);
    o.schedule = schedule;
    return o;
  }
};

TEST_P(ExpertShardTest, RunEqualsTheSumOfExpertForwardsUnderBothSchedules) {
  std::mt19937 rng(1);
  auto dynamic =
      ExpertShard::FromWeights(Config(), RandomExperts(7), Options(MoeSchedule::kDynamic));
  auto fixed = ExpertShard::FromWeights(Config(), RandomExperts(7), Options(MoeSchedule::kStatic));
  ASSERT_TRUE(dynamic.ok()) << dynamic.status();
  ASSERT_TRUE(fixed.ok()) << fixed.status();
  EXPECT_EQ((*dynamic)->format(), Options(MoeSchedule::kDynamic).format);
  EXPECT_EQ((*dynamic)->expert_bytes(1, 5) * kExperts, (*dynamic)->weight_bytes());
  EXPECT_EQ((*dynamic)->expert_bytes(0, 0), 0u);  // a dense layer holds no experts
  // The same experts packed one by one, for the expected values.
  auto weights = RandomExperts(7);
  std::vector<PackedExpert> packed;
  for (const MlpWeights& m : weights[1])
    packed.push_back(*PackExpert(m.gate, m.up, m.down, (*dynamic)->format()));
  // 40: large enough for the parallel region; 200: experts with many tokens (AMX tiles).
  for (int64_t tokens : {1, 3, 40, 200}) {
    const Batch b = RandomBatch(tokens, rng);
    std::vector<float> out_d(tokens * kHidden, NAN), out_s(tokens * kHidden, NAN);
    ASSERT_TRUE((*dynamic)->Run(b.view(tokens), out_d.data()).ok());
    ASSERT_TRUE((*fixed)->Run(b.view(tokens), out_s.data()).ok());
    EXPECT_EQ(out_d, out_s) << "tokens=" << tokens;
    // Rows per AMX task only change how the rows are cut into tasks, not any row's sums; claiming
    // tasks ahead (and prefetching them) and running the stages as a dataflow or stage by stage
    // change only which thread runs which task when; non-temporal y stores only how y's lines
    // reach memory (the combine, on other threads, must still see them all).
    const moe_internal::AmxTuning defaults = moe_internal::GetAmxTuning();
    for (int64_t rows : {16, 48, 256}) {
      for (int variant = 0; variant < 8; ++variant) {
        moe_internal::AmxTuning t = defaults;
        t.task_rows = rows;
        t.claim_ahead = (variant & 1) != 0;
        t.dataflow = (variant & 2) != 0;
        t.stream_y = (variant & 4) != 0;
        if (!moe_internal::SetAmxTuning(t)) continue;  // no AMX kernels in this build
        std::vector<float> out_r(tokens * kHidden, NAN), out_rs(tokens * kHidden, NAN);
        ASSERT_TRUE((*dynamic)->Run(b.view(tokens), out_r.data()).ok());
        ASSERT_TRUE((*fixed)->Run(b.view(tokens), out_rs.data()).ok());
        EXPECT_EQ(out_r, out_d) << "tokens=" << tokens << " task rows " << rows << " claim ahead "
                                << t.claim_ahead << " dataflow " << t.dataflow << " stream y "
                                << t.stream_y;
        EXPECT_EQ(out_rs, out_d) << "static, tokens=" << tokens << " task rows " << rows;
      }
    }
    moe_internal::SetAmxTuning(defaults);  // false only in builds without AMX kernels
    // Per token, per choice: one ExpertForward with the kernel the shard picks for a group of the
    // expert's size (its activation precision depends on it on AMX machines).
    std::vector<float> expected(tokens * kHidden, 0.0f);
    ExpertKernel kernel{(*dynamic)->kernel(), ActivationPrecision::kF32};
    ExpertScratch scratch;
    std::vector<float> y(kHidden);
    for (int64_t t = 0; t < tokens; ++t)
      for (int64_t j = 0; j < kTopK; ++j) {
        ExpertForward(kernel, packed[b.ids[t * kTopK + j]], b.hidden.data() + t * kHidden, 1,
                      y.data(), &scratch);
        for (int64_t d = 0; d < kHidden; ++d)
          expected[t * kHidden + d] += b.weights[t * kTopK + j] * y[d];
      }
    double max_diff = 0, max_ref = 0;
    for (size_t i = 0; i < expected.size(); ++i) {
      max_diff = std::max(max_diff, double{std::abs(out_d[i] - expected[i])});
      max_ref = std::max(max_ref, double{std::abs(expected[i])});
    }
    // Exact for f32 activations; the bf16 activations AMX machines use for groups of >= 4 tokens
    // differ by their rounding.
    EXPECT_LT(max_diff / max_ref, (*dynamic)->kernel() == CpuKernel::kAmx ? 2e-2 : 1e-5)
        << "tokens=" << tokens;
  }
}

// The dataflow stream (moe_task_stream.h) with more threads than cores and than some experts'
// tasks: the same bits as stage by stage, every phase reported, none negative, and together no
// longer than the call.
TEST_P(ExpertShardTest, DataflowEqualsStageByStageOnManyThreads) {
  auto shard = ExpertShard::FromWeights(Config(), RandomExperts(5), Options(MoeSchedule::kDynamic));
  ASSERT_TRUE(shard.ok()) << shard.status();
  std::mt19937 rng(4);
  const int64_t tokens = 300;
  const Batch b = RandomBatch(tokens, rng);
  // Restores the thread count and the tuning however the test ends.
  struct Restore {
    int threads = omp_get_max_threads();
    moe_internal::AmxTuning tuning = moe_internal::GetAmxTuning();
    ~Restore() {
      omp_set_num_threads(threads);
      moe_internal::SetAmxTuning(tuning);
    }
  } restore;
  const moe_internal::AmxTuning defaults = restore.tuning;
  std::vector<float> expected;
  for (int num_threads : {1, 7}) {
    omp_set_num_threads(num_threads);
    for (bool dataflow : {false, true}) {
      moe_internal::AmxTuning t = defaults;
      t.dataflow = dataflow;
      if (!moe_internal::SetAmxTuning(t)) GTEST_SKIP() << "no AMX tuning in this build";
      for (int rep = 0; rep < 3; ++rep) {
        std::vector<float> out(tokens * kHidden, NAN);
        MoeRunPhases phases;
        const auto begin = std::chrono::steady_clock::now();
        ASSERT_TRUE((*shard)->Run(b.view(tokens), out.data(), &phases).ok());
        const double call_ms =
            std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - begin)
                .count();
        if (expected.empty()) expected = out;
        EXPECT_EQ(out, expected) << num_threads << " threads, dataflow " << dataflow;
        const double parts[] = {phases.gather_ms, phases.gate_up_ms, phases.act_forms_ms,
                                phases.down_ms, phases.combine_ms};
        double sum = 0;
        for (double ms : parts) {
          EXPECT_GE(ms, 0.0) << num_threads << " threads, dataflow " << dataflow;
          sum += ms;
        }
        EXPECT_GT(phases.gate_up_ms + phases.down_ms, 0.0);
        EXPECT_LE(sum, call_ms + 1e-3);  // the phases lie inside the call
      }
    }
  }
}

// Edges of the task stream: a batch of no tokens runs no task and writes nothing; a batch whose
// tokens all go to one expert (the others have no tasks at all) equals the same tokens routed one
// by one.
TEST_P(ExpertShardTest, EmptyBatchesAndASingleBusyExpert) {
  auto shard = ExpertShard::FromWeights(Config(), RandomExperts(9), Options(MoeSchedule::kDynamic));
  ASSERT_TRUE(shard.ok()) << shard.status();
  std::mt19937 rng(6);
  Batch b = RandomBatch(120, rng);
  std::vector<float> untouched(kHidden, 7.0f);
  ASSERT_TRUE((*shard)->Run(b.view(0), untouched.data()).ok());
  EXPECT_EQ(untouched, std::vector<float>(kHidden, 7.0f));
  for (int32_t& id : b.ids) id = 3;
  std::vector<float> all(120 * kHidden, NAN), one(kHidden, NAN);
  ASSERT_TRUE((*shard)->Run(b.view(120), all.data()).ok());
  for (int64_t t : {0, 57, 119}) {
    Batch single;
    single.hidden.assign(b.hidden.begin() + t * kHidden, b.hidden.begin() + (t + 1) * kHidden);
    single.ids.assign(kTopK, 3);
    single.weights.assign(b.weights.begin() + t * kTopK, b.weights.begin() + (t + 1) * kTopK);
    ASSERT_TRUE((*shard)->Run(single.view(1), one.data()).ok());
    double max_diff = 0, max_ref = 0;
    for (int64_t d = 0; d < kHidden; ++d) {
      max_diff = std::max(max_diff, double{std::abs(all[t * kHidden + d] - one[d])});
      max_ref = std::max(max_ref, double{std::abs(one[d])});
    }
    // One token alone keeps f32 activations; 240 rows of one expert take bf16 ones on AMX.
    EXPECT_LT(max_diff / max_ref, (*shard)->kernel() == CpuKernel::kAmx ? 2e-2 : 1e-5) << t;
  }
}

TEST_P(ExpertShardTest, BadBatchesAreRefused) {
  auto shard = ExpertShard::FromWeights(Config(), RandomExperts(7), Options(MoeSchedule::kDynamic));
  ASSERT_TRUE(shard.ok()) << shard.status();
  std::mt19937 rng(2);
  Batch b = RandomBatch(2, rng);
  std::vector<float> out(2 * kHidden);
  MoeBatch v = b.view(2);
  v.layer = 0;  // dense
  EXPECT_EQ((*shard)->Run(v, out.data()).code(), absl::StatusCode::kInvalidArgument);
  v.layer = 7;
  EXPECT_EQ((*shard)->Run(v, out.data()).code(), absl::StatusCode::kInvalidArgument);
  b.ids[3] = kExperts;
  EXPECT_EQ((*shard)->Run(b.view(2), out.data()).code(), absl::StatusCode::kInvalidArgument);
  b.ids[3] = -1;
  EXPECT_EQ((*shard)->Run(b.view(2), out.data()).code(), absl::StatusCode::kInvalidArgument);
}

INSTANTIATE_TEST_SUITE_P(Formats, ExpertShardTest,
                         ::testing::Values(ShardCase{"bf16", 0}, ShardCase{"int8", 0},
                                           ShardCase{"int4", 32}, ShardCase{"int4", 128}),
                         [](const ::testing::TestParamInfo<ShardCase>& info) {
                           return info.param.dtype +
                                  (info.param.group ? "_g" + std::to_string(info.param.group) : "");
                         });

// How synthetic workers build their slices (ExpertShard::FromSource with a plan, SliceExpert):
// the partial outputs of a 3-way tensor-parallel split add up to the whole shard's, and the
// expert-parallel shards hold disjoint experts whose outputs add up the same way.
TEST(ExpertShardSlices, SlicedShardsSumToTheWholeShard) {
  std::mt19937 rng(3);
  const auto experts = RandomExperts(11);
  auto source = [&](const ShardPlan& plan) {
    return [&experts, plan](int64_t l, int64_t e) -> absl::StatusOr<MlpWeights> {
      if (experts[l].empty()) return MlpWeights();
      if (plan.mode == ShardPlan::Mode::kExpertParallel)
        return plan.OwnsExpert(e, kExperts) ? experts[l][e] : MlpWeights();
      const auto [begin, end] = plan.IntermediateRange(kInter);
      return SliceExpert(experts[l][e], begin, end);
    };
  };
  auto whole = ExpertShard::FromSource(Config(), source(ShardPlan{}));
  ASSERT_TRUE(whole.ok()) << whole.status();
  const Batch batch = RandomBatch(5, rng);
  std::vector<float> expected(5 * kHidden);
  ASSERT_TRUE((*whole)->Run(batch.view(5), expected.data()).ok());
  for (ShardPlan::Mode mode :
       {ShardPlan::Mode::kTensorParallel, ShardPlan::Mode::kExpertParallel}) {
    std::vector<float> sum(expected.size(), 0.0f), part(expected.size());
    for (int index = 0; index < 3; ++index) {
      ShardPlan plan;
      plan.mode = mode;
      plan.index = index;
      plan.count = 3;
      auto shard = ExpertShard::FromSource(Config(), source(plan), {}, plan);
      ASSERT_TRUE(shard.ok()) << shard.status();
      ASSERT_TRUE((*shard)->Run(batch.view(5), part.data()).ok());
      for (size_t i = 0; i < sum.size(); ++i) sum[i] += part[i];
    }
    for (size_t i = 0; i < sum.size(); ++i) EXPECT_NEAR(sum[i], expected[i], 1e-4) << i;
  }
}

TEST(ExpertShardOptionsTest, ParsesSchedulesAndRefusesBadFormats) {
  EXPECT_EQ(*ParseMoeSchedule("dynamic"), MoeSchedule::kDynamic);
  EXPECT_EQ(*ParseMoeSchedule("static"), MoeSchedule::kStatic);
  EXPECT_EQ(ParseMoeSchedule("guided").status().code(), absl::StatusCode::kInvalidArgument);
  ExpertShardOptions o;
  o.format = {ExpertDtype::kInt4, 64};
  EXPECT_EQ(ExpertShard::FromWeights(Config(), RandomExperts(7), o).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace tandem
