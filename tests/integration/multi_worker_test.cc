// The multi-process runtime end to end: the engine with 2 and 3 spawned NUMA worker processes
// (3 splits every expert unevenly) against the in-process engine on every fixture architecture,
// plus the faults: a worker SIGKILLed during generation, a worker loaded from another checkpoint.
#include <signal.h>

#include <atomic>
#include <filesystem>
#include <thread>

#include "coordinator/generator.h"
#include "coordinator/loaded_model.h"
#include "coordinator/remote_expert_executor.h"
#include "gtest/gtest.h"
#include "tests/fixture_paths.h"
#include "tests/worker_fault_support.h"

namespace tandem {
namespace {

absl::StatusOr<LoadedModel> Load(const std::string& dir, int workers,
                                 ShardPlan::Mode mode = ShardPlan::Mode::kTensorParallel) {
  LoadOptions options;
  options.workers = workers;
  options.device = Device::kCpu;  // the CPU engine's exactness; GPU: gpu_fixture_test
  options.shard_mode = mode;
  options.config_path = dir + "/config.legacy.json";
  return LoadModel(dir, options);
}

std::vector<float> LastLogits(LoadedModel& m, const std::vector<int32_t>& prompt) {
  auto cache = m.engine->NewCache(m.max_model_len);
  auto logits = m.engine->Forward(prompt, *cache);
  EXPECT_TRUE(logits.ok()) << logits.status();
  return logits.ok() ? *logits : std::vector<float>();
}

class MultiWorkerExactness : public ::testing::TestWithParam<std::string> {};

TEST_P(MultiWorkerExactness, TwoAndThreeWorkersMatchInProcess) {
  const std::string dir = GetParam();
  const auto ref = testing::ReadJson(dir + "/reference.json");
  const auto logits_prompt = ref["logits"]["prompt_ids"].get<std::vector<int32_t>>();
  const auto greedy_prompt = ref["greedy"]["prompt_ids"].get<std::vector<int32_t>>();
  auto local = Load(dir, 0);
  ASSERT_TRUE(local.ok()) << local.status();
  const std::vector<float> expected = LastLogits(*local, logits_prompt);
  auto expected_ids = testing::GreedyIds(*local, greedy_prompt, 16);
  ASSERT_TRUE(expected_ids.ok());
  for (int workers : {2, 3}) {
    auto remote = Load(dir, workers);
    ASSERT_TRUE(remote.ok()) << remote.status();
    const std::vector<float> got = LastLogits(*remote, logits_prompt);
    ASSERT_EQ(got.size(), expected.size());
    double max_err = 0;
    for (size_t i = 0; i < got.size(); ++i) max_err = std::max<double>(max_err, std::abs(got[i] - expected[i]));
    std::printf("[ workers ] %s, %d workers: max |logit - in-process| = %.3g\n",
                std::filesystem::path(dir).filename().c_str(), workers, max_err);
    EXPECT_LT(max_err, 1e-4) << workers << " workers";
    auto ids = testing::GreedyIds(*remote, greedy_prompt, 16);
    ASSERT_TRUE(ids.ok()) << ids.status();
    EXPECT_EQ(ids->ids, expected_ids->ids) << workers << " workers";
  }
}

INSTANTIATE_TEST_SUITE_P(AllArchitectures, MultiWorkerExactness,
                         ::testing::ValuesIn(testing::ModelFixtureDirs()),
                         [](const auto& info) {
                           return std::filesystem::path(info.param).filename().string();
                         });
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(MultiWorkerExactness);

TEST(MultiWorkerExpertParallel, ThreeWorkersHoldingWholeExpertsMatchInProcess) {
  const std::string dir = testing::FixturesDir() + "/deepseek_v3";
  const auto ref = testing::ReadJson(dir + "/reference.json");
  const auto prompt = ref["logits"]["prompt_ids"].get<std::vector<int32_t>>();
  auto local = Load(dir, 0);
  auto remote = Load(dir, 3, ShardPlan::Mode::kExpertParallel);
  ASSERT_TRUE(local.ok() && remote.ok()) << local.status() << remote.status();
  EXPECT_NE(remote->engine->experts().Describe().find("expert-parallel"), std::string::npos);
  const auto a = LastLogits(*remote, prompt), b = LastLogits(*local, prompt);
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) EXPECT_NEAR(a[i], b[i], 1e-4);
}

TEST(MultiWorkerFaults, KilledWorkerFailsTheRequestThenRestartedWorkerServes) {
  auto model = Load(testing::FixturesDir() + "/qwen3_moe", 2);
  ASSERT_TRUE(model.ok()) << model.status();
  testing::KillWorkerDuringGenerationAndRecover(*model, "workers");
}

TEST(MultiWorkerFaults, WorkerThatExitsAtStartUpFailsFast) {
  auto workers = LocalWorkers::Spawn(1, "/bin/false");  // exits 1 at once, never listens
  ASSERT_TRUE(workers.ok()) << workers.status();
  RemoteExecutorOptions options;
  options.shard.model_dir = testing::FixturesDir() + "/qwen3_moe";
  options.ring = {2, 16, 64, 4};
  const absl::Time start = absl::Now();
  auto executor = RemoteExpertExecutor::Create((*workers)->endpoints(), options);
  ASSERT_FALSE(executor.ok());
  EXPECT_EQ(executor.status().code(), absl::StatusCode::kUnavailable) << executor.status();
  EXPECT_NE(std::string(executor.status().message()).find("exited with code 1"), std::string::npos)
      << executor.status();
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));
}

TEST(MultiWorkerFaults, WorkerFromAnotherCheckpointIsRefused) {
  const std::string dir = testing::FixturesDir() + "/qwen3_moe";
  auto workers = LocalWorkers::Spawn(1);
  ASSERT_TRUE(workers.ok()) << workers.status();
  RemoteExecutorOptions options;
  options.shard.model_dir = dir;
  options.shard.fingerprint = "0123456789abcdef";  // what another checkpoint would hash to
  options.ring = {2, 16, 64, 4};
  auto executor = RemoteExpertExecutor::Create((*workers)->endpoints(), options);
  ASSERT_FALSE(executor.ok());
  EXPECT_EQ(executor.status().code(), absl::StatusCode::kFailedPrecondition) << executor.status();
  EXPECT_NE(std::string(executor.status().message()).find("worker 0"), std::string::npos);
  EXPECT_NE(std::string(executor.status().message()).find("fingerprint"), std::string::npos);
}

TEST(MultiWorkerFaults, WorkerAddressesConnectToRunningWorkers) {
  const std::string dir = testing::FixturesDir() + "/mixtral";
  auto workers = LocalWorkers::Spawn(2);
  ASSERT_TRUE(workers.ok()) << workers.status();
  LoadOptions options;
  options.device = Device::kCpu;
  for (const WorkerEndpoint& e : (*workers)->endpoints()) options.worker_addrs.push_back(e.address);
  auto remote = LoadModel(dir, options);
  ASSERT_TRUE(remote.ok()) << remote.status();
  auto local = Load(dir, 0);
  ASSERT_TRUE(local.ok());
  const std::vector<int32_t> prompt = {5, 6, 7, 8, 9};
  const auto a = LastLogits(*remote, prompt), b = LastLogits(*local, prompt);
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) EXPECT_NEAR(a[i], b[i], 1e-4);
}

}  // namespace
}  // namespace tandem
