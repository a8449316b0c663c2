// Continuous batching on the GPU backend (label `gpu`; skips without a GPU): concurrent requests
// through the scheduler, joining a running batch and prefilling in chunks, each produce exactly
// the tokens the same request produces alone, on every fixture with in-process experts and with 2
// worker processes; seeded sampling included (tokens drawn on the GPU).
#include <filesystem>

#include "coordinator/generator.h"
#include "coordinator/loaded_model.h"
#include "coordinator/serving/scheduler.h"
#include "gtest/gtest.h"
#include "tests/fixture_paths.h"
#include "tests/gpu_test_support.h"

namespace tandem {
namespace {

ServeRequest Request(int i) {
  ServeRequest r;
  r.id = absl::StrCat("r", i);
  for (int t = 0; t < 2 + (i * 7) % 19; ++t) r.prompt_ids.push_back((i * 31 + t * 13) % 97 + 1);
  r.max_tokens = 3 + (i * 5) % 13;
  r.ignore_eos = true;
  if (i % 3 == 1) {
    r.sampling.temperature = 0.8;
    r.sampling.top_p = 0.9;
    r.sampling.repetition_penalty = 1.1;
    r.sampling.seed = 500 + i;
  }
  return r;
}

class GpuServingTest : public ::testing::TestWithParam<testing::FixtureWorkersCase> {};

TEST_P(GpuServingTest, ConcurrentRequestsEqualTheSameRequestsAlone) {
  SKIP_WITHOUT_GPU();
  LoadOptions options;
  options.device = Device::kCuda;
  options.workers = GetParam().workers;
  options.cpu_kernel = testing::ExactExpertKernel();
  options.max_model_len = 64;
  options.load_tokenizer = false;
  auto model = LoadModel(GetParam().dir, options);
  ASSERT_TRUE(model.ok()) << model.status();
  constexpr int kRequests = 10;
  std::vector<std::vector<int32_t>> alone;
  for (int i = 0; i < kRequests; ++i) {
    const ServeRequest r = Request(i);
    GenerateRequest g;
    g.prompt_ids = r.prompt_ids;
    g.max_tokens = r.max_tokens;
    g.sampling = r.sampling;
    g.ignore_eos = true;
    auto result = Generate(*model->engine, nullptr, model->max_model_len, g);
    ASSERT_TRUE(result.ok()) << result.status();
    alone.push_back(result->ids);
  }
  SchedulerOptions so;
  so.max_model_len = model->max_model_len;
  so.max_num_seqs = 6;
  so.max_batch_tokens = 12;
  Scheduler scheduler(*model->engine, nullptr, so, nullptr);
  scheduler.Start();
  std::vector<std::shared_ptr<RequestStream>> streams;
  for (int i = 0; i < kRequests; ++i) {
    auto s = scheduler.Submit(Request(i));
    ASSERT_TRUE(s.ok()) << s.status();
    streams.push_back(*s);
  }
  for (int i = 0; i < kRequests; ++i) {
    std::vector<int32_t> ids;
    bool done = false;
    const absl::Time end = absl::Now() + absl::Seconds(60);
    while (!done && absl::Now() < end) {
      for (RequestEvent& e : streams[i]->Next(absl::Milliseconds(100))) {
        ASSERT_TRUE(e.error.ok()) << e.error;
        ids.insert(ids.end(), e.token_ids.begin(), e.token_ids.end());
        done = done || e.last();
      }
    }
    ASSERT_TRUE(done) << "request " << i << " never finished";
    EXPECT_EQ(ids, alone[i]) << "request " << i;
  }
  EXPECT_TRUE(scheduler.WaitIdle(absl::Seconds(10)));
  std::printf("[ gpu serving ] %s, %d workers: %d concurrent requests equal their runs alone\n",
              std::filesystem::path(GetParam().dir).filename().c_str(), GetParam().workers,
              kRequests);
}

INSTANTIATE_TEST_SUITE_P(AllArchitectures, GpuServingTest,
                         ::testing::ValuesIn(testing::FixtureWorkersCases()),
                         testing::FixtureWorkersCaseName);
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(GpuServingTest);

}  // namespace
}  // namespace tandem
