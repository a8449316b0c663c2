// The CPU engine against transformers' float64 reference outputs on every fixture architecture,
// under both config.json layouts: last-position logits within 1e-3 and 16 greedy ids identical.
// The experts run with f32 activations (the AVX-512 kernel where the CPU has it): on AMX machines
// the default kernel rounds the activations of experts with >= kAmxMinTokens tokens to bf16 for
// the tiles (~3e-3 relative error per expert, ~1e-2 on these logits), which this exactness test
// does not allow; the AMX kernels are checked against the reference in moe_kernel_test.
#include <filesystem>

#include "coordinator/generator.h"
#include "coordinator/loaded_model.h"
#include "gtest/gtest.h"
#include "kernels/cpu/isa.h"
#include "tests/batched_steps_check.h"
#include "tests/fixture_paths.h"

namespace tandem {
namespace {

struct Case {
  std::string dir;
  std::string config_file;  // config.json or config.legacy.json
};

// Readable test names in ctest instead of a byte dump.
void PrintTo(const Case& c, std::ostream* os) { *os << c.dir << "/" << c.config_file; }

std::vector<Case> Cases() {
  std::vector<Case> cases;
  for (const std::string& dir : testing::ModelFixtureDirs()) {
    for (const char* cfg : {"config.json", "config.legacy.json"}) {
      if (std::filesystem::exists(dir + "/" + cfg)) cases.push_back({dir, cfg});
    }
  }
  return cases;
}

std::string CaseName(const ::testing::TestParamInfo<Case>& info) {
  std::string name = std::filesystem::path(info.param.dir).filename().string() +
                     (info.param.config_file == "config.json" ? "_v5_layout" : "_hub_layout");
  return name;
}

class FixtureEngineTest : public ::testing::TestWithParam<Case> {
 protected:
  void SetUp() override {
    LoadOptions options;
    options.config_path = GetParam().dir + "/" + GetParam().config_file;
    options.device = Device::kCpu;  // the GPU backend has its own test: gpu_fixture_test
    options.cpu_kernel =
        CanRunAvx512Bf16(DetectCpuFeatures()) ? CpuKernel::kAvx512 : CpuKernel::kReference;
    auto model = LoadModel(GetParam().dir, options);
    ASSERT_TRUE(model.ok()) << model.status();
    model_ = std::make_unique<LoadedModel>(std::move(*model));
    reference_ = testing::ReadJson(GetParam().dir + "/reference.json");
  }
  std::unique_ptr<LoadedModel> model_;
  nlohmann::json reference_;
};

TEST_P(FixtureEngineTest, LastLogitsMatchTransformers) {
  const auto prompt = reference_["logits"]["prompt_ids"].get<std::vector<int32_t>>();
  const auto expected = reference_["logits"]["last_logits"].get<std::vector<double>>();
  auto cache = model_->engine->NewCache(model_->max_model_len);
  auto logits = model_->engine->Forward(prompt, *cache);
  ASSERT_TRUE(logits.ok()) << logits.status();
  ASSERT_EQ(logits->size(), expected.size());
  const double max_err = testing::MaxAbsError(*logits, expected);
  std::printf("[ fixture ] %s %s: max |logit error| = %.3g\n", model_->config.model_type.c_str(),
              GetParam().config_file.c_str(), max_err);
  EXPECT_LT(max_err, 1e-3);
}

TEST_P(FixtureEngineTest, IncrementalDecodeMatchesOneShotPrefill) {
  // Feeding the prompt one token at a time through the KV cache gives the same last logits.
  const auto prompt = reference_["logits"]["prompt_ids"].get<std::vector<int32_t>>();
  auto one_shot = model_->engine->NewCache(model_->max_model_len);
  auto expected = model_->engine->Forward(prompt, *one_shot);
  ASSERT_TRUE(expected.ok());
  auto cache = model_->engine->NewCache(model_->max_model_len);
  absl::StatusOr<std::vector<float>> logits;
  for (int32_t id : prompt) {
    logits = model_->engine->Forward(std::vector<int32_t>{id}, *cache);
    ASSERT_TRUE(logits.ok()) << logits.status();
  }
  for (size_t i = 0; i < expected->size(); ++i) EXPECT_NEAR((*logits)[i], (*expected)[i], 1e-4);
}

TEST_P(FixtureEngineTest, GreedyIdsMatchTransformers) {
  GenerateRequest request;
  request.prompt_ids = reference_["greedy"]["prompt_ids"].get<std::vector<int32_t>>();
  const auto expected = reference_["greedy"]["ids"].get<std::vector<int32_t>>();
  request.max_tokens = static_cast<int64_t>(expected.size());
  request.ignore_eos = true;
  auto result = Generate(*model_->engine, model_->tokenizer.get(), model_->max_model_len, request);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->ids, expected);
  EXPECT_EQ(result->finish_reason, "length");
}

// A continuous batch: sequences at different positions, prompt chunks and single decode tokens in
// the same steps, give each sequence the logits it gets alone.
TEST_P(FixtureEngineTest, BatchedStepsMatchSequencesRunAlone) {
  auto worst = testing::MaxBatchedMinusAlone(*model_->engine);
  ASSERT_TRUE(worst.ok()) << worst.status();
  EXPECT_LT(*worst, 1e-5) << "max |batched - alone| logit";
}

TEST_P(FixtureEngineTest, BadBatchesAreRejectedAndLeaveCachesUnchanged) {
  Engine& engine = *model_->engine;
  auto a = engine.NewCache(8), b = engine.NewCache(8);
  const std::vector<int32_t> ok = {1, 2, 3}, bad = {1, -4};
  std::vector<SequenceStep> twice = {{ok, a.get()}, {ok, a.get()}};
  EXPECT_EQ(engine.ForwardBatch(twice).status().code(), absl::StatusCode::kInvalidArgument);
  std::vector<SequenceStep> one_bad = {{ok, a.get()}, {bad, b.get()}};
  auto status = engine.ForwardBatch(one_bad).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(status.message().find("sequence 1"), std::string_view::npos) << status;
  std::vector<SequenceStep> none;
  EXPECT_EQ(engine.ForwardBatch(none).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(a->length(), 0);
  EXPECT_EQ(b->length(), 0);
}

TEST_P(FixtureEngineTest, OutOfVocabularyTokenIsAnError) {
  auto cache = model_->engine->NewCache(model_->max_model_len);
  auto logits = model_->engine->Forward(
      std::vector<int32_t>{1, static_cast<int32_t>(model_->config.vocab_size)}, *cache);
  EXPECT_EQ(logits.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(cache->length(), 0);
}

TEST_P(FixtureEngineTest, ContextOverflowIsAnError) {
  auto cache = model_->engine->NewCache(4);
  auto logits = model_->engine->Forward(std::vector<int32_t>{1, 2, 3, 4, 5}, *cache);
  EXPECT_EQ(logits.status().code(), absl::StatusCode::kInvalidArgument);
}

INSTANTIATE_TEST_SUITE_P(AllArchitectures, FixtureEngineTest, ::testing::ValuesIn(Cases()),
                         CaseName);
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(FixtureEngineTest);

TEST(FixturePresence, EveryArchitectureHasAFixture) {
  for (const char* arch : {"qwen2_moe", "qwen3_moe", "deepseek_v2", "deepseek_v3", "mixtral"}) {
    EXPECT_TRUE(std::filesystem::exists(testing::FixturesDir() + "/" + arch + "/reference.json"))
        << arch;
  }
}

}  // namespace
}  // namespace tandem
