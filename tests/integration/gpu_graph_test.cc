// The GPU backend's decode-step CUDA graphs and its worker rings (label `gpu`; skips without a
// GPU): steps replayed from captured graphs give the same logits as the same steps enqueued
// directly, for every fixture with in-process experts and with 2 workers reached through the rings
// (both ways of waiting); and a worker killed while graph steps run fails the request with
// Unavailable naming it, within 2 s, and serves again once restarted (rings re-registered, graphs
// captured again).
#include <filesystem>

#include "coordinator/cuda/cuda_engine.h"
#include "coordinator/loaded_model.h"
#include "gtest/gtest.h"
#include "tests/batched_steps_check.h"
#include "tests/fixture_paths.h"
#include "tests/gpu_test_support.h"
#include "tests/worker_fault_support.h"

namespace tandem {
namespace {

struct Case {
  std::string dir;
  int workers = 0;
  std::string ring_wait = "memop";
};
void PrintTo(const Case& c, std::ostream* os) {
  *os << c.dir << " workers=" << c.workers << " ring_wait=" << c.ring_wait;
}

std::vector<Case> Cases() {
  std::vector<Case> cases;
  for (const std::string& dir : testing::ModelFixtureDirs()) {
    cases.push_back({dir, 0, "memop"});
    cases.push_back({dir, 2, "memop"});
    cases.push_back({dir, 2, "host-func"});
  }
  return cases;
}

std::string CaseName(const ::testing::TestParamInfo<Case>& info) {
  std::string wait = info.param.ring_wait == "memop" ? "memop" : "hostfunc";
  return std::filesystem::path(info.param.dir).filename().string() + "_workers" +
         std::to_string(info.param.workers) + "_" + wait;
}

absl::StatusOr<LoadedModel> Load(const Case& c, bool cuda_graph) {
  LoadOptions options;
  options.device = Device::kCuda;
  options.workers = c.workers;
  options.cpu_kernel = testing::ExactExpertKernel();
  options.cuda_graph = cuda_graph;
  options.ring_wait = c.ring_wait;
  options.load_tokenizer = false;
  return LoadModel(c.dir, options);
}

class GpuGraphTest : public ::testing::TestWithParam<Case> {};

TEST_P(GpuGraphTest, GraphReplaysMatchDirectSteps) {
  SKIP_WITHOUT_GPU();
  auto graph = Load(GetParam(), true), direct = Load(GetParam(), false);
  ASSERT_TRUE(graph.ok()) << graph.status();
  ASSERT_TRUE(direct.ok()) << direct.status();
  // A prefill, then steps of 1 to 4 tokens (each a graph of its own), repeated so every graph is
  // replayed at later positions than it was captured at.
  std::vector<std::vector<int32_t>> steps = {{3, 14, 15, 92, 65, 35}};
  for (int round = 0; round < 3; ++round)
    for (int t = 1; t <= 4; ++t) {
      std::vector<int32_t> step;
      for (int i = 0; i < t; ++i) step.push_back((round * 31 + t * 7 + i * 5) % 89 + 1);
      steps.push_back(step);
      steps.push_back({(round * 13 + t) % 89 + 1});
    }
  auto graph_cache = graph->engine->NewCache(graph->max_model_len);
  auto direct_cache = direct->engine->NewCache(direct->max_model_len);
  double worst = 0;
  for (const auto& step : steps) {
    auto a = graph->engine->Forward(step, *graph_cache);
    auto b = direct->engine->Forward(step, *direct_cache);
    ASSERT_TRUE(a.ok()) << a.status();
    ASSERT_TRUE(b.ok()) << b.status();
    ASSERT_EQ(a->size(), b->size());
    for (size_t i = 0; i < a->size(); ++i)
      worst = std::max(worst, double(std::abs((*a)[i] - (*b)[i])));
  }
  std::printf("[ gpu graph ] %s: %s; max |graph - direct| over %zu steps = %.3g\n",
              graph->config.model_type.c_str(), graph->engine->Describe().c_str(), steps.size(),
              worst);
  EXPECT_LT(worst, 1e-5);
}

// Continuous batching on the GPU: several sequences per step (attention per sequence, everything
// else over all their rows) give each sequence the logits of its steps run alone, up to the
// rounding of cuBLAS, which picks other kernels for other row counts (measured: <= 1.6e-4).
TEST_P(GpuGraphTest, BatchedStepsMatchSequencesRunAlone) {
  SKIP_WITHOUT_GPU();
  auto model = Load(GetParam(), true);
  ASSERT_TRUE(model.ok()) << model.status();
  auto worst = testing::MaxBatchedMinusAlone(*model->engine);
  ASSERT_TRUE(worst.ok()) << worst.status();
  std::printf("[ gpu batch ] %s: max |batched - alone| = %.3g\n",
              model->config.model_type.c_str(), *worst);
  EXPECT_LT(*worst, 1e-3);
}

INSTANTIATE_TEST_SUITE_P(AllArchitectures, GpuGraphTest, ::testing::ValuesIn(Cases()), CaseName);
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(GpuGraphTest);

class GpuRingFaults : public ::testing::TestWithParam<std::string> {};

TEST_P(GpuRingFaults, KilledWorkerFailsTheGraphStepThenRestartedWorkerServes) {
  SKIP_WITHOUT_GPU();
  auto model = Load({testing::FixturesDir() + "/qwen3_moe", 2, GetParam()}, true);
  ASSERT_TRUE(model.ok()) << model.status();
  testing::KillWorkerDuringGenerationAndRecover(*model, "gpu rings, " + GetParam() + " waits");
}

INSTANTIATE_TEST_SUITE_P(BothWaits, GpuRingFaults, ::testing::Values("memop", "host-func"),
                         [](const auto& info) {
                           return std::string(info.param == "memop" ? "memop" : "hostfunc");
                         });

}  // namespace
}  // namespace tandem
